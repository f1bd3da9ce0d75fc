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
    MemoryStore,
    OutboxUnderTest,
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


@pytest.fixture(params=["memory", "embedded", KAFKA])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[OutboxUnderTest]:
    """Every outbox: the reference and both backends'."""
    opened: OutboxUnderTest = (MemoryStore() if request.param == "memory"
                               else await _open(request.param, request, tmp_path))
    yield opened
    await opened.stop()


@pytest.fixture(params=["embedded", KAFKA])
async def durable(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[list[Any]]:
    """The backends' outboxes; a list, since a restart replaces its one store."""
    stores: list[Any] = [await _open(request.param, request, tmp_path)]
    yield stores
    await stores[0].stop()


def lane_order(ids: list[str], lanes: dict[str, str]) -> dict[str, list[str]]:
    """`ids` split by lane, each in the order given."""
    out: dict[str, list[str]] = {}
    for i in ids:
        out.setdefault(lanes[i], []).append(i)
    return out


# --- handing out and delivering ---------------------------------------------------------------


async def test_pending_in_order_and_delivered_items_leave(store: OutboxUnderTest) -> None:
    await store.add(note(1), note(2), note(3))
    items = await pending(store, 3)
    assert [i.id for i in items] == ["n1", "n2", "n3"]
    assert [i.id for i in await store.outbox.pending(10, after=items[0].seq)] == ["n2", "n3"]
    await store.outbox.mark_delivered(["n1", "n2"])
    assert [i.id for i in await store.outbox.pending(10)] == ["n3"]


async def test_items_are_handed_out_once_past_the_cursor_in_order_per_lane(
    store: OutboxUnderTest,
) -> None:
    lanes = {f"n{i}": f"g{i % 3}" for i in range(12)}
    await store.add(*(note(i, group=lanes[f"n{i}"]) for i in range(6)))
    first = await pending(store, 6)
    cursor = max(i.seq for i in first)
    await store.add(*(note(i, group=lanes[f"n{i}"]) for i in range(6, 12)))

    async def the_rest_arrived() -> bool:
        return len(await store.outbox.pending(100, after=cursor)) == 6

    await eventually(the_rest_arrived)
    later = await store.outbox.pending(100, after=cursor)
    # The cursor claims: nothing handed out before comes again, everything new does.
    assert sorted(i.id for i in later) == sorted(f"n{i}" for i in range(6, 12))
    assert min(i.seq for i in later) > cursor
    # Within a lane (receiver, group key) the seqs follow the order the engine committed.
    taken = sorted(first + later, key=lambda i: i.seq)
    assert lane_order([i.id for i in taken], lanes) == {
        f"g{g}": [f"n{i}" for i in range(12) if i % 3 == g] for g in range(3)}
    assert all(i.lane == ("slack", lanes[i.id]) for i in taken)


# --- dead letters -----------------------------------------------------------------------------


async def test_dead_letter_and_replay_keep_lane_order(store: OutboxUnderTest) -> None:
    await store.add(note(1), note(2), note(3, group="g2"))
    items = {i.id: i for i in await pending(store, 3)}
    before = max(i.seq for i in items.values())
    for i in ("n1", "n2", "n3"):
        await store.outbox.dead_letter(items[i], "400 Bad Request")
    assert await store.outbox.pending(10) == []
    dead = await store.outbox.list()
    assert [d.id for d in dead] == ["n1", "n2", "n3"]
    assert dead[0].reason == "400 Bad Request"
    assert await store.outbox.holds("slack", "g1")
    assert await store.outbox.holds("slack", "g2")
    assert not await store.outbox.holds("pd", "g1")
    # Replaying n1 brings back its whole lane (n1, n2), in order, and not g2's n3.
    assert await store.outbox.replay(id="n1") == 2
    assert not await store.outbox.holds("slack", "g1")
    assert [d.id for d in await store.outbox.list()] == ["n3"]
    replayed = await pending(store, 2)
    assert [i.id for i in replayed] == ["n1", "n2"]
    assert min(i.seq for i in replayed) > before  # after everything handed out before
    assert await store.outbox.replay(receiver="slack") == 1
    assert await pending_ids(store, 3) == ["n1", "n2", "n3"]
    assert await store.outbox.replay(id="missing") == 0


async def test_list_by_receiver(store: OutboxUnderTest) -> None:
    await store.add(note(1, receiver="pd"), note(2, receiver="slack"))
    for item in await pending(store, 2):
        await store.outbox.dead_letter(item, "gone")
    assert [d.id for d in await store.outbox.list(receiver="pd")] == ["n1"]
    assert [d.id for d in await store.outbox.list(receiver="slack")] == ["n2"]


# --- delivery records -------------------------------------------------------------------------


async def test_delivery_records_and_refs(store: OutboxUnderTest) -> None:
    records = store.records
    assert not await records.already_delivered("n1", "slack")
    await records.record("n1", "slack")
    assert await records.already_delivered("n1", "slack")
    assert not await records.already_delivered("n1", "teams")
    assert await records.get_ref("slack", "d1") is None
    await records.put_ref("slack", "d1", {"channel": "C1", "ts": "1.2"})
    assert await records.get_ref("slack", "d1") == {"channel": "C1", "ts": "1.2"}


# --- restarts ---------------------------------------------------------------------------------


async def test_a_restart_hands_back_every_undelivered_item_and_records_the_rest(
    durable: list[Any],
) -> None:
    store: DurableStore = durable[0]
    await store.add(note(1), note(2), note(3), note(4, receiver="pd", group="g2"))
    items = {i.id: i for i in await pending(store, 4)}
    for i in ("n1", "n3"):  # as the Dispatcher does: the record, then the delivered mark
        await store.records.record(i, "slack")
        await store.outbox.mark_delivered([i])
    await store.outbox.dead_letter(items["n4"], "410 Gone")
    # The process dies with n2 in flight; another one opens the same storage.
    durable[0] = store = await store.restart()

    again = await pending_ids(store, 1)
    assert again[0] == "n2"  # where it stopped, first of its lane
    assert "n1" not in again and "n4" not in again
    # An item delivered after the one in flight may come back (Kafka's offset stops at the
    # first undone record), but with its record: the Dispatcher does not send it again.
    for i in again[1:]:
        assert await store.records.already_delivered(i, "slack")
    assert [d.id for d in await store.outbox.list()] == ["n4"]
    assert await store.outbox.holds("pd", "g2")
    assert await store.records.already_delivered("n1", "slack")


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
