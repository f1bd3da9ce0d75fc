"""A live group compacts a resolved alert at the round that announces its resolution (issue 18).

The round lists the alert resolved, its incident records the resolution, and the state after
the round keeps only its time and flap history (`GroupState.gone`): a group no longer carries
its announced resolutions through another group_interval of decisions. Decisions are the same
as with resolved alerts kept whole (`compact_resolved=False`, the Kafka backend's mode): every
table scenario of `test_decide`, random interleavings, flapping, re-firing within the hour.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.engine import Engine, EngineContext, GroupState
from router.incidents import TimelineKind
from router.model import AlertEvent, Notification, Severity, Status
from tests.unit.engine import test_incidents as inc_tests
from tests.unit.engine.test_decide import (
    CTX,
    FLAPPY,
    SCENARIOS,
    SEV3,
    TICK,
    Step,
    fire,
    resolve,
    run,
)
from tests.unit.engine.test_engine import batched_notes, event_orders

WHOLE = CTX.with_(compact_resolved=False)  # resolved alerts kept whole (Kafka)

# SEV3: group_wait 30 s, group_interval 5 min. `a` and `b` fire, the trigger goes out at 30 s.
BASE: list[Step] = [(0, fire("a", sev=SEV3)), (0, fire("b", sev=SEV3)), (30, TICK)]

ROUND = [
    # (what, steps after BASE, ctx, trace after the trigger, alerts after, gone after)
    ("the round announcing a partial resolution compacts the resolved alert",
     [(100, resolve("b", end=100, sev=SEV3)), (330, TICK)], CTX,
     ["330 update SEV3 a,-b"], {"a"}, {"b"}),
    ("without compaction it stays whole (Kafka's alerts view is written from the states)",
     [(100, resolve("b", end=100, sev=SEV3)), (330, TICK)], WHOLE,
     ["330 update SEV3 a,-b"], {"a", "b"}, set()),
    ("before its round the resolved alert is still whole: the round lists it",
     [(100, resolve("b", end=100, sev=SEV3)), (200, TICK)], CTX,
     [], {"a", "b"}, set()),
    ("the round resolving the whole group keeps every alert (the group expires as a whole)",
     [(100, resolve("b", end=100, sev=SEV3)), (110, resolve("a", end=110, sev=SEV3)),
      (330, TICK)], CTX,
     ["330 resolve SEV3 -a,-b"], {"a", "b"}, set()),
    ("an alert resolved before it was ever notified goes at the next timed step, unannounced",
     [(40, fire("c", start=40, sev=SEV3)), (50, resolve("c", start=40, end=50, sev=SEV3)),
      (60, TICK)], CTX,
     [], {"a", "b"}, {"c"}),
    ("firing again within the hour after its compaction: back, announced in the next round",
     [(100, resolve("b", end=100, sev=SEV3)), (330, TICK), (400, fire("b", start=400, sev=SEV3)),
      (630, TICK)], CTX,
     ["330 update SEV3 a,-b", "630 update SEV3 a,b"], {"a", "b"}, set()),
    ("a late firing older than the compacted resolution is dropped as stale",
     [(100, resolve("b", end=100, sev=SEV3)), (330, TICK),
      (400, fire("b", start=50, sev=SEV3, received=400)), (700, TICK)], CTX,
     ["330 update SEV3 a,-b"], {"a"}, {"b"}),
]


@pytest.mark.parametrize(("steps", "ctx", "expected", "alerts", "gone"),
                         [r[1:] for r in ROUND], ids=[r[0] for r in ROUND])
def test_the_resolution_round(steps: list[Step], ctx: EngineContext, expected: list[str],
                              alerts: set[str], gone: set[str]) -> None:
    state, trace = run(BASE + steps, ctx)
    assert state is not None
    assert trace == ["30 trigger SEV3 a,b", *expected]
    assert set(state.alerts) == {f"am:{fp}" for fp in alerts}
    assert set(state.gone) == {f"am:{fp}" for fp in gone}


def test_a_compacted_alert_keeps_its_time_and_flap_history() -> None:
    state, _ = run([*BASE, (100, resolve("b", end=100, sev=SEV3)), (330, TICK)])
    assert state is not None
    # Its resolution's source time, then its status changes (fired at 0, resolved at 100).
    t0 = fire().alert.starts_at.timestamp()
    assert state.gone["am:b"] == (t0 + 100, t0, t0 + 100)
    later, _ = run([*BASE, (100, resolve("b", end=100, sev=SEV3)), (330, TICK),
                    (400, fire("b", start=400, sev=SEV3))])
    assert later is not None
    assert later.alerts["am:b"].changes == (t0, t0 + 100, t0 + 400)
    assert later.stale == 0


@pytest.mark.parametrize(("steps", "ctx"), [(s[1], s[3]) for s in SCENARIOS],
                         ids=[s[0] for s in SCENARIOS])
def test_every_table_scenario_decides_the_same_with_resolved_alerts_kept_whole(
        steps: list[Step], ctx: EngineContext) -> None:
    compacted, trace = run(steps, ctx)
    whole, kept = run(steps, ctx.with_(compact_resolved=False))
    assert trace == kept
    if compacted is not None and whole is not None:
        assert (compacted.stale, compacted.duplicates) == (whole.stale, whole.duplicates)


def test_an_alert_flapping_slower_than_group_interval_is_seen_flapping() -> None:
    """Compacted at each resolution round between its changes, it still counts its flaps:
    announced once as flapping, the same trace as with the alert kept whole."""
    steps: list[Step] = [(0, fire("keep"))]
    for i in range(3):
        t = 100 + 300 * i
        steps += [(t, fire("f", start=t)), (t + 60, TICK),
                  (t + 150, resolve("f", start=t, end=t + 150)), (t + 210, TICK)]
        if i < 2:
            steps += [(t + 211, TICK)]  # compacted by now
    state, trace = run(steps, FLAPPY)
    assert state is not None and state.flapping
    assert trace == run(steps, FLAPPY.with_(compact_resolved=False))[1]
    assert sum(line.endswith("flapping") for line in trace) == 1


@settings(max_examples=100, deadline=None)
@given(event_orders(), st.sampled_from([Severity.SEV1, Severity.SEV3]))
def test_any_interleaving_notifies_the_same_with_resolved_alerts_kept_whole(
    order: tuple[list[AlertEvent], list[int], list[int]], sev: Severity
) -> None:
    events, cuts, gaps = order
    events = [AlertEvent(alert=e.alert.model_copy(update={"severity": sev})) for e in events]
    ctx = EngineContext(resolved_retention=timedelta(days=1))
    compacted = batched_notes(Engine(ctx), events, cuts, gaps)
    whole = batched_notes(Engine(ctx.with_(compact_resolved=False)), events, cuts, gaps)
    assert compacted == whole


# --- with an incident, through the engine ---------------------------------------------------


def pods(engine: Engine) -> list[Notification]:
    """SEV1 (group_interval 1 min): pods a and b fire, b resolves, its round goes out."""
    notes = engine.apply([inc_tests.fire(fp="a"), inc_tests.fire(fp="b")], inc_tests.at(0))
    resolved = inc_tests.fire(fp="b").alert.replace(
        status=Status.RESOLVED, ends_at=inc_tests.at(3), received_at=inc_tests.at(3))
    out = list(notes.notifications)
    out += engine.apply([AlertEvent(alert=resolved)], inc_tests.at(3)).notifications
    out += engine.tick(inc_tests.at(4)).notifications
    return out


def group(engine: Engine) -> GroupState:
    state = engine.get(inc_tests.KEY)
    assert state is not None
    return state


def test_the_incident_records_the_resolution_of_an_alert_compacted_in_its_round() -> None:
    engine = Engine(inc_tests.CTX)
    notes = pods(engine)
    (update,) = [n for n in notes if n.kind.value == "update" and n.receiver == "slack"]
    assert [(a.fingerprint, a.status) for a in update.alerts] == [
        ("a", Status.FIRING), ("b", Status.RESOLVED)]
    state = group(engine)
    assert set(state.alerts) == {"alertmanager:a"} and set(state.gone) == {"alertmanager:b"}
    view = inc_tests.only_incident(engine).view
    resolved = [e for e in view.timeline if e.kind is TimelineKind.ALERT_RESOLVED]
    assert [e.text for e in resolved] == ["HighErrorRate resolved"]
    assert view.alerts == ("alertmanager:a", "alertmanager:b")
    info = view.details["alert_info"]
    assert info["alertmanager:b"]["ended_at"] is not None
    assert info["alertmanager:a"]["ended_at"] is None


def test_a_replay_and_a_restore_after_the_round_decide_the_same() -> None:
    first, second = Engine(inc_tests.CTX), Engine(inc_tests.CTX)
    assert pods(first) == pods(second)
    assert first.stored() == second.stored()
    restored = Engine(inc_tests.CTX)
    for key, data in first.stored().items():
        restored.load(key, data)
    again = inc_tests.fire(fp="b", start=5)
    for engine in (first, restored):
        engine.apply([again], inc_tests.at(5))
    assert first.tick(inc_tests.at(6)).notifications == restored.tick(
        inc_tests.at(6)).notifications
    assert first.stored() == restored.stored()
    assert group(first).alerts["alertmanager:b"].firing
