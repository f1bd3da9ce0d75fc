"""The console's read pages. Each reads the backend's views (alerts, incidents, dead letters)
or the config in effect, like the REST API's GET endpoints, and renders HTML."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from markupsafe import Markup

from router import runbooks
from router.api.incidents import find_incident
from router.api.keys import BACKEND, RUNTIME
from router.api.oncall import on_call_report
from router.api.quiet import open_incidents, quiet_reasons
from router.backends.pages import InvalidCursor
from router.incidents import Incident, IncidentStatus, TimelineKind, postmortem_input
from router.model import Alert, Severity, Status
from router.noise.muters import labels_of
from router.noise.silences import Silence, SilenceState
from router.oncall import shifts
from router.postmortem import render_postmortem
from router.ui.guard import PREFIX
from router.ui.html import html, render
from router.ui.keys import CLOCK, role_of, session_of
from router.ui.matching import inhibitor_of
from router.ui.views import (
    FILTERS,
    PAGE_ROWS,
    AlertFilter,
    distinct,
    group_alerts,
    incident_rows,
    severity_counts,
    silence_batches,
)

RESOLVED_SHOWN = 50
# Open incidents one page of the list renders, the most urgent first; the next page shows
# the next as many.
OPEN_SHOWN = 100
HANDOFFS_SHOWN = 3


def page(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    """A full page: the template with who is logged in (nav, CSRF token of the forms)."""
    session = session_of(request)
    role = role_of(request)
    return html(template, status=status, me=session, can_write=role.can_write,
                csrf=session.csrf, nav=request.path, prefix=PREFIX, **context)


# --- alerts --------------------------------------------------------------------------------


async def _alert_context(request: web.Request) -> dict[str, Any]:
    """One page of the filtered list (the backend filters, counts and pages) and why its
    alerts are quiet."""
    backend = request.config_dict[BACKEND]
    f = AlertFilter.of(request.query)
    query = f.to_query()
    cursor = request.query.get("cursor") or None
    try:
        found = await backend.alert_search(query, limit=PAGE_ROWS, cursor=cursor)
    except InvalidCursor as exc:
        raise web.HTTPBadRequest(reason=str(exc)) from None
    groups, _ = group_alerts(found.items, limit=PAGE_ROWS)
    now = request.config_dict[CLOCK]()
    active = [s for s in await backend.silences()
              if s.state(now) is SilenceState.ACTIVE]  # the engine keeps expired ones a while
    live = "&".join(p for p in (f.query(), urlencode({"cursor": cursor}) if cursor else "")
                    if p)
    return {"filter": f, "groups": groups, "total": found.total, "shown": len(found.items),
            "cursor": cursor, "next_cursor": found.next_cursor, "live_query": live,
            "severities": severity_counts(await backend.alert_counts("severity", query)),
            "group_totals": await backend.alert_counts("group_key", query),
            "now": now, "quiet": _quiet(request, found.items, active, now,
                                        await open_incidents(backend, request))}


def _quiet(request: web.Request, alerts: list[Alert], active: list[Silence],
           now: datetime, incidents: list[Incident]) -> dict[str, dict[str, Any]]:
    """Why the shown alerts are quiet: each batch against only the silences that can mute it.
    Inhibition here looks only at the alerts shown (an alert's own page asks the store), so
    each batch is worked out with the shown alerts that can inhibit, in the list's order."""
    rules = request.config_dict[RUNTIME].snapshot.config.inhibit_rules
    sources = {a.key for a in alerts if rules and a.status is Status.FIRING
               and any(r.source_matchers.matches(labels_of(a)) for r in rules)}
    quiet: dict[str, dict[str, Any]] = {}
    for batch, silences in silence_batches(alerts, active):
        keys = {a.key for a in batch}
        peers = [a for a in alerts if a.key in keys or a.key in sources] if sources else batch
        found = quiet_reasons(peers, silences, request, now, incidents)
        quiet.update((k, v) for k, v in found.items() if k in keys)
    return quiet


async def alerts(request: web.Request) -> web.Response:
    context = await _alert_context(request)
    config = request.config_dict[RUNTIME].snapshot.config
    choices = {
        "severity": [s.value for s in Severity],
        "status": ["firing", "resolved"],
        "source": ["alertmanager", "cloudwatch", "generic"],
        "service": distinct([*config.oncall.services, *(r.service for r in
                                                         request.config_dict[RUNTIME]
                                                         .snapshot.rules.rules)]),
        "team": distinct([*(s.team for s in config.oncall.services.values()),
                          *(r.team for r in request.config_dict[RUNTIME].snapshot.rules.rules)]),
    }
    return page(request, "alerts.html", filters=FILTERS, choices=choices, **context)


async def alert_rows(request: web.Request) -> web.Response:
    """The live part of the alert list (polled by console.js)."""
    text = render("_alert_rows.html", prefix=PREFIX, **await _alert_context(request))
    return web.Response(text=text, content_type="text/html", charset="utf-8")


async def find_alert(request: web.Request, key: str) -> Alert | None:
    """The current alert `<source>:<fingerprint>`, if there is one."""
    found: Alert | None = await request.config_dict[BACKEND].alert(key)
    return found


async def alert(request: web.Request) -> web.Response:
    key = request.match_info["key"]
    found = await find_alert(request, key)
    if found is None:
        raise web.HTTPNotFound(reason=f"no current alert {key}")
    backend = request.config_dict[BACKEND]
    group_key = found.group_key or found.name
    incidents = await backend.incidents(group_key=group_key, limit=1)
    incident = incidents[0] if incidents else None
    sent = [e for e in incident.timeline if e.kind in (TimelineKind.NOTIFIED, TimelineKind.PAGED)
            ] if incident else []
    parked = [d for d in await backend.outbox.list() if d.notification.group_key == group_key]
    # Inhibition depends on what else fires: only the alert that inhibits this one, if any.
    rules = request.config_dict[RUNTIME].snapshot.config.inhibit_rules
    source = await inhibitor_of(backend, found, rules) if rules else None
    quiet = quiet_reasons([found, *([source] if source else [])], await backend.silences(),
                          request, request.config_dict[CLOCK](),
                          await open_incidents(backend, request))
    return page(request, "alert.html", alert=found, incident=incident, sent=sent, parked=parked,
                quiet=quiet.get(found.key), key=found.key)


# --- incidents -----------------------------------------------------------------------------


def _offset(request: web.Request) -> int:
    """Where the page of open incidents starts (`?from=`, from the "next" link)."""
    try:
        offset = int(request.query.get("from", 0))
    except ValueError:
        raise web.HTTPBadRequest(reason="from must be a whole number") from None
    if offset < 0:
        raise web.HTTPBadRequest(reason="from must be 0 or more")
    return offset


async def _incident_rows(request: web.Request) -> dict[str, Any]:
    """A page of the most urgent open incidents, counts of all open ones, and (on the first
    page) the latest resolved ones."""
    backend = request.config_dict[BACKEND]
    offset = _offset(request)
    open_ = await backend.urgent_incidents(limit=OPEN_SHOWN, offset=offset)
    counts = await backend.incident_counts(status="open")
    done = [] if offset else await backend.incidents(status=IncidentStatus.RESOLVED.value,
                                                      limit=RESOLVED_SHOWN)
    policies = request.config_dict[RUNTIME].snapshot.config.severities
    now = request.config_dict[CLOCK]()
    rows = incident_rows(open_, policies, now) + incident_rows(done, policies, now)
    open_count = sum(counts.values())
    return {"rows": rows, "open_count": open_count, "severities": severity_counts(counts),
            "offset": offset, "shown": len(open_), "page_size": OPEN_SHOWN,
            "next": offset + OPEN_SHOWN if offset + OPEN_SHOWN < open_count else None}


async def incidents(request: web.Request) -> web.Response:
    return page(request, "incidents.html", **await _incident_rows(request))


async def incident_list_rows(request: web.Request) -> web.Response:
    text = render("_incident_rows.html", prefix=PREFIX, **await _incident_rows(request))
    return web.Response(text=text, content_type="text/html", charset="utf-8")


async def load_incident(request: web.Request) -> Incident:
    ref = request.match_info["id"]
    incident = await find_incident(request.config_dict[BACKEND], ref)
    if incident is None:
        raise web.HTTPNotFound(reason=f"no incident {ref}")
    return incident


def incident_context(request: web.Request, incident: Incident) -> dict[str, Any]:
    snapshot = request.config_dict[RUNTIME].snapshot
    row = incident_rows([incident], snapshot.config.severities, request.config_dict[CLOCK]())[0]
    teams = distinct(s.team for s in snapshot.config.oncall.services.values())
    info = incident.details.get("alert_info")
    return {"incident": incident, "row": row, "teams": teams,
            "alert_info": info if isinstance(info, dict) else {},
            "timeline": sorted(incident.timeline, key=lambda e: e.at),
            "open": incident.status is not IncidentStatus.RESOLVED}


async def incident(request: web.Request, **extra: Any) -> web.Response:
    found = await load_incident(request)
    context = incident_context(request, found)
    context.setdefault("preview", None)
    context.setdefault("form", {})
    context.setdefault("problem", request.query.get("problem"))
    context.setdefault("done", request.query.get("done"))
    context.update(extra)
    return page(request, "incident.html", status=400 if extra.get("problem") else 200,
                **context)


async def incident_live(request: web.Request) -> web.Response:
    """The live part of the incident page: status, SLAs, timeline (polled by console.js)."""
    context = incident_context(request, await load_incident(request))
    text = render("_incident_live.html", prefix=PREFIX, **context)
    return web.Response(text=text, content_type="text/html", charset="utf-8")


def _postmortem(request: web.Request, incident: Incident) -> str:
    policies = request.config_dict[RUNTIME].snapshot.config.severities
    return render_postmortem(postmortem_input(incident, policies))


async def postmortem(request: web.Request) -> web.Response:
    found = await load_incident(request)
    # The same CommonMark-and-allow-list rendering as runbooks: the draft quotes user text.
    return page(request, "postmortem.html", incident=found,
                rendered=Markup(runbooks.render(_postmortem(request, found))))


async def postmortem_download(request: web.Request) -> web.Response:
    found = await load_incident(request)
    return web.Response(text=_postmortem(request, found), content_type="text/markdown",
                        charset="utf-8", headers={
                            "Content-Disposition":
                                f'attachment; filename="{found.id}-postmortem.md"'})


async def declare_form(request: web.Request) -> web.Response:
    config = request.config_dict[RUNTIME].snapshot.config
    return page(request, "declare.html", severities=[s.value for s in Severity],
                services=distinct(config.oncall.services), form={}, problem=None)


# --- on-call, dead letters, rules ----------------------------------------------------------


async def oncall(request: web.Request) -> web.Response:
    config = request.config_dict[RUNTIME].snapshot.config
    now = request.config_dict[CLOCK]()
    report = on_call_report(config.oncall, now)
    handoffs = {
        s.name: [sh for sh in shifts(s, now, now + (HANDOFFS_SHOWN + 1) * s.shift_length)
                 ][1:HANDOFFS_SHOWN + 1]
        for s in config.oncall.schedules
    }
    return page(request, "oncall.html", report=report, handoffs=handoffs, now=now,
                services=config.oncall.services)


async def dead_letters(request: web.Request) -> web.Response:
    receiver = request.query.get("receiver") or None
    items = await request.config_dict[BACKEND].outbox.list(receiver=receiver)
    everyone = items if receiver is None else await request.config_dict[BACKEND].outbox.list()
    return page(request, "dead_letters.html", items=items, receiver=receiver,
                receivers=distinct(d.receiver for d in everyone),
                done=request.query.get("done"))


async def rules(request: web.Request, **extra: Any) -> web.Response:
    snapshot = request.config_dict[RUNTIME].snapshot
    context: dict[str, Any] = {"rules": snapshot.rules.rules, "files": snapshot.rules.files,
                               "result": None, "problem": None, "form": {}}
    context.update(extra)
    return page(request, "rules.html", status=400 if context["problem"] else 200, **context)


async def index(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther(f"{PREFIX}/alerts")
