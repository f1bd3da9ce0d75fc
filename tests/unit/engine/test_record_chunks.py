"""An incident's record is stored in chunks: sealed chunks of its timeline written once, a head
(alerts, details, the open tail) rewritten as it changes, so a round of a long-running
incident costs what its new entries cost, not its whole history (issue 18's soak: 0.11 ms per
round at 10 entries, 0.35 ms at 70). Views, the 500-entry cap, restore and replay are what they
were with the record whole, and records stored whole still load."""

from __future__ import annotations

from datetime import timedelta

import pytest

from router.engine import Engine
from router.engine.codec import head_chunks, pack_record, unpack_record
from router.engine.incidents.record import (
    TIMELINE_CHUNK,
    chunk_key,
    read_record,
    record_writes,
)
from router.engine.incidents.timeline import MAX_TIMELINE, NOISY
from router.engine.state import RECORD_PREFIX, IncidentRecord
from router.incidents import TimelineEntry, TimelineKind
from tests.unit.engine.test_incident_record import churn, pod, state
from tests.unit.engine.test_incidents import CTX, T0, at, command

TK = TimelineKind
ID = "INC-1"
SIZE = 4  # chunk size of the table


def entries(n: int, tag: str = "e") -> tuple[TimelineEntry, ...]:
    return tuple(TimelineEntry.build(at=T0 + timedelta(minutes=i), kind=TK.NOTE, actor="a",
                                     text=f"{tag}{i}") for i in range(n))


def rec(timeline: tuple[TimelineEntry, ...], alerts: tuple[str, ...] = ("am:a",)
        ) -> IncidentRecord:
    return IncidentRecord.build(alerts=alerts, timeline=timeline)


def stored(record: IncidentRecord, level: int = 1) -> dict[str, bytes]:
    """The stored forms of `record` written from nothing."""
    out = record_writes(ID, None, record, {}, level, SIZE)
    return {k: v for k, v in out.items() if v is not None}


def head() -> str:
    return ID


def chunk(n: int) -> str:
    return chunk_key(ID, n)


E9 = entries(9)
EARLY = TimelineEntry.build(at=T0 + timedelta(minutes=1, seconds=30), kind=TK.NOTE, actor="a",
                            text="late note of an early time")
LATER = TimelineEntry.build(at=T0 + timedelta(minutes=6, seconds=30), kind=TK.NOTE, actor="a",
                            text="late note, in the second chunk")


@pytest.mark.parametrize(("old", "new", "written", "deleted"), [
    # (old record or None, new record or None, keys written, keys deleted); chunks of 4.
    (None, rec(entries(3)), [head()], []),
    (None, rec(entries(9)), [chunk(0), chunk(1), head()], []),
    (rec(entries(3)), rec(entries(4)), [chunk(0), head()], []),  # the tail sealed
    (rec(entries(4)), rec(entries(5)), [head()], []),  # sealed chunk 0 not encoded again
    (rec(E9), rec((*E9, *entries(1, "x"))), [head()], []),
    (rec(entries(7)), rec(entries(9)), [chunk(1), head()], []),
    (rec(E9), rec(E9, alerts=("am:a", "am:b")), [head()], []),  # alerts: the head only
    (rec(E9), rec(E9), [], []),  # nothing changed, nothing written
    # An entry of an earlier time goes before the tail: the chunks from its own on move.
    (rec(E9), rec((*E9[:2], EARLY, *E9[2:])), [chunk(0), chunk(1), head()], []),
    (rec(E9), rec((*E9[:7], LATER, *E9[7:])), [chunk(1), head()], []),
    # A record that goes takes every chunk with it.
    (rec(E9), None, [], [head(), chunk(0), chunk(1)]),
    # Shorter than stored (never decided so; defined anyway): chunks past it are deleted.
    (rec(E9), rec(entries(3)), [head()], [chunk(0), chunk(1)]),
])
def test_what_a_change_of_a_record_writes(old: IncidentRecord | None,
                                          new: IncidentRecord | None,
                                          written: list[str], deleted: list[str]) -> None:
    held = stored(old) if old is not None else {}
    out = record_writes(ID, old, new, held, 1, SIZE)
    assert sorted(k for k, v in out.items() if v is not None) == sorted(written)
    assert sorted(k for k, v in out.items() if v is None) == sorted(deleted)
    for key, data in out.items():
        if data is None:
            del held[key]
        else:
            held[key] = data
    assert read_record(ID, held) == new
    if new is not None:  # what is held is what writing `new` from nothing stores
        assert held == stored(new)


@pytest.mark.parametrize("level", [0, 1, 9])
def test_a_record_reads_back_from_its_chunks_at_every_level(level: int) -> None:
    record = IncidentRecord.build(alerts=("am:a", "am:b"), alert_info={"am:a": {"name": "A"}},
                                  timeline=entries(2 * SIZE + 3))
    held = {k: v for k, v in record_writes(ID, None, record, {}, level, SIZE).items()
            if v is not None}
    assert head_chunks(held[ID]) == 2 and len(held) == 3
    assert read_record(ID, held) == record


def test_a_record_stored_whole_reads_and_is_rewritten_in_chunks() -> None:
    """Records stored before chunks: one RECORD_PLAIN/RECORD_DEFLATE form under the head key."""
    old = rec(E9)
    for level in (0, 1):
        held = {ID: pack_record(old, level)}
        assert head_chunks(held[ID]) == 0 and read_record(ID, held) == old
        new = rec((*E9, *entries(1, "x")))
        out = record_writes(ID, read_record(ID, held), new, held, level, SIZE)
        assert sorted(out) == sorted([chunk(0), chunk(1), head()])
        held.update((k, v) for k, v in out.items() if v is not None)
        assert read_record(ID, held) == new


