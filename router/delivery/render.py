"""Incident-communication templates: initial notification, update, resolution.

Each notification kind maps to one of the three templates (`TEMPLATE_FOR_KIND`); a receiver can
override any of them in router.yaml with `templates: {<template or kind>: <path or inline>}`.
A template renders plain text whose first line is the headline; receivers then shape
headline + body into their vendor's format and size limits (`truncate`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import jinja2
import jinja2.meta
from jinja2.runtime import new_context
from pydantic import AfterValidator

from router.model import Alert, Notification, NotificationKind, Severity, Status

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
# `digest`: the daily summary of the severities routed to it (`details.digest` set).
TEMPLATE_NAMES = ("initial", "update", "resolution", "digest")

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
    return _compile(value).template


def _compile(value: str) -> _Compiled:
    source = value if _is_inline(value) else Path(value).read_text(encoding="utf-8")
    return _Compiled.of(_ENV.from_string(source), source)


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
    # What strftime("%Y-%m-%d %H:%M UTC") gives, at a fraction of its cost.
    return f"{t.year}-{t.month:02d}-{t.day:02d} {t.hour:02d}:{t.minute:02d} UTC"


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
    """runbook_url / dashboard_url / generator_url: details first, then the alerts', in order.

    Only http(s) URLs: these come from alert annotations, and a `javascript:` or `data:` URL
    behind a Slack button or a Teams Action.OpenUrl would run in whoever clicks it.
    """
    value = n.details.get(field)
    if isinstance(value, str) and safe_link(value):
        return value
    for a in n.alerts:
        link = getattr(a, field)
        if link and safe_link(str(link)):
            return str(link)
    return None


def safe_link(url: str) -> bool:
    """An absolute http:// or https:// URL with a host, and nothing that could end a markup
    link early (whitespace, control characters, quotes, angle brackets, `|`)."""
    if any(c.isspace() or ord(c) < 32 or c in '<>"|`' for c in url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


_RESOLVE = NotificationKind.RESOLVE
_ACKNOWLEDGE = NotificationKind.ACKNOWLEDGE
_RESOLVED = Status.RESOLVED


class _Facts:
    """One notification's derived values for the templates, each computed once, when asked."""

    __slots__ = ("d", "n", "times_")

    def __init__(self, n: Notification) -> None:
        self.n = n
        self.d = n.details
        self.times_: tuple[datetime, datetime] | None = None

    def times(self) -> tuple[datetime, datetime]:
        """(started, resolved)."""
        if self.times_ is None:
            n, d = self.n, self.d
            started = _as_time(d.get("started_at")) or min(
                (a.starts_at for a in n.alerts), default=n.created_at
            )
            ends = [a.ends_at for a in n.alerts if a.status is _RESOLVED and a.ends_at]
            resolved = _as_time(d.get("resolved_at")) or max(ends, default=n.created_at)
            self.times_ = (started, max(started, resolved))
        return self.times_


def _status(f: _Facts) -> str:
    default = "Resolved" if f.n.kind is _RESOLVE else "Investigating"
    return str(f.d.get("status") or default).capitalize()


def _impact(f: _Facts) -> str:
    impact = f.d.get("impact") or next(
        (a.annotations.get("summary") or a.annotations.get("description")
         for a in f.n.alerts
         if a.annotations.get("summary") or a.annotations.get("description")),
        "Under assessment",
    )
    return str(impact)


def _next_update(f: _Facts) -> str:
    next_update = f.d.get("next_update")
    when = _as_time(next_update)
    if when is not None:  # the incident's update clock (severities.<level>.update_every)
        return f"by {_fmt_time(when)}"
    if not next_update:
        cadence = UPDATE_CADENCE[f.n.severity]
        next_update = (
            f"by {_fmt_time(f.n.created_at + cadence)}" if cadence else "when there is news"
        )
    return str(next_update)


def _note(f: _Facts) -> str:
    note = f.d.get("note") or ""
    if f.n.kind is _ACKNOWLEDGE and not note:
        actor = f.d.get("actor")
        note = f"Acknowledged by {actor}." if actor else "Acknowledged."
    return str(note)


def _postmortem(f: _Facts) -> Any:
    return f.d.get("postmortem") or (
        "A post-mortem will be shared within 48 hours "
        f"(by {_fmt_time(f.times()[1] + POSTMORTEM_WITHIN)})."
    )


class AlertView(dict[str, Any]):
    """One alert as the templates see it: a dict of name, status, summary, labels and value,
    whose keys are attributes too. Jinja reads `a.name` as `getattr(a, "name")` first and
    falls back to `a["name"]`: on a plain dict every lookup raised an AttributeError first,
    a quarter of the CPU of rendering a group of alerts. `a["name"]`, `a.items()` and
    `a | tojson` work as on the dict it was."""

    __slots__ = ("labels", "name", "status", "summary", "value")

    def __init__(self, a: Alert) -> None:
        self.name = a.name
        self.status = a.status.value
        self.summary = a.annotations.get("summary", "")
        self.labels = dict(a.labels)
        self.value = a.value
        super().__init__(name=self.name, status=self.status, summary=self.summary,
                         labels=self.labels, value=self.value)


