"""Rendering console pages: one autoescaping Jinja2 environment over router/ui/templates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from router.postmortem import format_span

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"


def _utc(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _utc_text(value: str | None) -> str:
    """An RFC 3339 string (as the JSON reports carry) shown like `utc`."""
    return _utc(datetime.fromisoformat(value.replace("Z", "+00:00"))) if value else "-"


def _iso(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else ""


def _span(value: timedelta | None) -> str:
    return format_span(value) if value is not None else "-"


ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES)),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,
)
ENV.filters["utc"] = _utc
ENV.filters["iso"] = _iso
ENV.filters["utc_text"] = _utc_text
ENV.filters["span"] = _span
ENV.filters["seconds"] = lambda s: _span(timedelta(seconds=s))


def render(template: str, **context: Any) -> str:
    return ENV.get_template(template).render(**context)


def html(template: str, status: int = 200, **context: Any) -> web.Response:
    return web.Response(text=render(template, **context), status=status,
                        content_type="text/html", charset="utf-8")


def error_page(status: int, message: str) -> web.Response:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return html("error.html", status=status, status_code=status, phrase=phrase,
                message=message[:1].upper() + message[1:])
