"""The console's writes. Each is the REST API's command, built and appended the same way
(router.api.incidents: the same request models, `command()` and `append()`), with the actor
`console:<user>`; then Post/Redirect/Get back to the page, which shows the change once the
engine has applied it. The update form's preview renders the shipped update template."""

from __future__ import annotations

from typing import Any, TypeVar
from uuid import uuid4

from aiohttp import web
from pydantic import BaseModel, ValidationError

from router.api.incidents import (
    AckBody,
    DeclareBody,
    PageBody,
    ResolveBody,
    UpdateBody,
    append,
    command,
    is_open,
    wait_for_group,
)
from router.api.keys import BACKEND, DISPATCHER, RUNTIME
from router.delivery.render import Renderer
from router.incidents import Command, Incident
from router.model import Notification, NotificationKind, Severity
from router.ruletest import CaseError, alert_from_fields
from router.ui import pages
from router.ui.guard import PREFIX
from router.ui.keys import CLOCK, session_of
from router.ui.views import PasteError, pasted_alert

B = TypeVar("B", bound=BaseModel)


def problem_of(exc: ValidationError) -> str:
    out = []
    for e in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in e["loc"])
        out.append(f"{loc}: {e['msg']}" if loc else str(e["msg"]))
    return "; ".join(out)


async def form_of(request: web.Request) -> dict[str, str]:
    """The posted fields but csrf, blank ones left out (they mean "not given")."""
    form = await request.post()
    return {k: v.strip() for k, v in form.items()
            if isinstance(v, str) and v.strip() and k != "csrf"}


def actor_of(request: web.Request) -> str:
    return f"console:{session_of(request).user}"


def _to_incident(incident: Incident, done: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"{PREFIX}/incidents/{incident.id}?done={done}")


async def _issue(request: web.Request, name: Command, model: type[B],
                 args: dict[str, Any] | None = None) -> web.Response:
    incident = await pages.load_incident(request)
    form = await form_of(request)
    if not is_open(incident):
        return await pages.incident(request, problem=f"incident {incident.id} is resolved",
                                    form=form)
    if args is None:
        try:
            args = model.model_validate(form).model_dump(mode="json", exclude_none=True)
        except ValidationError as exc:
            return await pages.incident(request, problem=problem_of(exc), form=form)
    event_args = args
    event = command(name, incident, actor_of(request), event_args)
    if (await append(request.config_dict[BACKEND], [event])) is not None:
        return await pages.incident(request, problem="the log cannot take commands now, "
                                                      "retry in a few seconds", form=form)
    raise _to_incident(incident, name.value)


async def ack(request: web.Request) -> web.Response:
    return await _issue(request, Command.ACK, AckBody)


async def update(request: web.Request) -> web.Response:
    return await _issue(request, Command.UPDATE, UpdateBody)


async def resolve(request: web.Request) -> web.Response:
    return await _issue(request, Command.RESOLVE, ResolveBody)


async def page_someone(request: web.Request) -> web.Response:
    form = await form_of(request)
    target = form.get("target", "").lstrip("@")
    kind = form.get("kind", "user")
    config = request.config_dict[RUNTIME].snapshot.config
    if kind == "team" and target and config.oncall.policy_for_team(target) is None:
        return await pages.incident(
            request, form=form, problem=f"no service in oncall.services is owned by team "
                                        f"{target!r}, so it has no escalation policy to page")
    try:
        PageBody.model_validate({kind if kind in ("team", "user") else "user": target or None})
    except ValidationError as exc:
        return await pages.incident(request, problem=problem_of(exc), form=form)
    return await _issue(request, Command.PAGE, PageBody,
                        args={"target": target, "target_kind": "team" if kind == "team"
                              else "user"})


def update_preview(incident: Incident, body: UpdateBody, request: web.Request) -> str:
    """The update as the shipped `update` template words it (receivers may override it)."""
    severity = body.severity or incident.severity
    details: dict[str, Any] = {
        "actor": actor_of(request), "note": body.message, "message": body.message,
        "status": body.status or incident.status.value, "impact": incident.impact or None,
        "root_cause": body.root_cause or incident.root_cause,
        "mitigation": body.mitigation or incident.mitigation, "eta": body.eta,
        "channel": incident.channel, "commander": incident.commander,
    }
    n = Notification(id="preview", receiver="preview", kind=NotificationKind.UPDATE,
                     group_key=incident.group_key, dedup_key="preview", severity=severity,
                     title=incident.title, incident_id=incident.id,
                     created_at=request.config_dict[CLOCK](), details=details)
    return Renderer().render(n).text


async def preview(request: web.Request) -> web.Response:
    incident = await pages.load_incident(request)
    form = await form_of(request)
    try:
        body = UpdateBody.model_validate(form)
    except ValidationError as exc:
        return await pages.incident(request, problem=problem_of(exc), form=form)
    return await pages.incident(request, preview=update_preview(incident, body, request),
                                form=form)


async def declare(request: web.Request) -> web.Response:
    form = await form_of(request)
    try:
        body = DeclareBody.model_validate(form)
    except ValidationError as exc:
        config = request.config_dict[RUNTIME].snapshot.config
        return pages.page(request, "declare.html", status=422, form=form,
                          problem=problem_of(exc), severities=[s.value for s in Severity],
                          services=sorted(config.oncall.services))
    backend = request.config_dict[BACKEND]
    group_key = f"manual:{uuid4().hex}"
    event = command(Command.DECLARE, None, actor_of(request),
                    body.model_dump(mode="json", exclude_none=True), group_key=group_key)
    if (await append(backend, [event])) is not None:
        raise web.HTTPServiceUnavailable(reason="the log cannot take commands now, retry")
    found = await wait_for_group(backend, group_key)
    if found is None:  # not applied yet: the list shows it shortly
        raise web.HTTPSeeOther(f"{PREFIX}/incidents?done=declare")
    raise _to_incident(found, "declare")


async def replay(request: web.Request) -> web.Response:
    form = await form_of(request)
    ident, receiver = form.get("id"), form.get("receiver")
    if (ident is None) == (receiver is None):
        raise web.HTTPUnprocessableEntity(reason="replay one dead letter (id) or all of a "
                                                 "receiver's (receiver), not both or neither")
    count = await request.config_dict[DISPATCHER].replay(id=ident, receiver=receiver)
    raise web.HTTPSeeOther(f"{PREFIX}/dead-letters?done={count}")


async def classify(request: web.Request) -> web.Response:
    form = await form_of(request)
    snapshot = request.config_dict[RUNTIME].snapshot
    try:
        spec = pasted_alert(form.get("alert", ""), form.get("value", ""), form.get("source", ""))
        alert = alert_from_fields(spec, snapshot.config)[0]
    except (PasteError, CaseError) as exc:
        return await pages.rules(request, problem=str(exc), form=form)
    return await pages.rules(request, result=snapshot.rules.classify(alert), form=form)
