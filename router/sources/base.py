"""What every source shares: the rejection it raises for bad input, and JSON decoding.

A source turns one request body into `list[Alert]` or raises `Rejected` with the HTTP status,
a metric reason (a short fixed word, never user data) and a message for the sender. Messages
must never contain secrets, tokens or URLs with credentials.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError


class Rejected(Exception):
    """Bad input: answered with `status` (4xx) and `message`; counted under `reason`."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


def decode_json(body: bytes) -> Any:
    """Parse a JSON body; malformed JSON is a 400 that says where it broke."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Rejected(400, "malformed_json", f"malformed JSON: {exc}") from None


def shape_error(err: ValidationError, prefix: str = "") -> Rejected:
    """A 422 naming the first few field paths that do not fit the expected shape."""
    parts = []
    for e in err.errors(include_url=False, include_input=False)[:5]:
        loc = ".".join(str(p) for p in e["loc"]) or "(body)"
        parts.append(f"{prefix}{loc}: {e['msg']}")
    return Rejected(422, "invalid_shape", "invalid payload: " + "; ".join(parts))


def as_utc(value: datetime) -> datetime:
    """Timestamps without an offset are taken as UTC, so every comparison is well defined."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
