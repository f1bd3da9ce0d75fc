"""Incident ids `INC-YYYYMMDD-N`: an immutable counter that `decide` advances and returns.

Embedded backend: one engine, `stride=1, offset=0`, so N = 1, 2, 3, ... per UTC day.
Kafka: one engine per partition p of P; N = seq * P + p + 1 (seq the partition's own per-day
counter), so partitions never collide and ids need no coordination. They are unique and
increase per partition, not dense across the cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

import orjson

# The counter is stored beside the group states under this key (a group key never starts with
# NUL), so it commits in the same transaction as the incidents it numbers.
IDS_KEY = "\x00incident-ids"


def _day(at: datetime) -> str:
    """`YYYYMMDD` of the UTC day of `at` (naive: local time, as `astimezone` takes it)."""
    d = at.astimezone(UTC)
    return f"{d.year:04d}{d.month:02d}{d.day:02d}"


@dataclass(frozen=True, slots=True)
class IncidentIds:
    stride: int = 1
    offset: int = 0
    day: str = ""
    seq: int = 0  # ids allocated on `day`

    def allocate(self, at: datetime) -> tuple[str, IncidentIds]:
        """The next id at `at`, and the counter after it."""
        day = _day(at)
        seq = self.seq if day == self.day else 0
        n = seq * max(1, self.stride) + self.offset + 1
        return f"INC-{day}-{n}", replace(self, day=day, seq=seq + 1)

    def to_bytes(self) -> bytes:
        return f'{{"day":"{self.day}","seq":{self.seq}}}'.encode()

    def loaded(self, data: bytes | bytearray | memoryview | None) -> IncidentIds:
        """This counter's stride and offset with the stored day and sequence (None: reset)."""
        if data is None:
            return replace(self, day="", seq=0)
        raw = orjson.loads(bytes(data))
        return replace(self, day=str(raw.get("day", "")), seq=int(raw.get("seq", 0)))
