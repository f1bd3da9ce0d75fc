"""Heartbeats in the engine: beats keep the switch quiet; when they stop for interval + grace
the router raises `HeartbeatMissing` in the heartbeat's group (routed like any alert), and the
next beat resolves it. Survives a restart from stored bytes."""

from __future__ import annotations

from datetime import timedelta

from router.engine import Engine
from router.model import CommandEvent, Severity
from router.noise.heartbeats import HEARTBEAT, Heartbeat
from tests.unit.engine.test_incidents import CTX, at, run

HB = Heartbeat(name="prometheus", interval=timedelta(minutes=1), grace=timedelta(minutes=2),
               severity=Severity.SEV2, receivers=("slack",), service="monitoring")
KEY = HB.group_key


def beat(minute: float) -> CommandEvent:
    return CommandEvent(command=HEARTBEAT, group_key=KEY, actor="alertmanager", at=at(minute))


def test_beats_keep_it_quiet_a_gap_raises_the_alarm_and_a_beat_resolves_it() -> None:
    engine = Engine(CTX.with_(heartbeats={HB.name: HB}))
    assert run(engine, [(m, [beat(m)]) for m in (0, 1, 2, 3)]) == []
    assert run(engine, [(5.9, [])]) == []  # due at 3 + 1 + 2 = 6
    assert engine.next_deadline() == at(6)
    out = run(engine, [(6, []), (7, [])])  # raised at 6; SEV2's group_wait of 10 s, then sent
    assert out[:2] == ["7 trigger slack", "7 trigger sp"]
    state = engine.get(KEY)
    assert state is not None
    [missing] = [st.alert for st in state.alerts.values()]
    assert (missing.name, missing.labels["heartbeat"], missing.starts_at) == (
        "HeartbeatMissing", "prometheus", at(4))
    # Restarted from stored bytes, then the beats come back: one resolution, then quiet.
    fresh = Engine(CTX.with_(heartbeats={HB.name: HB}))
    for key in list(engine.keys()):
        fresh.load(key, engine.encoded(key))
    back = run(fresh, [(m, [beat(m)]) for m in (8, 9, 10, 11)])
    assert back == ["9 resolve slack", "9 resolve sp", "9 resolve pd-page"]
    assert run(fresh, [(m, [beat(m)]) for m in (12, 13)]) == []


def test_a_beat_for_an_unknown_heartbeat_changes_nothing() -> None:
    engine = Engine(CTX)
    batch = engine.apply([beat(0)], at(0))
    assert batch.notifications == [] and KEY not in engine
