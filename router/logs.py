"""The router's own log (stderr), as JSON lines or logfmt; the `log` receiver writes stdout.

Structured fields go in with `extra=`, never into the message text:

    log.warning("delivery failed", extra={"receiver": name, "notification_id": n.id})

or for every line logged inside a block (a request, a delivery), with `log_context`:

    with log_context(request_id=rid, source="alertmanager"):
        ...

Only the names in FIELDS are written (an `extra` key elsewhere stays out of the output, so
a stray object cannot leak into the log); values are written as strings.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Literal

import orjson

FIELDS = ("source", "request_id", "receiver", "incident", "notification_id", "status", "reason",
          "remote")
LogFormat = Literal["json", "logfmt"]
LOG_FORMATS: tuple[LogFormat, ...] = ("json", "logfmt")

_context: contextvars.ContextVar[Mapping[str, object]] = contextvars.ContextVar(
    "incident_router_log_context", default=MappingProxyType({}))


@contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Add `fields` (names from FIELDS) to every line logged in this block and the tasks it
    starts; nested blocks add to the outer ones."""
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown log fields {sorted(unknown)}; known: {', '.join(FIELDS)}")
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def entry(record: logging.LogRecord, formatter: logging.Formatter) -> dict[str, object]:
    """One line's fields, in output order: time, level, logger, message, context, exception."""
    out: dict[str, object] = {
        "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    context = _context.get()
    for name in FIELDS:
        value = getattr(record, name, context.get(name))
        if value is not None:
            out[name] = str(value)
    if record.exc_info and record.exc_info[0] is not None:
        out["exc_type"] = record.exc_info[0].__name__
        out["exc"] = formatter.formatException(record.exc_info)
    return out


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return orjson.dumps(entry(record, self)).decode()


# logfmt: a bare value has no space, quote, equals sign or control character.
_BARE = re.compile(r"[^\s\"=\\\x00-\x1f]+")


def _logfmt_value(value: object) -> str:
    text = str(value)
    if _BARE.fullmatch(text):
        return text
    return orjson.dumps(text).decode()  # a JSON string: quotes, backslashes, \n escaped


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{k}={_logfmt_value(v)}" for k, v in entry(record, self).items())


def setup_logging(level: str = "INFO", fmt: LogFormat = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter() if fmt == "logfmt" else JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access log would print full URLs and query strings; the router keeps its own
    # request metrics instead.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
