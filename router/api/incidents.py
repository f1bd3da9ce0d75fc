"""REST API of incidents: declare, act on, read, and draft the post-mortem.

Every change is a `CommandEvent` appended to the log; the engine (single writer per group key)
applies it, so the answer to a command is 202 (accepted, applied shortly) except for declare,
which waits briefly for the engine to open the incident so the caller learns its id. Reads come
from the backend's incident view. With `api.tokens` configured, every endpoint needs one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import date
from typing import Any, Literal, TypeVar
from uuid import uuid4

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from router.api.keys import BACKEND, RUNTIME
from router.api.ops import require_api_token
from router.api.pagination import paginated
from router.api.webhooks import error_response, json_response, read_body
from router.backends.base import Backend, LogUnavailable
from router.commands import INCIDENT_ID
from router.config import Config
from router.incidents import Command, Incident, IncidentStatus, postmortem_input
from router.model import CommandEvent, Severity, utcnow
from router.postmortem import render_postmortem, render_public_postmortem
from router.sources.base import Rejected

log = logging.getLogger(__name__)

# How long declare waits for the engine to open the incident before answering 202.
DECLARE_WAIT_SECONDS = 2.0
_POLL_SECONDS = 0.05
# How many incidents a lookup by group key or dedup key scans (the view lists newest first).
LOOKUP_LIMIT = 1000
OPEN = "open"


# --- lookups shared by the REST API, Slack and PagerDuty ----------------------------------------


def is_open(incident: Incident) -> bool:
    return incident.open


async def find_incident(backend: Backend, ref: str) -> Incident | None:
    """The incident named by `ref`: an id (INC-YYYYMMDD-N) or a group key."""
    if INCIDENT_ID.fullmatch(ref.upper()):
        return await backend.incident(ref.upper())
    found = await backend.incidents(group_key=ref, limit=1)
    return found[0] if found else None


async def wait_for_group(backend: Backend, group_key: str,
                         within: float = DECLARE_WAIT_SECONDS) -> Incident | None:
    """Poll the view until the engine has opened the incident of `group_key`, or time out."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        incidents = await backend.incidents(group_key=group_key, limit=1)
        found = incidents[0] if incidents else None
        if found is not None or asyncio.get_running_loop().time() >= deadline:
            return found
        await asyncio.sleep(_POLL_SECONDS)


def resolve_page_target(config: Config, target: str,
                        kind: Literal["user", "team"] | None) -> Literal["user", "team"]:
    """`@name` without a kind pages a team when a service is owned by that team, else a user."""
    if kind is not None:
        return kind
    return "team" if config.oncall.policy_for_team(target) is not None else "user"


def command(name: Command, incident: Incident | None, actor: str,
            args: dict[str, Any], group_key: str | None = None) -> CommandEvent:
    return CommandEvent(
        command=name.value,
        incident_id=incident.id if incident else None,
        group_key=incident.group_key if incident else group_key,
        actor=actor, at=utcnow(), args=args,
    )


async def append(backend: Backend, events: Sequence[CommandEvent]) -> web.Response | None:
    """Append durably; a 503 answer if the log cannot take them now."""
    try:
        await backend.log.append(list(events))
    except LogUnavailable as exc:
        log.error("command not accepted: %s", exc)
        return error_response(503, "the log cannot take commands now, retry later",
                              **{"Retry-After": "5"})
    return None


def publish_refusal(incident: Incident) -> str | None:
    """Why the post-mortem cannot be published (409), or None: publishing is once, after
    resolution (a second request is refused; two racing ones publish once, in the engine)."""
    if incident.open:
        return (f"incident {incident.id} is not resolved yet: the post-mortem is published "
                "after resolution")
    published = incident.details.get("postmortem_published")
    if published:
        return f"the post-mortem of {incident.id} was already published at {published}"
    return None


