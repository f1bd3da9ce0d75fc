"""PagerDuty webhooks (v3): acknowledging or resolving there acknowledges or resolves here.

The signature is checked on the raw body before anything is parsed (forged: 401, nothing
changes). PagerDuty's `incident_key` is the dedup key the router sent: the incident's
`details["dedup_key"]`, or one of its page keys (`details["page_keys"]`: one PagerDuty event
per escalation step, the dedup key plus a `:page-<n>` / `:manual-<n>` or `-L<n>` suffix).
Events that are not ours (unknown key, other event types, an incident already in that state) are
answered 200 so PagerDuty does not retry them; the answer says why they were ignored.
"""

from __future__ import annotations

import logging
import re

from aiohttp import web

from router.api.incidents import LOOKUP_LIMIT, append, command, is_open
from router.api.keys import BACKEND, RUNTIME
from router.api.webhooks import error_response, json_response, read_body
from router.backends.base import Backend
from router.incidents import Command, Incident
from router.signatures import parse_pagerduty_webhook, verify_pagerduty
from router.sources.base import Rejected

log = logging.getLogger(__name__)

_LEVEL_SUFFIX = re.compile(r"(-L\d+|:page-\d+|:manual-\d+)$")


def dedup_candidates(incident_key: str) -> list[str]:
    """The key as PagerDuty sent it, then without a per-level page suffix."""
    stripped = _LEVEL_SUFFIX.sub("", incident_key)
    return [incident_key] if stripped == incident_key else [incident_key, stripped]


def _keys(incident: Incident) -> set[str]:
    keys = {str(k) for k in _as_list(incident.details.get("page_keys"))}
    if (dedup := incident.details.get("dedup_key")) is not None:
        keys.add(str(dedup))
    return keys


def _as_list(value: object) -> list[object]:
    return list(value) if isinstance(value, list | tuple) else []


async def incident_by_dedup_key(backend: Backend, incident_key: str) -> Incident | None:
    incidents = [(i, _keys(i)) for i in await backend.incidents(limit=LOOKUP_LIMIT)]
    for key in dedup_candidates(incident_key):
        for incident, keys in incidents:
            if key in keys:
                return incident
    return None


def _ignored(why: str) -> web.Response:
    return json_response(200, {"status": "ignored", "reason": why})


async def webhook(request: web.Request) -> web.Response:
    config = request.app[RUNTIME].snapshot.config
    cfg = config.pagerduty_webhook
    if cfg is None:
        return error_response(404, "PagerDuty webhooks are not configured "
                                   "(pagerduty_webhook.secrets)")
    try:
        body = await read_body(request, config.server.max_body_bytes)
        verify_pagerduty([s.get_secret_value() for s in cfg.secrets], request.headers, body)
        event = parse_pagerduty_webhook(body)
    except Rejected as exc:
        log.info("PagerDuty webhook refused: %s", exc.message)
        return error_response(exc.status, exc.message)
    action = event.action
    if action is None:
        return _ignored(f"event type {event.event_type} does not change incidents")
    if event.incident_key is None:
        return _ignored("the event carries no incident_key")
    backend = request.app[BACKEND]
    incident = await incident_by_dedup_key(backend, event.incident_key)
    if incident is None:
        return _ignored("no incident of this router has that incident_key")
    if not is_open(incident):
        return _ignored(f"incident {incident.id} is already resolved")
    if action == "ack" and incident.acknowledged_at is not None:
        # Also the echo of an acknowledgement the router itself sent to PagerDuty.
        return _ignored(f"incident {incident.id} is already acknowledged")
    who = event.agent_name or event.agent_id or "unknown"
    actor = f"pagerduty:{who}"
    ref = event.incident_url or event.incident_id
    where = f"in PagerDuty ({ref})" if ref else "in PagerDuty"
    if action == "ack":
        name, args = Command.ACK, {"message": f"Acknowledged {where} by {who}"}
    else:
        name, args = Command.RESOLVE, {"message": f"Resolved {where} by {who}"}
    if (failed := await append(backend, [command(name, incident, actor, args)])) is not None:
        return failed
    return json_response(202, {"status": "accepted", "incident_id": incident.id,
                               "command": name.value})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/webhooks/pagerduty", webhook)
