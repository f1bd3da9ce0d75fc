"""Incident-communication templates: initial notification, update, resolution.

Each notification kind maps to one of the three templates (`TEMPLATE_FOR_KIND`); a receiver can
override any of them in router.yaml with `templates: {<template or kind>: <path or inline>}`.
A template renders plain text whose first line is the headline; receivers then shape
headline + body into their vendor's format and size limits (`truncate`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import jinja2
from pydantic import AfterValidator

from router.model import Notification, NotificationKind, Severity, Status

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"

TEMPLATE_FOR_KIND: dict[NotificationKind, str] = {
    NotificationKind.TRIGGER: "initial",
    NotificationKind.UPDATE: "update",
    NotificationKind.REPEAT: "update",
    NotificationKind.ACKNOWLEDGE: "update",
    NotificationKind.ESCALATE: "update",
    NotificationKind.SLA_BREACH: "update",
    NotificationKind.REMINDER: "update",
    NotificationKind.RESOLVE: "resolution",
    NotificationKind.PAGE: "initial",
}
TEMPLATE_NAMES = ("initial", "update", "resolution")

UPDATE_LABELS: dict[NotificationKind, str] = {
    NotificationKind.UPDATE: "Update",
    NotificationKind.REPEAT: "Still ongoing",
    NotificationKind.ACKNOWLEDGE: "Acknowledged",
    NotificationKind.ESCALATE: "Escalated",
    NotificationKind.SLA_BREACH: "SLA breached",
    NotificationKind.REMINDER: "Reminder",
    NotificationKind.PAGE: "Page",
}

# How soon the next update is promised, by severity (SEV4: none).
UPDATE_CADENCE: dict[Severity, timedelta | None] = {
    Severity.SEV1: timedelta(minutes=30),
    Severity.SEV2: timedelta(hours=1),
    Severity.SEV3: timedelta(hours=4),
    Severity.SEV4: None,
}

POSTMORTEM_WITHIN = timedelta(hours=48)

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
    auto_reload=False,  # shipped templates do not change under a running router: no stat()
    undefined=jinja2.StrictUndefined,
    autoescape=False,  # plain text; each receiver escapes for its own markup
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=False,
)


def _is_inline(value: str) -> bool:
    return "\n" in value or "{{" in value or "{%" in value


def compile_template(value: str) -> jinja2.Template:
    """An override is inline Jinja2 if it has a newline or `{{`/`{%`; otherwise a file path."""
    source = value if _is_inline(value) else Path(value).read_text(encoding="utf-8")
    return _ENV.from_string(source)


def _check_overrides(value: dict[str, str]) -> dict[str, str]:
    allowed = set(TEMPLATE_NAMES) | {k.value for k in NotificationKind}
    for key, tmpl in value.items():
        if key not in allowed:
            raise ValueError(f"unknown template {key!r}; use one of {sorted(allowed)}")
        try:
            compile_template(tmpl)
        except OSError as exc:
            raise ValueError(f"template {key!r}: cannot read file: {exc.strerror}") from None
        except jinja2.TemplateSyntaxError as exc:
            raise ValueError(f"template {key!r}: line {exc.lineno}: {exc.message}") from None
    return value


# The `templates:` field of every receiver config.
TemplateOverrides = Annotated[dict[str, str], AfterValidator(_check_overrides)]


@dataclass(frozen=True)
class Message:
    headline: str
    body: str

    @property
    def text(self) -> str:
        return f"{self.headline}\n{self.body}" if self.body else self.headline


def truncate(text: str, limit: int, marker: str = "…") -> str:
    """Cut to at most `limit` characters, marking the cut."""
    if limit <= 0:
        return ""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(marker))] + marker


def truncate_bytes(text: str, limit: int, marker: str = "…") -> str:
    """Cut to at most `limit` UTF-8 bytes without splitting a character."""
    raw = text.encode()
    if len(raw) <= limit:
        return text
    room = max(0, limit - len(marker.encode()))
    return raw[:room].decode("utf-8", errors="ignore") + marker


def _fmt_time(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M UTC")


def _fmt_duration(d: timedelta) -> str:
    minutes = max(0, int(d.total_seconds() // 60))
    days, minutes = divmod(minutes, 1440)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{days}d"] * bool(days) + [f"{hours}h"] * bool(hours) + [f"{minutes}m"]
    return " ".join(parts)


def _as_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def first_link(n: Notification, field: str) -> str | None:
    """runbook_url / dashboard_url / generator_url: details first, then the first alert's."""
    value = n.details.get(field)
    if isinstance(value, str) and value:
        return value
    for a in n.alerts:
        link = getattr(a, field)
        if link:
            return str(link)
    return None


