"""The router's own public status page, `GET /status`, for setups without Statuspage.

Public means: components (the service names of `incidents.components`) with a status derived
from the open incidents of that service, and the open incidents at or above
`incidents.statuspage_at` with their latest status update. Nothing internal leaves: no alert
labels, people, channels, group keys or incident ids. All text is HTML-escaped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

from aiohttp import web

from router.api.incidents import is_open
from router.api.keys import BACKEND, RUNTIME
from router.api.webhooks import error_response
from router.incidents import Incident, TimelineKind
from router.model import Severity

OPERATIONAL = ("operational", "Operational")
# The worst open incident of a service decides its component status (Statuspage's words).
COMPONENT_STATUS: dict[Severity, tuple[str, str]] = {
    Severity.SEV1: ("major_outage", "Major outage"),
    Severity.SEV2: ("partial_outage", "Partial outage"),
    Severity.SEV3: ("degraded_performance", "Degraded performance"),
    Severity.SEV4: ("degraded_performance", "Degraded performance"),
}
DEFAULT_UPDATE = "We are investigating this issue."


@dataclass(frozen=True)
class PublicIncident:
    title: str
    status: str
    severity: Severity
    service: str | None
    started: str
    update: str
    updated: str


def latest_update(incident: Incident) -> tuple[str, str]:
    """The latest status update's message and time (UTC), or the default opening words.

    The engine keeps the updates people wrote in `details["updates"]` (message, status, time);
    only the message is public (not who wrote it, nor root-cause notes on the timeline)."""
    updates = incident.details.get("updates")
    if isinstance(updates, list):
        for u in reversed(updates):
            if isinstance(u, dict) and isinstance(u.get("message"), str) and u["message"]:
                return u["message"], _when(u.get("at")) or _when(incident.opened_at)
    if any(e.kind is TimelineKind.STATUS_UPDATE for e in incident.timeline):
        return "We are working on this issue.", _when(incident.opened_at)
    return DEFAULT_UPDATE, _when(incident.opened_at)


def _when(value: object) -> str:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return ""
    if isinstance(value, datetime):
        return f"{value.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    return ""


def public_view(incidents: list[Incident], threshold: Severity) -> list[PublicIncident]:
    out = []
    for i in sorted(incidents, key=lambda i: i.opened_at, reverse=True):
        if not is_open(i) or not i.severity.at_least(threshold):
            continue
        text, when = latest_update(i)
        out.append(PublicIncident(title=i.title, status=i.status.value, severity=i.severity,
                                  service=i.service, started=f"{i.opened_at:%Y-%m-%d %H:%M} UTC",
                                  update=text, updated=when))
    return out


def component_statuses(services: list[str],
                       incidents: list[PublicIncident]) -> list[tuple[str, str, str]]:
    """(service, status code, status words) per component, worst open incident first."""
    out = []
    for service in services:
        worst = min((i.severity for i in incidents if i.service == service),
                    key=lambda s: s.rank, default=None)
        code, words = OPERATIONAL if worst is None else COMPONENT_STATUS[worst]
        out.append((service, code, words))
    return out


_STYLE = """
body{font-family:system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem}
.banner{padding:1rem;border-radius:6px;color:#fff;font-weight:600}
.ok{background:#2e7d32}.bad{background:#c62828}
ul.components{list-style:none;padding:0}
ul.components li{display:flex;justify-content:space-between;padding:.6rem 0;
border-bottom:1px solid #eee}
.operational{color:#2e7d32}.degraded_performance{color:#b28704}
.partial_outage{color:#e65100}.major_outage{color:#c62828}
.incident{border-left:4px solid #c62828;padding:.3rem 1rem;margin:1rem 0}
.meta{color:#666;font-size:.9rem}
"""


def render_status_page(components: list[tuple[str, str, str]],
                       incidents: list[PublicIncident]) -> str:
    e = escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta http-equiv="refresh" content="60">',
        f"<title>System status</title><style>{_STYLE}</style></head><body>",
        "<h1>System status</h1>",
    ]
    if incidents:
        parts.append('<p class="banner bad">Some systems are affected by an incident.</p>')
    else:
        parts.append('<p class="banner ok">All systems operational.</p>')
    if components:
        parts.append('<h2>Components</h2><ul class="components">')
        for service, code, words in components:
            parts.append(f'<li><span>{e(service)}</span><span class="{e(code)}">{e(words)}'
                         "</span></li>")
        parts.append("</ul>")
    parts.append("<h2>Open incidents</h2>")
    if not incidents:
        parts.append("<p>No open incidents.</p>")
    for i in incidents:
        affected = f" &middot; affects {e(i.service)}" if i.service else ""
        parts.append(
            '<div class="incident">'
            f"<h3>{e(i.title)}</h3>"
            f'<p><strong>{e(i.status.capitalize())}</strong> &middot; {e(i.updated)}: '
            f"{e(i.update)}</p>"
            f'<p class="meta">Started {e(i.started)}{affected}</p>'
            "</div>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


async def status_page(request: web.Request) -> web.Response:
    config = request.app[RUNTIME].snapshot.config
    if config.incidents.statuspage_receiver is not None:
        return error_response(404, "this router publishes its status on Statuspage")
    incidents = public_view(await request.app[BACKEND].incidents(status="open", limit=1000),
                            config.incidents.statuspage_at)
    components = component_statuses(sorted(config.incidents.components), incidents)
    html = render_status_page(components, incidents)
    return web.Response(
        text=html, content_type="text/html", charset="utf-8",
        headers={"Cache-Control": "no-cache",
                 "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
                 "X-Content-Type-Options": "nosniff"},
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/status", status_page)