def _alerts(f: _Facts) -> list[AlertView]:
    return [AlertView(a) for a in f.n.alerts]


def _detail(key: str) -> Callable[[_Facts], Any]:
    return lambda f: f.d.get(key)


# Every variable the templates may use (StrictUndefined catches typos in overrides), in order.
_VARIABLES: dict[str, Callable[[_Facts], Any]] = {
    "kind": lambda f: f.n.kind.value,
    "severity": lambda f: f.n.severity.value,
    "title": lambda f: f.n.title,
    "incident_id": lambda f: f.n.incident_id,
    "group_key": lambda f: f.n.group_key,
    "status": _status,
    "impact": _impact,
    "started_at": lambda f: _fmt_time(f.times()[0]),
    "resolved_at": lambda f: _fmt_time(f.times()[1]),
    "duration": lambda f: _fmt_duration(f.times()[1] - f.times()[0]),
    "next_update": _next_update,
    "root_cause": _detail("root_cause"),
    "mitigation": _detail("mitigation"),
    "eta": _detail("eta"),
    "resolution": _detail("resolution"),
    "note": _note,
    "update_label": lambda f: str(f.d.get("update_label") or UPDATE_LABELS.get(f.n.kind,
                                                                              "Update")),
    "postmortem": _postmortem,
    "runbook_url": lambda f: first_link(f.n, "runbook_url"),
    "dashboard_url": lambda f: first_link(f.n, "dashboard_url"),
    "alerts": _alerts,
    "details": lambda f: dict(f.d),
    # Incidents (router.engine.lifecycle): who a page is for, the incident's channel.
    "targets": lambda f: [str(t) for t in f.d.get("targets") or ()],
    "level": _detail("level"),
    "channel": _detail("channel"),
    "commander": _detail("commander"),
    "actor": _detail("actor"),
}


def context(n: Notification, names: Iterable[str] | None = None) -> dict[str, Any]:
    """Every variable the templates may use, or only `names` of them (what one template
    reads: the rest is not worth computing)."""
    f = _Facts(n)
    if names is None:
        return {k: get(f) for k, get in _VARIABLES.items()}
    return {k: _VARIABLES[k](f) for k in names}


@dataclass(frozen=True)
class _Compiled:
    """A template with what rendering it needs, worked out once."""

    template: jinja2.Template
    # The context variables it reads; None: all of them (it includes or imports others).
    names: tuple[str, ...] | None
    # Its globals, flattened: jinja's ChainMap of them is slow to copy on every render.
    globals: dict[str, Any]

    @classmethod
    def of(cls, template: jinja2.Template, source: str) -> _Compiled:
        ast = template.environment.parse(source)
        names: tuple[str, ...] | None = None
        if not any(True for _ in jinja2.meta.find_referenced_templates(ast)):
            used = jinja2.meta.find_undeclared_variables(ast)
            names = tuple(k for k in _VARIABLES if k in used)
        return cls(template, names, dict(template.globals))

    def render(self, n: Notification) -> str:
        """`template.render(context(n))`, reading only the variables the template uses."""
        t = self.template
        env = t.environment
        ctx = new_context(env, t.name, t.blocks, context(n, self.names), False, self.globals)
        try:
            return env.concat(t.root_render_func(ctx))
        except Exception:
            env.handle_exception()  # re-raises, with the template's line in the traceback


def _shipped(name: str) -> _Compiled:
    compiled = _SHIPPED.get(name)
    if compiled is None:
        template = _ENV.get_template(f"{name}.j2")
        source, _, _ = _ENV.loader.get_source(_ENV, f"{name}.j2")  # type: ignore[union-attr]
        compiled = _SHIPPED[name] = _Compiled.of(template, source)
    return compiled


_SHIPPED: dict[str, _Compiled] = {}


class Renderer:
    """Renders notifications with the shipped templates and a receiver's overrides."""

    def __init__(self, overrides: Mapping[str, str] | None = None) -> None:
        self._overrides = {k: _compile(v) for k, v in (overrides or {}).items()}
        self._by_kind: dict[NotificationKind, _Compiled] = {}

    def _compiled(self, kind: NotificationKind) -> _Compiled:
        compiled = self._by_kind.get(kind)
        if compiled is None:
            name = TEMPLATE_FOR_KIND[kind]
            chosen = self._overrides.get(kind.value) or self._overrides.get(name)
            compiled = self._by_kind[kind] = chosen or _shipped(name)
        return compiled

    def template_for(self, kind: NotificationKind) -> jinja2.Template:
        return self._compiled(kind).template

    def _digest(self) -> _Compiled:
        return self._overrides.get("digest") or _shipped("digest")

    def render(self, n: Notification) -> Message:
        """Raises jinja2.TemplateError on a broken override (the sink dead-letters it)."""
        compiled = self._digest() if "digest" in n.details else self._compiled(n.kind)
        text = compiled.render(n).strip()
        headline, _, body = text.partition("\n")
        return Message(headline.strip(), body.strip())
