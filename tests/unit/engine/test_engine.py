"""`Engine`: batches, timers, restore, retention, and the one-trigger-per-epoch property."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.engine import Batch, Engine, EngineContext, GroupState
from router.engine.codec import frame, gone_section, pack, packed_deadline, unpack, unpacked
from router.model import Alert, AlertEvent, Notification, NotificationKind, Severity, Status

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
KEY = "HighErrorRate|checkout"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def alert_event(
    fp: str,
    start: float = 0,
    end: float | None = None,
    sev: Severity = Severity.SEV1,
    *,
    received: float | None = None,
    name: str = "HighErrorRate",
    receivers: tuple[str, ...] = ("pd",),
) -> AlertEvent:
    return AlertEvent(
        alert=Alert(
            source="am",
            fingerprint=fp,
            status=Status.FIRING if end is None else Status.RESOLVED,
            name=name,
            starts_at=at(start),
            ends_at=None if end is None else at(end),
            received_at=at(received if received is not None else (end or start)),
            severity=sev,
            service="checkout",
            receivers=receivers,
        )
    )


def kinds(batch: Batch) -> list[str]:
    return [n.kind.value for n in batch.notifications]


def test_burst_within_group_wait_gives_one_trigger_listing_all() -> None:
    engine = Engine()
    for i, fp in enumerate("abc"):
        assert engine.apply([alert_event(fp, i * 5, sev=Severity.SEV3)], at(i * 5)).empty is False
    assert engine.next_deadline() == at(30)
    assert engine.tick(at(29)).notifications == []
    batch = engine.tick(at(30))
    (trigger,) = batch.notifications
    assert trigger.kind is NotificationKind.TRIGGER
    assert [a.fingerprint for a in trigger.alerts] == ["a", "b", "c"]
    assert batch.notified == {NotificationKind.TRIGGER: 1}


def test_changes_of_one_batch_go_out_together() -> None:
    engine = Engine()
    (trigger,) = engine.apply([alert_event("a"), alert_event("b")], at(0)).notifications
    assert [a.fingerprint for a in trigger.alerts] == ["a", "b"]
    batch = engine.apply([alert_event("a", 0, 100), alert_event("b", 0, 100)], at(100))
    (resolution,) = batch.notifications
    assert resolution.kind is NotificationKind.RESOLVE
    assert sorted(a.fingerprint for a in resolution.alerts) == ["a", "b"]


def test_group_interval_batches_updates() -> None:
    engine = Engine()
    assert kinds(engine.apply([alert_event("a")], at(0))) == ["trigger"]
    assert kinds(engine.apply([alert_event("b", 10)], at(10))) == []
    assert kinds(engine.apply([alert_event("c", 20)], at(20))) == []
    assert engine.next_deadline() == at(60)
    batch = engine.tick(at(60))
    assert kinds(batch) == ["update"]
    assert len(batch.notifications[0].alerts) == 3


def test_a_pure_redelivery_changes_nothing_to_store() -> None:
    """A source re-sending what the group already has is counted and not written again."""
    engine = Engine()
    sent = [alert_event("a"), alert_event("b"), alert_event("c", 0, 30)]
    engine.apply(sent, at(0))
    engine.tick(at(120))
    before = engine.encoded(KEY)
    again = engine.apply(sent, at(150))
    assert again.duplicates == 3
    assert (again.encoded, again.changed, again.notifications) == ({}, {}, [])
    assert engine.encoded(KEY) == before
    # One new alert among re-sent ones: the group changes, the others still count.
    more = engine.apply([*sent, alert_event("d", 140)], at(160))
    assert more.duplicates == 3 and set(more.changed) == {KEY}


def test_ha_pair_double_delivery_notifies_once_and_counts_duplicates() -> None:
    engine = Engine()
    replica_a = [alert_event("a", received=0), alert_event("b", received=0)]
    replica_b = [alert_event("a", received=1), alert_event("b", received=1)]
    first = engine.apply([*replica_a, *replica_b], at(1))
    second = engine.apply(replica_b, at(2))
    assert kinds(first) == ["trigger"]
    assert len(first.notifications[0].alerts) == 2
    assert (first.duplicates, second.duplicates) == (2, 2)
    assert second.notifications == []
    assert engine.tick(at(61)).notifications == []


def test_out_of_order_firing_after_resolution_is_stale() -> None:
    engine = Engine()
    engine.apply([alert_event("a", 0)], at(0))
    assert kinds(engine.apply([alert_event("a", 0, 100)], at(100))) == ["resolve"]
    batch = engine.apply([alert_event("a", 50, received=150)], at(150))
    assert batch.stale == 1
    assert batch.notifications == []


def test_refire_after_resolution_is_a_new_trigger_with_a_new_dedup_key() -> None:
    engine = Engine()
    first = engine.apply([alert_event("a", 0)], at(0)).notifications[0]
    engine.apply([alert_event("a", 0, 100)], at(100))
    again = engine.apply([alert_event("a", 200)], at(200)).notifications[0]
    assert again.kind is NotificationKind.TRIGGER
    assert again.dedup_key != first.dedup_key


def test_repeat_after_repeat_interval_via_tick() -> None:
    engine = Engine()
    engine.apply([alert_event("a")], at(0))
    assert engine.next_deadline() == at(1800)
    assert kinds(engine.tick(at(1799))) == []
    assert kinds(engine.tick(at(1800))) == ["repeat"]
    assert engine.next_deadline() == at(3600)


def test_severity_rise_is_an_update() -> None:
    engine = Engine()
    engine.apply([alert_event("a", sev=Severity.SEV3)], at(0))
    assert kinds(engine.tick(at(30))) == ["trigger"]
    engine.apply([alert_event("a", sev=Severity.SEV1, received=40)], at(40))
    batch = engine.tick(at(90))
    assert kinds(batch) == ["update"]
    assert batch.notifications[0].severity is Severity.SEV1
    assert batch.notifications[0].details["reasons"] == ["severity_raised"]


def test_flapping_is_damped_and_counted() -> None:
    engine = Engine(EngineContext(flap_threshold=2))
    notes: list[Notification] = []
    flapping = 0
    events = [(0, alert_event("a", 0)), (10, alert_event("a", 0, 10)),
              (20, alert_event("a", 20)), (30, alert_event("a", 20, 30)),
              (40, alert_event("a", 40)), (50, alert_event("a", 40, 50))]
    for now, event in events:
        batch = engine.apply([event], at(now))
        notes += batch.notifications
        flapping += batch.flapping
    notes += engine.tick(at(60)).notifications
    # The resolution at 10 waits for group_interval (60); by then it flaps: held open, marked.
    assert [(n.kind.value, n.details["flapping"]) for n in notes] == [
        ("trigger", False), ("update", True)]
    assert flapping == 1
    settled = engine.tick(at(50 + 1800))
    assert [(n.kind.value, n.details["flapping"]) for n in settled.notifications] == [
        ("resolve", False)]


def test_same_events_on_fresh_engines_give_identical_notifications() -> None:
    events = [alert_event("a"), alert_event("b", 5), alert_event("a", received=6)]
    runs = []
    for _ in range(2):
        engine = Engine()
        notes = engine.apply(events, at(10)).notifications
        notes += engine.tick(at(70)).notifications
        notes += engine.apply([alert_event("a", 0, 80), alert_event("b", 5, 80)],
                              at(80)).notifications
        runs.append(notes)
    assert runs[0] == runs[1]
    # In the order of their receipt: "a" pages alone at 0 (SEV1), "b" follows a
    # group_interval later; the resolutions at 80 are due at 120.
    assert [n.kind.value for n in runs[0]] == ["trigger", "update"]


def test_changed_states_round_trip_through_bytes() -> None:
    engine = Engine()
    batch = engine.apply([alert_event("a"), alert_event("b", sev=Severity.SEV2)], at(0))
    assert batch.changed.keys() == batch.encoded.keys() == {KEY}
    state = batch.changed[KEY]
    assert state is not None
    assert batch.encoded[KEY] == pack(state, level=1) == engine.encoded(KEY)
    assert unpacked(pack(state), KEY) == state.to_bytes()
    assert unpack(pack(state), KEY) == state
    assert GroupState.from_bytes(state.to_bytes()) == state


@pytest.mark.parametrize("level", [0, 1, 9])
@pytest.mark.parametrize("events", [
    [],  # a group whose timers are all unarmed (resolved, nothing pending)
    [("a", 0, None)],
    [("a", 0, None), ("b", 5, 90)],
])
def test_stored_form_round_trips_with_its_deadline(
    level: int, events: list[tuple[str, float, float | None]]
) -> None:
    engine = Engine()
    engine.apply([alert_event(fp, start, end) for fp, start, end in events]
                 or [alert_event("a", 0, 10)], at(100))
    state = engine.get(KEY)
    assert state is not None
    data = pack(state, level)
    assert unpack(data, KEY) == state
    assert unpacked(data, KEY) == state.to_bytes()
    assert packed_deadline(data) == state.next_deadline()
    assert packed_deadline(state.to_bytes()) == state.next_deadline()  # plain JSON is read too
    assert unpack(state.to_bytes(), KEY) == state


def test_plain_json_of_an_older_store_restores_like_the_stored_form() -> None:
    steady = Engine()
    steady.apply([alert_event("a"), alert_event("b", 5, 70)], at(10))
    state = steady.get(KEY)
    assert state is not None
    old, new = Engine(), Engine()
    old.load(KEY, state.to_bytes())
    new.load(KEY, steady.encoded(KEY))
    assert old.get(KEY) == new.get(KEY) == state
    assert old.next_deadline() == new.next_deadline() == steady.next_deadline()
    assert kinds(old.tick(at(70))) == kinds(new.tick(at(70))) == kinds(steady.tick(at(70)))


def test_restore_after_load_decides_like_an_engine_that_never_restarted() -> None:
    part1 = [alert_event("a"), alert_event("b", 5, sev=Severity.SEV2), alert_event("c", 6)]
    part2 = [alert_event("a", received=100), alert_event("a", 0, 120), alert_event("d", 130)]
    steady = Engine()
    changelog: dict[str, bytes | None] = {}
    for batch in (steady.apply(part1, at(10)), steady.tick(at(70))):
        changelog.update(batch.encoded)

    restarted = Engine()
    for key, value in changelog.items():
        restarted.load(key, value)
    assert restarted.next_deadline() == steady.next_deadline()

    def rest(engine: Engine) -> list[Notification]:
        return engine.apply(part2, at(130)).notifications + engine.tick(at(1930)).notifications

    expected = rest(steady)
    assert rest(restarted) == expected
    # "a" resolved at 120 (an update then), "d" fired at 130 (an update at 180).
    assert [n.kind.value for n in expected] == ["update", "update"]


def test_resolved_groups_are_deleted_after_retention() -> None:
    ctx = EngineContext(resolved_retention=timedelta(hours=1))
    engine = Engine(ctx)
    engine.apply([alert_event("a")], at(0))
    engine.apply([alert_event("a", 0, 100)], at(100))
    assert len(engine) == 1
    assert engine.next_deadline() == at(100 + 3600)
    batch = engine.tick(at(100 + 3600))
    assert batch.changed == {KEY: None}
    assert batch.encoded == {KEY: None}
    assert len(engine) == 0
    assert engine.next_deadline() is None


def test_drop_forgets_groups_and_their_timers() -> None:
    engine = Engine()
    engine.apply([alert_event("a"), alert_event("x", name="Other")], at(0))
    engine.drop([KEY])
    assert KEY not in engine and "Other|checkout" in engine
    engine.drop(["Other|checkout"])
    assert engine.next_deadline() is None
    assert engine.tick(at(7200)).empty


def test_compressed_engine_decides_the_same_and_holds_fewer_bytes() -> None:
    plain, packed = Engine(compress_level=0), Engine()  # level 1 is the default
    events = [alert_event(f"fp{i}", name=f"Alert{i}") for i in range(20)]
    assert plain.apply(events, at(0)).notifications == packed.apply(events, at(0)).notifications
    key = "Alert3|checkout"
    packed_bytes, plain_bytes = packed.encoded(key), plain.encoded(key)
    assert packed_bytes is not None and plain_bytes is not None
    assert unpacked(packed_bytes, key) == unpacked(plain_bytes, key)
    assert len(packed_bytes) < len(plain_bytes)
    # Either engine restores the other's stored form.
    plain.load(key, packed_bytes)
    assert plain.get(key) == packed.get(key)
    assert kinds(plain.tick(at(1800))) == kinds(packed.tick(at(1800))) == ["repeat"] * 20


@pytest.mark.parametrize(("rearm", "expected"), [
    # (seconds of the later batches that re-arm the group, the Ticks' notification kinds)
    ([], ["repeat"]),  # armed once, fires once
    ([100], ["update", "repeat"]),  # moved away from its first bucket, which fires nothing
    ([100, 100], ["update", "repeat"]),  # stored again, same deadline: fires once
])
def test_timer_buckets_fire_each_group_once_at_its_current_deadline(
    rearm: list[float], expected: list[str]
) -> None:
    engine = Engine()
    engine.apply([alert_event("a")], at(0))  # TRIGGER now, REPEAT due at 1800
    notes: list[str] = []
    for t in rearm:  # an UPDATE at 100 moves the REPEAT to 1900; then a duplicate
        notes += kinds(engine.apply([alert_event("new", t)], at(t)))
    for t in range(0, 3000, 10):
        notes += kinds(engine.tick(at(t)))
    assert notes == expected


def test_timer_buckets_are_rebuilt_when_mostly_stale() -> None:
    engine = Engine()
    events = [alert_event(f"fp{i}", name=f"Alert{i}") for i in range(200)]
    engine.apply(events, at(0))
    for step in range(1, 12):  # each round re-arms every group at a new time: stale entries
        engine.apply([alert_event(f"fp{i}", step, name=f"Alert{i}", received=step)
                      for i in range(200)], at(step * 5))
        assert engine._armed <= 2 * len(engine) + 1024
    assert engine.next_deadline() is not None
    assert len(kinds(engine.tick(at(10_000)))) == 200


def test_small_hot_cache_still_decides_correctly() -> None:
    engine = Engine(hot_alerts=1)
    events = [alert_event(f"fp{i}", name=f"Alert{i}") for i in range(10)]
    engine.apply(events, at(0))
    assert kinds(engine.tick(at(1800))) == ["repeat"] * 10


# --- property: never more than one TRIGGER per group epoch ----------------------------------

# An alert's history: alternating firing/resolved at increasing source times.
histories = st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=4)


@st.composite
def event_orders(draw: st.DrawFn) -> tuple[list[AlertEvent], list[int], list[int]]:
    events: list[AlertEvent] = []
    for g in range(draw(st.integers(1, 3))):
        for fp in "ab"[: draw(st.integers(1, 2))]:
            t = 0
            for i, gap in enumerate(draw(histories)):
                t += gap
                if i % 2 == 0:
                    start = t
                    events.append(alert_event(fp, start, name=f"G{g}", received=t))
                else:
                    events.append(alert_event(fp, start, t, name=f"G{g}", received=t))
    # Any interleaving, with duplicates (HA pairs, retries, replays); half of the time mostly in
    # source order, so that resolutions go out and re-firings open new epochs.
    events += draw(st.lists(st.sampled_from(events), max_size=len(events)))
    if draw(st.booleans()):
        events.sort(key=lambda e: e.alert.received_at)
        ordered = list(events)
        for i, j in draw(st.lists(st.tuples(st.integers(0, len(events) - 1),
                                            st.integers(0, len(events) - 1)), max_size=3)):
            ordered[i], ordered[j] = ordered[j], ordered[i]
    else:
        ordered = draw(st.permutations(events))
    if draw(st.booleans()):
        cuts = list(range(1, len(ordered)))  # one event per batch
    else:
        cuts = sorted(draw(st.lists(st.integers(0, len(ordered)), max_size=len(ordered))))
    gaps = draw(st.lists(st.sampled_from([20, 90, 700]), min_size=len(cuts) + 1,
                         max_size=len(cuts) + 1))
    return ordered, cuts, gaps


def batched_notes(engine: Engine, events: list[AlertEvent], cuts: list[int],
                  gaps: list[int]) -> list[Notification]:
    """The notifications of `events` applied in batches cut at `cuts`, `gaps` seconds apart,
    then of the timers over the next two hours."""
    notes: list[Notification] = []
    now = 0.0
    bounds = [0, *cuts, len(events)]
    for (lo, hi), gap in zip(pairwise(bounds), gaps, strict=False):
        now += gap
        notes += engine.apply(events[lo:hi], at(now)).notifications
    for extra in (60, 600, 7200):
        notes += engine.tick(at(now + extra)).notifications
    return notes


@settings(max_examples=150, deadline=None)
@given(event_orders(), st.sampled_from([Severity.SEV1, Severity.SEV3]))
def test_no_interleaving_or_duplication_triggers_twice_per_epoch(
    order: tuple[list[AlertEvent], list[int], list[int]], sev: Severity
) -> None:
    events, cuts, gaps = order
    events = [AlertEvent(alert=e.alert.model_copy(update={"severity": sev})) for e in events]
    # Within the retention of resolved groups (a replay of a firing after its group was
    # deleted is new to the engine; it then gets the original TRIGGER's id and dedup key).
    engine = Engine(EngineContext(resolved_retention=timedelta(days=1)))
    notes = batched_notes(engine, events, cuts, gaps)
    per_epoch = Counter((n.group_key, n.dedup_key, n.kind) for n in notes)
    assert all(
        count == 1 for (_, _, kind), count in per_epoch.items()
        if kind in (NotificationKind.TRIGGER, NotificationKind.RESOLVE)
    )
    # Every epoch that was resolved had been triggered first.
    triggered = {(g, d) for g, d, k in per_epoch if k is NotificationKind.TRIGGER}
    resolved = {(g, d) for g, d, k in per_epoch if k is NotificationKind.RESOLVE}
    assert resolved <= triggered
    assert len({n.id for n in notes}) == len(notes)


@pytest.mark.parametrize("key", [
    "HighErrorRate|checkout",
    'quote"d|back\\slash',
    "ünïcode|😀",
    "nul\x00and\ttab|",
    "a",  # also a field name: `"a":` becomes a NUL too, and comes back
])
@pytest.mark.parametrize("level", [0, 1])
def test_stored_form_leaves_the_group_key_out_exactly(key: str, level: int) -> None:
    # The key as a JSON string becomes a NUL byte; text that merely contains it (escaped
    # quotes around it, longer strings) must come back unchanged too.
    tricky = {"summary": f'x\\"{key}" and "{key}', "exact": key, key: f'"{key}"'}
    base = alert_event("a").alert
    alert = base.model_copy(update={"group_key": key, "annotations": tricky})
    engine = Engine()
    engine.apply([AlertEvent(alert=alert)], at(0))
    state = engine.get(key)
    assert state is not None and state.key == key
    data = pack(state, level)
    assert unpack(data, key) == state
    assert unpacked(data, key) == state.to_bytes()
    assert len(data) < len(state.to_bytes())


def with_gone(engine: Engine) -> GroupState:
    """A group with compacted resolved alerts (`gone`) beside a firing one."""
    engine.apply([alert_event("a"), alert_event("b"), alert_event("c")], at(0))
    engine.apply([alert_event("b", 0, 60), alert_event("c", 0, 60)], at(61))
    engine.apply([alert_event("d", 100)], at(100))
    engine.tick(at(400))  # the round after their resolution's compacts them
    state = engine.get(KEY)
    assert state is not None and set(state.gone) == {"am:b", "am:c"}
    return state


@pytest.mark.parametrize("level", [0, 1])
def test_compacted_resolved_alerts_are_stored_apart_and_read_back_as_they_were(
        level: int) -> None:
    """`gone` grows with time at constant load: it follows the JSON as plain orjson, neither
    validated nor deflated, and comes back as the same tuples."""
    engine = Engine(compress_level=level)
    state = with_gone(engine)
    data = pack(state, level)
    assert data == engine.encoded(KEY) and data[0] in (5, 6)
    assert data.endswith(gone_section(state.gone, level))
    assert unpack(data, KEY) == state
    assert all(isinstance(v, tuple) for v in unpack(data, KEY).gone.values())
    assert orjson.loads(unpacked(data, KEY)) == orjson.loads(state.to_bytes())
    assert packed_deadline(data) == state.next_deadline()
    # The forms written before (gone inside the JSON) still read, and restore alike.
    older = frame(state.to_bytes(), state.next_deadline(), KEY, level)
    for old in (older, state.to_bytes()):
        assert unpack(old, KEY) == state
        again = Engine()
        again.load(KEY, old)
        assert again.get(KEY) == state and again.next_deadline() == engine.next_deadline()


def test_a_group_restored_with_compacted_alerts_still_drops_their_late_firings() -> None:
    engine = Engine()
    with_gone(engine)
    again = Engine()
    again.load(KEY, engine.encoded(KEY))
    late = again.apply([alert_event("b", 0)], at(401))  # older than its resolution
    assert late.stale == 1 and not late.notifications


@pytest.mark.parametrize(("alerts", "small"), [(1, True), (10, True), (21, True), (40, False)])
def test_a_small_state_deflates_to_the_same_bytes_with_the_small_window(alerts: int,
                                                                         small: bool) -> None:
    """`codec.frame` deflates a state that fits in a small window with one (cheaper to copy);
    the stream must be the one the full window gives, so stored forms do not change. Groups
    of 1-8 alerts fit, 12 and 30 do not (the full window then)."""
    import zlib

    from router.engine import codec

    engine = Engine(compress_level=1)
    engine.apply([alert_event(f"fp-{i}") for i in range(alerts)], at(0))
    state = engine.get(KEY)
    assert state is not None and len(state.alerts) == alerts
    body = state.to_bytes().replace(orjson.dumps(KEY), b"\x00")
    full = zlib.compressobj(1, zlib.DEFLATED, -15, 4, zlib.Z_DEFAULT_STRATEGY, codec.ZDICT_V1)
    expected = full.compress(body) + full.flush()
    data = frame(state.to_bytes(), state.next_deadline(), KEY, 1)
    assert data[codec._HEAD.size:] == expected
    assert unpack(data, KEY) == state
    assert (len(body) <= codec._SMALL_BODY) == small