def context(n: Notification) -> dict[str, Any]:
    """Every variable the templates may use (StrictUndefined catches typos in overrides)."""
    d = n.details
    started = _as_time(d.get("started_at")) or min(
        (a.starts_at for a in n.alerts), default=n.created_at
    )
    ends = [a.ends_at for a in n.alerts if a.status is Status.RESOLVED and a.ends_at]
    resolved = _as_time(d.get("resolved_at")) or max(ends, default=n.created_at)
    if resolved < started:
        resolved = started
    next_update = d.get("next_update")
    if not next_update:
        cadence = UPDATE_CADENCE[n.severity]
        next_update = (
            f"by {_fmt_time(n.created_at + cadence)}" if cadence else "when there is news"
        )
    impact = d.get("impact") or next(
        (a.annotations.get("summary") or a.annotations.get("description")
         for a in n.alerts if a.annotations.get("summary") or a.annotations.get("description")),
        "Under assessment",
    )
    note = d.get("note") or ""
    if n.kind is NotificationKind.ACKNOWLEDGE and not note:
        actor = d.get("actor")
        note = f"Acknowledged by {actor}." if actor else "Acknowledged."
    default_status = "Resolved" if n.kind is NotificationKind.RESOLVE else "Investigating"
    return {
        "kind": n.kind.value,
        "severity": n.severity.value,
        "title": n.title,
        "incident_id": n.incident_id,
        "group_key": n.group_key,
        "status": str(d.get("status") or default_status).capitalize(),
        "impact": str(impact),
        "started_at": _fmt_time(started),
        "resolved_at": _fmt_time(resolved),
        "duration": _fmt_duration(resolved - started),
        "next_update": str(next_update),
        "root_cause": d.get("root_cause"),
        "mitigation": d.get("mitigation"),
        "eta": d.get("eta"),
        "resolution": d.get("resolution"),
        "note": str(note),
        "update_label": UPDATE_LABELS.get(n.kind, "Update"),
        "postmortem": d.get("postmortem") or (
            "A post-mortem will be shared within 48 hours "
            f"(by {_fmt_time(resolved + POSTMORTEM_WITHIN)})."
        ),
        "runbook_url": first_link(n, "runbook_url"),
        "dashboard_url": first_link(n, "dashboard_url"),
        "alerts": [
            {
                "name": a.name,
                "status": a.status.value,
                "summary": a.annotations.get("summary", ""),
                "labels": dict(a.labels),
                "value": a.value,
            }
            for a in n.alerts
        ],
        "details": dict(d),
        # Incidents (router.engine.lifecycle): who a page is for, the incident's channel.
        "targets": [str(t) for t in d.get("targets") or ()],
        "level": d.get("level"),
        "channel": d.get("channel"),
        "commander": d.get("commander"),
        "actor": d.get("actor"),
    }


class Renderer:
    """Renders notifications with the shipped templates and a receiver's overrides."""

    def __init__(self, overrides: Mapping[str, str] | None = None) -> None:
        self._overrides = {k: compile_template(v) for k, v in (overrides or {}).items()}

    def template_for(self, kind: NotificationKind) -> jinja2.Template:
        name = TEMPLATE_FOR_KIND[kind]
        chosen = self._overrides.get(kind.value) or self._overrides.get(name)
        return chosen or _ENV.get_template(f"{name}.j2")

    def render(self, n: Notification) -> Message:
        """Raises jinja2.TemplateError on a broken override (the sink dead-letters it)."""
        text = self.template_for(n.kind).render(context(n)).strip()
        headline, _, body = text.partition("\n")
        return Message(headline.strip(), body.strip())
