"""Signed inbound requests from Slack and PagerDuty: signature checks, and PagerDuty's v3 envelope.

Both checks run on the raw request bytes before anything is parsed, and raise `SignatureError`
(a `Rejected` with status 401) naming what is wrong without echoing secrets or signatures.

Slack (slash commands, interactivity): `X-Slack-Signature: v0=<hex>` is
HMAC-SHA256(signing secret, "v0:" + X-Slack-Request-Timestamp + ":" + body); requests more than
5 minutes from our clock are refused as replays.

PagerDuty webhooks v3: `X-PagerDuty-Signature` carries one or more comma-separated `v1=<hex>`
values, HMAC-SHA256(webhook secret, body), one per secret while PagerDuty rotates it; one match is
enough. The signature has no timestamp and PagerDuty retries for up to 48 hours, so there is no
staleness check: replays are made harmless by the engine (ack/resolve are idempotent, and
`event.id` identifies a delivery).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from router.model import Frozen
from router.sources.base import Rejected, as_utc, decode_json, shape_error

SLACK_MAX_AGE_SECONDS = 300.0

SLACK_SIGNATURE = "x-slack-signature"
SLACK_TIMESTAMP = "x-slack-request-timestamp"
PAGERDUTY_SIGNATURE = "x-pagerduty-signature"


class SignatureError(Rejected):
    """A request whose signature is missing, malformed, stale or wrong: answered 401."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(401, reason, message)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # aiohttp's CIMultiDict is case-insensitive; a plain dict (tests) may not be.
    value = headers.get(name)
    if value is None:
        for k, v in headers.items():
            if k.lower() == name:
                return v
    return value


def _hmac_hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


# --- Slack ---------------------------------------------------------------------------------