def test_a_missing_chunk_or_a_wrong_count_is_an_error_that_says_so() -> None:
    held = stored(rec(E9))
    del held[chunk(1)]
    with pytest.raises(ValueError, match="INC-1: timeline chunk 1 of its record is missing"):
        read_record(ID, held)
    with pytest.raises(ValueError, match="2 sealed timeline chunks read with 1"):
        unpack_record(held[ID], [held[chunk(0)]])


# --- the engine -----------------------------------------------------------------------------


def record_keys(encoded: dict[str, bytes | None], ident: str) -> list[str]:
    return [k for k in encoded if k.startswith(RECORD_PREFIX + ident)]


def test_a_round_of_a_long_incident_writes_its_head_and_at_most_the_chunk_it_sealed() -> None:
    engine = Engine(CTX)
    engine.apply([pod("live", 0)], at(0))
    churn(engine, 40)
    (inc,) = state(engine).incidents
    ident = inc.view.id
    whole = engine.view(inc)
    assert len(whole.timeline) > 3 * TIMELINE_CHUNK
    sealed = [k for k in engine.stored() if k.startswith(RECORD_PREFIX + ident + "\x00")]
    assert len(sealed) == len(whole.timeline) // TIMELINE_CHUNK
    for i in range(40, 50):
        start = 1 + 2 * i
        for event, minute in ((pod(f"c{i}", start), start),
                              (pod(f"c{i}", start, end=start + 1), start + 1)):
            batch = engine.apply([event], at(minute))
            keys = record_keys(batch.encoded, ident)
            assert RECORD_PREFIX + ident in keys and len(keys) <= 2
            assert batch.incidents[ident] == engine.view(state(engine).incidents[0])


def test_the_cap_of_alert_entries_holds_across_chunks_and_notes_still_go_in() -> None:
    engine = Engine(CTX)
    engine.apply([pod("live", 0)], at(0))
    churn(engine, MAX_TIMELINE // 3 + 10)
    (inc,) = state(engine).incidents
    view = engine.view(inc)
    assert len(view.timeline) == MAX_TIMELINE  # every later alert entry dropped
    minute = 2 * (MAX_TIMELINE // 3 + 10) + 5
    noted = engine.apply([command("note", minute, inc.view.id, text="still here")],
                         at(minute))
    timeline = noted.incidents[inc.view.id].timeline
    assert len(timeline) == MAX_TIMELINE + 1 and timeline[-1].text == "still here"
    assert sum(e.kind in NOISY for e in timeline) <= MAX_TIMELINE
    assert timeline[:MAX_TIMELINE] == view.timeline
    chunks = [k for k in noted.encoded if k.startswith(RECORD_PREFIX + inc.view.id + "\x00")]
    assert chunks == [] or len(chunks) == 1  # sealed ones stay as they are


def test_restore_and_replay_from_chunks_decide_and_record_the_same() -> None:
    engine = Engine(CTX)
    engine.apply([pod("live", 0)], at(0))
    churn(engine, 40)
    saved = engine.stored()
    (inc,) = state(engine).incidents
    whole = engine.view(inc)
    events = [pod("c40", 81), command("ack", 81, inc.view.id)]
    first = engine.apply(events, at(81))
    again = Engine(CTX)
    for key, data in reversed(saved.items()):  # the order a compacted topic gives is any
        again.load(key, data)
    assert again.view(state(again).incidents[0]) == whole
    second = again.apply(events, at(81))
    assert first.encoded == second.encoded
    assert first.incidents == second.incidents
    assert [n.id for n in first.notifications] == [n.id for n in second.notifications]


def test_an_engine_with_a_record_stored_whole_loads_it_and_moves_it_into_chunks() -> None:
    engine = Engine(CTX)
    engine.apply([pod("live", 0)], at(0))
    churn(engine, 40)
    (inc,) = state(engine).incidents
    key = RECORD_PREFIX + inc.view.id
    whole = engine.view(inc)
    older = Engine(CTX)
    for k, data in engine.stored().items():
        if not k.startswith(key):
            older.load(k, data)
    record = IncidentRecord.build(alerts=whole.alerts, timeline=whole.timeline,
                                  alert_info=whole.details["alert_info"])
    older.load(key, pack_record(record, 1))  # the form before chunks
    assert older.view(state(older).incidents[0]) == whole
    batch = older.apply([pod("c40", 81)], at(81))
    assert len(record_keys(batch.encoded, inc.view.id)) == 1 + len(whole.timeline) // 32
    assert batch.incidents == engine.apply([pod("c40", 81)], at(81)).incidents
    restored = Engine(CTX)
    for k, data in older.stored().items():
        restored.load(k, data)
    assert restored.view(state(restored).incidents[0]) == batch.incidents[inc.view.id]


def test_a_forgotten_incident_takes_every_chunk_of_its_record_with_it() -> None:
    engine = Engine(CTX)
    engine.apply([pod("live", 0)], at(0))
    churn(engine, 40)
    (inc,) = state(engine).incidents
    keys = [k for k in engine.stored() if k.startswith(RECORD_PREFIX + inc.view.id)]
    assert len(keys) > 3
    engine.apply([command("resolve", 90, inc.view.id)], at(90))
    deleted: dict[str, bytes | None] = {}
    minute = 90.0
    while keys[0] in engine.stored() and minute < 60 * 24 * 60:
        minute += 60 * 24
        deleted.update(engine.tick(at(minute)).encoded)
    assert {k: deleted.get(k, b"") for k in keys} == dict.fromkeys(keys)
    assert not [k for k in engine.stored() if k.startswith(RECORD_PREFIX)]

