"""Instants in the zones the noise tests use, written as their local wall-clock times.

2026 DST changes: Berlin 03-29 02:00 -> 03:00 and 10-25 03:00 -> 02:00; New York 03-08
02:00 -> 03:00 and 11-01 02:00 -> 01:00. Kolkata has none (UTC+05:30).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
KOLKATA = ZoneInfo("Asia/Kolkata")
US = timedelta(microseconds=1)


def local(zone: ZoneInfo, *args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=zone, fold=fold)  # type: ignore[arg-type,misc]


def berlin(*args: int, fold: int = 0) -> datetime:
    return local(BERLIN, *args, fold=fold)


def ny(*args: int, fold: int = 0) -> datetime:
    return local(NEW_YORK, *args, fold=fold)


def ist(*args: int) -> datetime:
    return local(KOLKATA, *args)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[arg-type,misc]