def publish_args(incident: Incident, config: Config) -> dict[str, Any]:
    """The `postmortem_publish` command's args: the post-mortem as the draft renders it now
    (for the incident channel) and its public version (for the status page: no people)."""
    inp = postmortem_input(incident, config.severities)
    return {"text": render_postmortem(inp), "public_text": render_public_postmortem(inp)}


def incident_json(incident: Incident) -> dict[str, object]:
    data: dict[str, object] = incident.model_dump(mode="json")
    return data


# --- request bodies ----------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    # Who acts, for the timeline ("api:<actor>"); the token says nothing about the person.
    actor: str | None = Field(default=None, min_length=1, max_length=200)


class DeclareBody(_Body):
    title: str = Field(min_length=1, max_length=500)
    severity: Severity
    impact: str | None = Field(default=None, max_length=5000)
    commander: str | None = Field(default=None, min_length=1, max_length=200)
    service: str | None = Field(default=None, min_length=1, max_length=200)


class AckBody(_Body):
    pass


class UpdateBody(_Body):
    message: str | None = Field(default=None, min_length=1, max_length=5000)
    status: Literal["investigating", "identified", "monitoring"] | None = None
    severity: Severity | None = None
    root_cause: str | None = Field(default=None, min_length=1, max_length=5000)
    mitigation: str | None = Field(default=None, min_length=1, max_length=5000)
    eta: str | None = Field(default=None, min_length=1, max_length=200)
    commander: str | None = Field(default=None, min_length=1, max_length=200)
    comms_lead: str | None = Field(default=None, min_length=1, max_length=200)
    # For the post-mortem draft.
    users_affected: str | None = Field(default=None, min_length=1, max_length=2000)
    revenue_impact: str | None = Field(default=None, min_length=1, max_length=2000)
    slo_impact: str | None = Field(default=None, min_length=1, max_length=2000)

    @model_validator(mode="after")
    def _something(self) -> UpdateBody:
        if not self.model_dump(exclude={"actor"}, exclude_none=True):
            raise ValueError("give at least one of message, status, severity, root_cause, "
                             "mitigation, eta, commander, comms_lead, users_affected, "
                             "revenue_impact, slo_impact")
        return self


class ResolveBody(_Body):
    message: str | None = Field(default=None, min_length=1, max_length=5000)


