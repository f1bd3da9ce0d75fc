"""What every source shares: the rejection it raises for bad input, and JSON decoding.

A source turns one request body into `list[Alert]` or raises `Rejected` with the HTTP status,
a metric reason (a short fixed word, never user data) and a message for the sender. Messages
must never contain secrets, tokens or URLs with credentials.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from router.model import Alert


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


def check_alert_limits(alerts: Sequence[Alert], *, max_alerts: int, max_labels: int,
                       max_bytes: int) -> None:
    """The caps every source's normalised alerts are held to (`server.max_*` settings).

    413 for too many alerts in one request; 422 for an alert with too many labels or
    annotations, or a name or value over `max_bytes` of UTF-8. Messages name the alert by its
    position and the setting, never the oversized data.
    """
    if len(alerts) > max_alerts:
        raise Rejected(413, "too_many_alerts",
                       f"request carries {len(alerts)} alerts, more than the limit of "
                       f"{max_alerts} (server.max_alerts_per_request)")
    # A UTF-8 character is at most 4 bytes: only strings that might be too long are encoded,
    # and the lengths are looked at in C (`map(len, ...)`), the pairs one by one only if one
    # of them may be over.
    short = max_bytes // 4
    for i, alert in enumerate(alerts):
        for what, pairs in (("labels", alert.labels), ("annotations", alert.annotations)):
            if len(pairs) > max_labels:
                raise Rejected(422, "too_many_labels",
                               f"alert {i} has {len(pairs)} {what}, more than the limit of "
                               f"{max_labels} (server.max_labels_per_alert)")
            if pairs and max(max(map(len, pairs)), max(map(len, pairs.values()))) > short:
                _check_sizes(i, what, pairs, max_bytes)


def _check_sizes(index: int, what: str, pairs: Mapping[str, str], max_bytes: int) -> None:
    # A UTF-8 character is at most 4 bytes: only strings that might be too long are encoded.
    short = max_bytes // 4
    for name, value in pairs.items():
        for part, text in (("name", name), ("value", value)):
            if len(text) > short and (size := len(text.encode())) > max_bytes:
                raise Rejected(422, "label_too_large",
                               f"alert {index}: a {what[:-1]} {part} is {size} bytes, more "
                               f"than the limit of {max_bytes} bytes (server.max_label_bytes)")
