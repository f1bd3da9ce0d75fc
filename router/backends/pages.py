"""One page of a read API's list, and the opaque cursor to the next.

Lists are ordered newest first by a (timestamp, id) pair that is unique per row; the cursor
holds the pair of the page's last row (keyset pagination), so walking the pages returns every
row that existed throughout the walk exactly once, however many rows arrive meanwhile. The
cursor names its list, so one list's cursor is refused by another.
"""

from __future__ import annotations

import base64
import binascii
import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import orjson

T = TypeVar("T")

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

# The position of a row in its list: (timestamp in seconds, unique id), compared descending.
SortKey = tuple[float, str]


class InvalidCursor(ValueError):
    """A cursor this list did not hand out (the API answers 400)."""


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None  # None on the last page
    total: int  # rows matching the filters, over all pages


def encode_cursor(kind: str, key: SortKey) -> str:
    raw = orjson.dumps([kind, key[0], key[1]])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(kind: str, cursor: str) -> SortKey:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = orjson.loads(raw)
    except (binascii.Error, ValueError):
        raise InvalidCursor("cursor is not one this list handed out") from None
    match value:
        case [str(k), int() | float() as at, str(ident)] if k == kind:
            return float(at), ident
    raise InvalidCursor("cursor is not one this list handed out")


def page_of(rows: Sequence[T], key: Callable[[T], SortKey], kind: str, limit: int,
            cursor: str | None) -> Page[T]:
    """A page of `rows` (already filtered, any order) for backends that hold them in memory."""
    after = decode_cursor(kind, cursor) if cursor else None
    candidates = rows if after is None else [r for r in rows if key(r) < after]
    ordered = heapq.nlargest(limit + 1, candidates, key=key)  # not a sort of every row
    items = ordered[:limit]
    more = len(ordered) > limit
    return Page(items=items, next_cursor=encode_cursor(kind, key(items[-1])) if more else None,
                total=len(rows))