class PageBody(_Body):
    team: str | None = Field(default=None, min_length=1, max_length=200)
    user: str | None = Field(default=None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _one(self) -> PageBody:
        if (self.team is None) == (self.user is None):
            raise ValueError("give exactly one of team or user")
        return self


class ActionBody(_Body):
    text: str = Field(min_length=1, max_length=500)
    owner: str | None = Field(default=None, min_length=1, max_length=200)
    due: date | None = None  # the day it is due (reminded once that day has ended)


class ActionStatusBody(_Body):
    status: Literal["open", "done"]


class PostmortemDoneBody(_Body):
    url: str | None = Field(default=None, min_length=1, max_length=2000)


class PostmortemPublishBody(_Body):
    """Only the optional `actor`: what is published is the draft as the router renders it."""


B = TypeVar("B", bound=_Body)


async def parse_body(request: web.Request, model: type[B]) -> B:
    """The JSON body as `model`; an empty body counts as `{}`. `Rejected` 400/415/422."""
    limit = request.app[RUNTIME].snapshot.config.server.max_body_bytes
    body = await read_body(request, limit)
    if not body.strip():
        raw: object = {}
    else:
        try:
            raw = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise Rejected(400, "malformed_json", "body is not valid JSON") from None
    if not isinstance(raw, dict):
        raise Rejected(400, "malformed_json", "body must be a JSON object")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for e in exc.errors(include_url=False, include_input=False):
            loc = ".".join(str(p) for p in e["loc"])
            problems.append(f"{loc}: {e['msg']}" if loc else str(e["msg"]))
        raise Rejected(422, "invalid_body", "; ".join(problems)) from None


def _actor(body: _Body) -> str:
    return f"api:{body.actor}" if body.actor else "api"


# --- handlers ----------------------------------------------------------------------------------


async def declare(request: web.Request) -> web.Response:
    if (denied := require_api_token(request)) is not None:
        return denied
    try:
        body = await parse_body(request, DeclareBody)
    except Rejected as exc:
        return error_response(exc.status, exc.message)
    backend = request.app[BACKEND]
    group_key = f"manual:{uuid4().hex}"
    event = command(Command.DECLARE, None, _actor(body), _args(body), group_key=group_key)
    if (failed := await append(backend, [event])) is not None:
        return failed
    incident = await wait_for_group(backend, group_key)
    if incident is None:
        return json_response(202, {"status": "accepted", "group_key": group_key,
                                   "message": "declared; the incident opens shortly"},
                             Location=f"/api/v1/incidents?group_key={group_key}")
    return json_response(201, {"status": "success", "data": incident_json(incident)},
                         Location=f"/api/v1/incidents/{incident.id}")


async def _target(request: web.Request) -> Incident | web.Response:
    if (denied := require_api_token(request)) is not None:
        return denied
    ref = request.match_info["id"]
    incident = await find_incident(request.app[BACKEND], ref)
    if incident is None:
        return error_response(404, f"no incident {ref}")
    return incident


async def _act(request: web.Request, name: Command, incident: Incident, actor: str,
               args: dict[str, Any]) -> web.Response:
    event = command(name, incident, actor, args)
    if (failed := await append(request.app[BACKEND], [event])) is not None:
        return failed
    return json_response(202, {"status": "accepted", "incident_id": incident.id,
                               "command": name.value})


def _resolved(incident: Incident) -> web.Response:
    return error_response(409, f"incident {incident.id} is already resolved")


async def _command_on(request: web.Request, model: type[B], *, resolved: bool = False,
                      any_state: bool = False) -> tuple[Incident, B] | web.Response:
    """The incident of the path and the parsed body, or the error answer: 401/404, 400/422,
    409 when the incident is not open (or, with `resolved`, not yet resolved)."""
    incident = await _target(request)
    if isinstance(incident, web.Response):
        return incident
    try:
        body = await parse_body(request, model)
    except Rejected as exc:
        return error_response(exc.status, exc.message)
    if any_state:
        return incident, body
    if resolved and is_open(incident):
        return error_response(409, f"incident {incident.id} is not resolved yet")
    if not resolved and not is_open(incident):
        return _resolved(incident)
    return incident, body


def _args(body: _Body) -> dict[str, Any]:
    return body.model_dump(mode="json", exclude={"actor"}, exclude_none=True)


async def _command(request: web.Request, command: Command, model: type[B]) -> web.Response:
    """ack, update and resolve: the body's fields (but the actor) are the command's args."""
    found = await _command_on(request, model)
    if isinstance(found, web.Response):
        return found
    incident, body = found
    return await _act(request, command, incident, _actor(body), _args(body))


async def ack(request: web.Request) -> web.Response:
    return await _command(request, Command.ACK, AckBody)  # AckBody has no args: {}


async def update(request: web.Request) -> web.Response:
    return await _command(request, Command.UPDATE, UpdateBody)


async def resolve(request: web.Request) -> web.Response:
    return await _command(request, Command.RESOLVE, ResolveBody)


async def page(request: web.Request) -> web.Response:
    found = await _command_on(request, PageBody)
    if isinstance(found, web.Response):
        return found
    incident, body = found
    config = request.app[RUNTIME].snapshot.config
    if body.team is not None:
        if config.oncall.policy_for_team(body.team) is None:
            return error_response(422, f"no service in oncall.services is owned by team "
                                       f"{body.team!r}, so it has no escalation policy to page")
        args: dict[str, Any] = {"target": body.team, "target_kind": "team"}
    else:
        args = {"target": body.user, "target_kind": "user"}
    return await _act(request, Command.PAGE, incident, _actor(body), args)


async def postmortem_done(request: web.Request) -> web.Response:
    found = await _command_on(request, PostmortemDoneBody, resolved=True)
    if isinstance(found, web.Response):
        return found
    incident, body = found
    return await _act(request, Command.POSTMORTEM_DONE, incident, _actor(body), _args(body))


async def postmortem_publish(request: web.Request) -> web.Response:
    """The post-mortem to the incident channel and the Statuspage incident's postmortem."""
    found = await _command_on(request, PostmortemPublishBody, any_state=True)
    if isinstance(found, web.Response):
        return found
    incident, body = found
    if (refusal := publish_refusal(incident)) is not None:
        return error_response(409, refusal)
    config = request.app[RUNTIME].snapshot.config
    return await _act(request, Command.POSTMORTEM_PUBLISH, incident, _actor(body),
                      publish_args(incident, config))


_STATUSES = {s.value for s in IncidentStatus} | {OPEN}


async def list_incidents(request: web.Request) -> web.Response:
    if (denied := require_api_token(request)) is not None:
        return denied
    status = request.query.get("status")
    if status is not None and status not in _STATUSES:
        return error_response(400, f"status must be one of {', '.join(sorted(_STATUSES))}")
    group_key = request.query.get("group_key") or None
    return await paginated(request, lambda limit, cursor: request.app[BACKEND].incident_page(
        status=status, group_key=group_key, limit=limit, cursor=cursor), incident_json)


async def get_incident(request: web.Request) -> web.Response:
    incident = await _target(request)
    if isinstance(incident, web.Response):
        return incident
    return json_response(200, {"status": "success", "data": incident_json(incident)})


async def get_postmortem(request: web.Request) -> web.Response:
    incident = await _target(request)
    if isinstance(incident, web.Response):
        return incident
    policies = request.app[RUNTIME].snapshot.config.severities
    text = render_postmortem(postmortem_input(incident, policies))
    return web.Response(text=text, content_type="text/markdown", charset="utf-8")


async def add_action(request: web.Request) -> web.Response:
    """A post-mortem action item (open or resolved incident: post-mortems come after)."""
    found = await _command_on(request, ActionBody, any_state=True)
    if isinstance(found, web.Response):
        return found
    incident, body = found
    return await _act(request, Command.ACTION, incident, _actor(body), _args(body))


async def set_action(request: web.Request) -> web.Response:
    found = await _command_on(request, ActionStatusBody, any_state=True)
    if isinstance(found, web.Response):
        return found
    incident, body = found
    item = request.match_info["item"]
    items = incident.details.get("action_items")
    if not any(isinstance(i, dict) and i.get("id") == item
               for i in (items if isinstance(items, list) else ())):
        return error_response(404, f"incident {incident.id} has no action item {item}")
    return await _act(request, Command.ACTION_UPDATE, incident, _actor(body),
                      {"id": item, "status": body.status})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/incidents", declare)
    app.router.add_get("/api/v1/incidents", list_incidents)
    app.router.add_get("/api/v1/incidents/{id}", get_incident)
    app.router.add_get("/api/v1/incidents/{id}/postmortem", get_postmortem)
    app.router.add_post("/api/v1/incidents/{id}/ack", ack)
    app.router.add_post("/api/v1/incidents/{id}/update", update)
    app.router.add_post("/api/v1/incidents/{id}/resolve", resolve)
    app.router.add_post("/api/v1/incidents/{id}/page", page)
    app.router.add_post("/api/v1/incidents/{id}/postmortem-done", postmortem_done)
    app.router.add_post("/api/v1/incidents/{id}/postmortem/publish", postmortem_publish)
    app.router.add_post("/api/v1/incidents/{id}/actions", add_action)
    app.router.add_post("/api/v1/incidents/{id}/actions/{item}", set_action)
