"""An incident's long timeline, stored in chunks beside its group (issue 18), survives a restart
on both backends: the restored engine reads every sealed chunk back, and the next change
writes the whole view (what the console and the API read) with nothing lost or repeated.

Against a real SQLite file and the real broker, in process: the commands go in through the
log, the engine decides, a second backend on the same storage restores and goes on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from router.backends.base import Backend
from router.backends.embedded.backend import EmbeddedBackend
from router.backends.kafka.backend import KafkaBackend
from router.config import KafkaBackendConfig
from router.engine.incidents.record import TIMELINE_CHUNK
from router.metrics import EngineMetrics
from router.model import CommandEvent
from tests.kafka.test_kafka_engine import eventually
from tests.unit.engine.test_incidents import CTX

M = timedelta(minutes=1)
T0 = datetime.now(UTC).replace(second=0, microsecond=0) - 20 * M
GROUP = "manual:long"
NOTES = 3 * TIMELINE_CHUNK + 5  # three sealed chunks and an open tail

Start = Callable[[], Awaitable[Backend]]


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
async def start(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Start]:
    """Starts a backend on the test's storage (the same file, the same topics each time)."""
    started: list[Backend] = []

    async def run() -> Backend:
        backend: EmbeddedBackend | KafkaBackend
        if request.param == "embedded":
            backend = EmbeddedBackend(tmp_path / "router.db", CTX,
                                      EngineMetrics(CollectorRegistry()))
            await backend.start()
        else:  # only this parameter asks for the broker
            cfg: KafkaBackendConfig = request.getfixturevalue("kafka_config")
            backend = KafkaBackend(cfg, CTX, EngineMetrics(CollectorRegistry()))
            await backend.start()
            await backend.wait_ready()
        started.append(backend)
        return backend

    yield run
    for backend in started:
        await backend.stop()


def order(name: str, at: datetime, incident_id: str | None = None, **args: str) -> CommandEvent:
    return CommandEvent(command=name, incident_id=incident_id, group_key=GROUP, actor="api",
                        at=at, args=args)


async def timeline_of(store: Backend, ident: str, length: int) -> list[str]:
    """The incident's timeline texts once the view holds `length` entries."""
    async def written() -> bool:
        found = await store.incident(ident)
        return found is not None and len(found.timeline) >= length

    await eventually(written)
    found = await store.incident(ident)
    assert found is not None
    return [e.text for e in found.timeline]


async def test_a_long_timeline_is_whole_after_a_restart_and_goes_on(
        start: Start) -> None:
    first = await start()
    await first.log.append([order("declare", T0, title="long", severity="SEV3")])
    await first.engine.drained()

    async def declared() -> bool:
        return len(await first.incidents(status="open")) == 1

    await eventually(declared)
    (incident,) = await first.incidents(status="open")
    ident = incident.id
    step = M / (NOTES + 1)
    await first.log.append([order("note", T0 + (i + 1) * step, ident, text=f"note {i}")
                            for i in range(NOTES)])
    await first.engine.drained()
    before = await timeline_of(first, ident, NOTES + 1)
    assert [t for t in before if t.startswith("note ")] == [f"note {i}" for i in range(NOTES)]
    await first.stop()

    second = await start()  # restores the group and its record's chunks from storage
    await second.log.append([order("note", T0 + 2 * M, ident, text="after the restart")])
    await second.engine.drained()
    after = await timeline_of(second, ident, len(before) + 1)
    assert after == [*before, "after the restart"]
