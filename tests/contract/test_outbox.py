"""The outbox contract, one suite for every outbox (tests/contract/outboxes.py): the in-memory
reference, the embedded backend's SQLite tables and the Kafka backend's topics on the real
broker. What the Dispatcher relies on: items handed out once past its cursor, in order per
lane (receiver, group key); delivered items leave; a dead letter leaves the outbox and holds
its lane until a replay puts the lane back, in order; delivery records; and after a restart
every undelivered item comes back (a delivered one only with its delivery record, so it is
not sent again). The `incident-router dlq` commands work on both backends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from router.backends.kafka.topics import ensure_topics
from router.cli import main
from tests.contract.outboxes import (
    KafkaStore,
    SqliteStore,
    eventually,
    note,
    pending,
    pending_ids,
)

DurableStore = SqliteStore | KafkaStore


async def _open(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> DurableStore:
    if kind == "embedded":
        sqlite = SqliteStore(tmp_path / "router.db")
        await sqlite.start()
        return sqlite
    cfg = request.getfixturevalue("kafka_config")  # only the kafka parameter starts a broker
    await ensure_topics(cfg)
    kafka = KafkaStore(cfg)
    await kafka.start()
    return kafka


KAFKA = pytest.param("kafka", marks=pytest.mark.kafka)


@pytest.fixture(params=["embedded", KAFKA])
async def durable(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[list[Any]]:
    """The backends' outboxes; a list, since a restart replaces its one store."""
    stores: list[Any] = [await _open(request.param, request, tmp_path)]
    yield stores
    await stores[0].stop()


async def dlq(*args: str) -> int:
    """`incident-router dlq ...` as an operator runs it (its own event loop, on a thread here
    so that the store under test keeps running on this one)."""
    return await asyncio.to_thread(main, ["dlq", *args])


async def test_dlq_commands_list_and_replay_dead_letters_on_the_backend(
    durable: list[Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store: DurableStore = durable[0]
    config = str(store.config_file(tmp_path))
    await store.add(note(1), note(2), note(3, receiver="pd", group="g2"))
    for item in await pending(store, 3):
        await store.outbox.dead_letter(item, "410 Gone")

    assert await dlq("list", "--config", config) == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert sorted((f[0], f[2], f[4], f[5]) for f in lines) == [
        ("n1", "slack", "g1", "410 Gone"), ("n2", "slack", "g1", "410 Gone"),
        ("n3", "pd", "g2", "410 Gone")]
    assert await dlq("list", "--config", config, "--receiver", "pd") == 0
    assert [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()] == ["n3"]

    # The running store (a router) delivers what the command put back: n1's lane, in order.
    assert await dlq("replay", "--config", config, "--id", "n1") == 0
    assert "replayed 2 notification(s)" in capsys.readouterr().out
    assert await pending_ids(store, 2) == ["n1", "n2"]

    async def only_n3_parked() -> bool:
        return [d.id for d in await store.outbox.list()] == ["n3"]

    await eventually(only_n3_parked)  # Kafka: once the tail has read the tombstones
    assert await dlq("replay", "--config", config, "--id", "missing") == 1
    assert "replayed 0 notification(s)" in capsys.readouterr().out