def slack_signature(signing_secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Slack-Signature` value Slack sends for this timestamp and body."""
    return "v0=" + _hmac_hex(signing_secret, b"v0:" + timestamp.encode("ascii") + b":" + body)


def verify_slack(
    signing_secret: str,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    max_age: float = SLACK_MAX_AGE_SECONDS,
) -> None:
    """Raise `SignatureError` unless the request is signed with `signing_secret` and its
    timestamp is within `max_age` seconds of `now` (unix seconds) either way."""
    if not signing_secret:
        raise SignatureError("not_configured", "Slack signing secret is not configured")
    signature = _header(headers, SLACK_SIGNATURE)
    timestamp = _header(headers, SLACK_TIMESTAMP)
    if not signature or not timestamp:
        raise SignatureError(
            "missing_signature",
            "missing X-Slack-Signature or X-Slack-Request-Timestamp header",
        )
    timestamp = timestamp.strip()
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise SignatureError("malformed_signature",
                             "X-Slack-Request-Timestamp is not a unix time in seconds")
    if abs(now - int(timestamp)) > max_age:
        raise SignatureError("stale_request",
                             "Slack request timestamp is more than 5 minutes from server time")
    signature = signature.strip()
    if not signature.startswith("v0="):
        raise SignatureError("malformed_signature", "X-Slack-Signature is not a v0= signature")
    expected = slack_signature(signing_secret, timestamp, body)
    if not hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8")):
        raise SignatureError("bad_signature", "Slack signature does not verify")


# --- PagerDuty -----------------------------------------------------------------------------


def pagerduty_signature(secret: str, body: bytes) -> str:
    """One `v1=<hex>` entry of `X-PagerDuty-Signature` for this secret and body."""
    return "v1=" + _hmac_hex(secret, body)


def verify_pagerduty(secrets: str | Sequence[str], headers: Mapping[str, str], body: bytes) -> None:
    """Raise `SignatureError` unless one `v1` signature in `X-PagerDuty-Signature` matches the
    body under one of our `secrets` (several while we rotate ours; PagerDuty sends several while
    it rotates its own)."""
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    keys = [k for k in keys if k]
    if not keys:
        raise SignatureError("not_configured", "PagerDuty webhook secret is not configured")
    header = _header(headers, PAGERDUTY_SIGNATURE)
    if not header or not header.strip():
        raise SignatureError("missing_signature", "missing X-PagerDuty-Signature header")
    offered = [s.strip() for s in header.split(",")]
    v1 = [s for s in offered if s.startswith("v1=") and len(s) > 3]
    if not v1:
        raise SignatureError("malformed_signature",
                             "X-PagerDuty-Signature has no v1= signature")
    expected = [pagerduty_signature(k, body).encode("ascii") for k in keys]
    # Compare every pair (no early exit) so timing does not tell which entry was close.
    ok = False
    for sig in v1:
        for exp in expected:
            ok |= hmac.compare_digest(exp, sig.encode("utf-8"))
    if not ok:
        raise SignatureError("bad_signature", "PagerDuty signature does not verify")


class _Open(BaseModel):
    # PagerDuty keeps adding fields: tolerate them, require only what we use.
    model_config = ConfigDict(extra="allow", frozen=True)


class _PdRef(_Open):
    id: str | None = None
    type: str | None = None
    summary: str | None = None
    html_url: str | None = None


class _PdEvent(_Open):
    id: str
    event_type: str
    resource_type: str | None = None
    occurred_at: datetime
    agent: _PdRef | None = None
    data: dict[str, Any] | None = None


class _PdEnvelope(_Open):
    event: _PdEvent


PagerDutyAction = Literal["ack", "resolve"]

_ACTIONS: dict[str, PagerDutyAction] = {
    "incident.acknowledged": "ack",
    "incident.resolved": "resolve",
}


class PagerDutyWebhookEvent(Frozen):
    """The fields of a v3 webhook the router acts on, flattened.

    `incident_key` is `event.data.incident_key`: the Events API v2 `dedup_key` of the alert that
    opened the PagerDuty incident, i.e. the dedup key the router sent (its incident's
    `Notification.dedup_key`). It is only present for `data.type == "incident"` events, and it is
    not ours when PagerDuty grouped our alert into an incident opened by another alert.
    """

    event_id: str
    event_type: str
    resource_type: str | None = None
    occurred_at: datetime
    agent_id: str | None = None
    agent_name: str | None = None
    incident_id: str | None = None  # PagerDuty's incident id, e.g. PGR0VU2
    incident_number: int | None = None
    incident_url: str | None = None
    incident_key: str | None = None
    incident_status: str | None = None
    title: str | None = None
    service_name: str | None = None

    @property
    def action(self) -> PagerDutyAction | None:
        """What this event means for the router's incident: ack, resolve, or nothing."""
        return _ACTIONS.get(self.event_type)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def parse_pagerduty_webhook(body: bytes) -> PagerDutyWebhookEvent:
    """Parse a v3 webhook body (after `verify_pagerduty`); `Rejected` 400/422 if malformed."""
    raw = decode_json(body)
    try:
        env = _PdEnvelope.model_validate(raw)
    except ValidationError as exc:
        raise shape_error(exc) from None
    ev = env.event
    data = ev.data or {}
    fields: dict[str, Any] = {}
    if data.get("type") == "incident":
        number = data.get("number")
        service = data.get("service")
        fields = {
            "incident_id": _str(data.get("id")),
            "incident_number": number if isinstance(number, int) else None,
            "incident_url": _str(data.get("html_url")),
            "incident_key": _str(data.get("incident_key")),
            "incident_status": _str(data.get("status")),
            "title": _str(data.get("title")),
            "service_name": _str(service.get("summary")) if isinstance(service, dict) else None,
        }
    elif isinstance(ref := data.get("incident"), dict):
        # incident_note, incident_status_update, incident_responder: a reference only.
        fields = {"incident_id": _str(ref.get("id")), "incident_url": _str(ref.get("html_url")),
                  "title": _str(ref.get("summary"))}
    return PagerDutyWebhookEvent(
        event_id=ev.id,
        event_type=ev.event_type,
        resource_type=ev.resource_type,
        occurred_at=as_utc(ev.occurred_at),
        agent_id=ev.agent.id if ev.agent else None,
        agent_name=ev.agent.summary if ev.agent else None,
        **fields,
    )
