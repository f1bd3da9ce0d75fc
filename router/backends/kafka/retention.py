"""Retention on the Kafka backend: what the compacted views hold stops growing.

Every `prune_interval` each replica looks through the tables it tails:

- incidents resolved longer ago than `closed_incidents_max_age` (the age after which the
  embedded backend deletes them) get a tombstone in the incidents view: a null value, so
  compaction drops the incident from the topic. It leaves this replica's memory once the
  broker acknowledged it and the other replicas' as their tails read it; a restart no longer
  reads it. Should an engine still hold it and write it again (a command on an old incident,
  e.g. its post-mortem marked done), it is back until the next pass, as an engine commit
  re-inserts a deleted row on the embedded backend. Every replica does this (any may be the
  last one running); two tombstones of one incident do no harm.
- delivery records and vendor refs written longer ago than `delivery_records_max_age` leave
  memory. The broker deletes them after that same age (the topic's `retention.ms`), so they
  are only forgotten here, as a restart would not read them either.

An age of 0 keeps that kind forever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from datetime import datetime

from aiokafka.errors import KafkaError

from router.backends.kafka.table import CompactedTable
from router.backends.tasks import Periodic
from router.config import KafkaBackendConfig
from router.incidents import Incident, IncidentStatus

log = logging.getLogger(__name__)

_SEND_AT_ONCE = 500  # tombstones in flight together (the first pass after an upgrade)


class KafkaRetention(Periodic):
    name = "kafka-retention"
    recoverable = (KafkaError,)  # the broker is away: next time, then

    def __init__(self, cfg: KafkaBackendConfig, incidents: CompactedTable[bytes],
                 decoded: Callable[[], Iterable[Incident]], records: CompactedTable[bytes],
                 clock: Callable[[], datetime]) -> None:
        self._cfg = cfg
        self._incidents = incidents
        self._decoded = decoded  # the incidents view as Incidents (the backend's cache)
        self._records = records
        self._clock = clock
        super().__init__(log)

    def interval(self) -> float:
        return self._cfg.prune_interval.total_seconds()

    async def run_pass(self) -> object:
        return await self.prune()

    def failed(self, exc: Exception) -> str:
        return f"pruning the incidents view failed: {type(exc).__name__}"

    async def prune(self) -> dict[str, int]:
        """One pass; returns how many incidents were tombstoned and records forgotten."""
        now = self._clock()
        pruned: dict[str, int] = {}
        if self._cfg.closed_incidents_max_age:
            pruned["incidents"] = await self._tombstone_incidents(
                now - self._cfg.closed_incidents_max_age)
        if self._cfg.delivery_records_max_age:
            pruned["delivery_records"] = self._records.forget_older(
                (now - self._cfg.delivery_records_max_age).timestamp())
        if any(pruned.values()):
            log.info("pruned %s", ", ".join(f"{n} {t}" for t, n in pruned.items() if n))
        return pruned

    async def _tombstone_incidents(self, cutoff: datetime) -> int:
        old = [i.id for i in self._decoded() if i.status is IncidentStatus.RESOLVED
               and i.resolved_at is not None and i.resolved_at < cutoff]
        for i in range(0, len(old), _SEND_AT_ONCE):
            await asyncio.gather(*(self._incidents.put(incident_id, None)
                                   for incident_id in old[i:i + _SEND_AT_ONCE]))
        return len(old)

