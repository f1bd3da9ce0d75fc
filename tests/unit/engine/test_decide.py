"""Table tests of `decide`: one scenario per transition, driven by an injected `now`.

Default policies: SEV1 group_wait 0s, group_interval 1m, repeat 30m; SEV3 30s, 5m, 4h.
A scenario is a list of steps `(now_seconds, event)`; event is an alert event or "tick".
Its trace is one line per notification: "<now> <kind> <severity> <alerts>", where a resolved
alert is written "-fp", followed by " flapping" when the notification is marked flapping.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from router.engine import (
    EngineContext,
    GroupState,
    IncidentIds,
    Tick,
    decide,
    default_group_key,
)
from router.model import Alert, AlertEvent, CommandEvent, Notification, Severity, Status
from router.policy import SeverityPolicies, SeverityPolicy

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
SEV1, SEV2, SEV3 = Severity.SEV1, Severity.SEV2, Severity.SEV3
CTX = EngineContext()
IDS = IncidentIds()


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def fire(
    fp: str = "a",
    start: float = 0,
    sev: Severity | None = SEV1,
    *,
    receivers: tuple[str, ...] = ("pd",),
    received: float | None = None,
    service: str | None = "checkout",
    group_key: str | None = None,
) -> AlertEvent:
    return AlertEvent(
        alert=Alert(
            source="am",
            fingerprint=fp,
            status=Status.FIRING,
            name="HighErrorRate",
            starts_at=at(start),
            received_at=at(start if received is None else received),
            severity=sev,
            service=service,
            receivers=receivers,
            group_key=group_key,
        )
    )


def resolve(fp: str = "a", end: float = 0, start: float = 0, sev: Severity = SEV1,
            receivers: tuple[str, ...] = ("pd",)) -> AlertEvent:
    firing = fire(fp, start, sev, receivers=receivers, received=end).alert
    return AlertEvent(alert=firing.model_copy(update={"status": Status.RESOLVED,
                                                      "ends_at": at(end)}))


TICK = "tick"
Step = tuple[float, AlertEvent | str]


def line(now: float, note: Notification) -> str:
    alerts = ",".join(
        a.fingerprint if a.status is Status.FIRING else f"-{a.fingerprint}" for a in note.alerts
    )
    flap = " flapping" if note.details["flapping"] else ""
    return f"{now:g} {note.kind.value} {note.severity.value} {alerts}{flap}"


def run(steps: list[Step], ctx: EngineContext = CTX) -> tuple[GroupState | None, list[str]]:
    state: GroupState | None = None
    trace: list[str] = []
    for now, event in steps:
        if event == TICK:
            assert state is not None
            ev: AlertEvent | Tick = Tick(group_key=state.key)
        else:
            assert isinstance(event, AlertEvent)
            ev = event
        state, notes, _ = decide(state, ev, at(now), ctx, IDS)
        trace.extend(line(now, n) for n in notes)
    return state, trace


FLAPPY = EngineContext(flap_threshold=2, flap_window=timedelta(minutes=30))

SCENARIOS: list[tuple[str, list[Step], list[str], EngineContext]] = [
    ("new SEV1 firing notifies in the same call", [(0, fire())], ["0 trigger SEV1 a"], CTX),
    (
        "new SEV3 firing waits for group_wait",
        [(0, fire(sev=SEV3)), (10, TICK), (30, TICK)],
        ["30 trigger SEV3 a"],
        CTX,
    ),
    (
        "same alert again is a duplicate",
        [(0, fire()), (5, fire(received=5)), (65, fire(received=65)), (65, TICK)],
        ["0 trigger SEV1 a"],
        CTX,
    ),
    (
        "HA pair double delivery of firing and resolution",
        [
            (0, fire(received=0)),
            (1, fire(received=1)),
            (100, resolve(end=90)),
            (101, resolve(end=90)),
            (101, TICK),
        ],
        ["0 trigger SEV1 a", "101 resolve SEV1 -a"],
        CTX,
    ),
    (
        "3 alerts within group_wait give one trigger listing all 3",
        [(0, fire("a", sev=SEV3)), (5, fire("b", 5, SEV3)), (10, fire("c", 10, SEV3)),
         (29, TICK), (30, TICK)],
        ["30 trigger SEV3 a,b,c"],
        CTX,
    ),
    (
        "a SEV1 joining a waiting group cuts group_wait short",
        [(0, fire("a", sev=SEV3)), (5, fire("b", 5, SEV1))],
        ["5 trigger SEV1 b,a"],
        CTX,
    ),
    (
        "updates are batched once per group_interval",
        [(0, fire("a")), (10, fire("b", 10)), (20, fire("c", 20)), (30, TICK), (60, TICK),
         (70, fire("d", 70)), (100, TICK), (120, TICK)],
        ["0 trigger SEV1 a", "60 update SEV1 a,b,c", "120 update SEV1 a,b,c,d"],
        CTX,
    ),
    (
        "severity rise is an update after group_interval",
        [(0, fire(sev=SEV3)), (30, TICK), (40, fire(sev=SEV1)), (40, TICK), (90, TICK)],
        ["30 trigger SEV3 a", "90 update SEV1 a"],
        CTX,
    ),
    (
        "severity drop alone does not notify",
        [(0, fire(sev=SEV1)), (40, fire(sev=SEV3)), (60, TICK), (120, TICK)],
        ["0 trigger SEV1 a"],
        CTX,
    ),
    (
        "partial resolution is a batched update, the last one a resolve",
        [(0, fire("a")), (0, fire("b")), (60, TICK), (100, resolve("a", 100)), (100, TICK),
         (120, TICK), (200, resolve("b", 200)), (200, TICK)],
        ["0 trigger SEV1 a", "60 update SEV1 a,b", "120 update SEV1 b,-a",
         "200 resolve SEV1 -b"],
        CTX,
    ),
    (
        "resolved before group_wait: never notified, so no resolve",
        [(0, fire(sev=SEV3)), (10, resolve(end=10, sev=SEV3)), (30, TICK), (100, TICK)],
        [],
        CTX,
    ),
    (
        "firing older than a known resolution is stale",
        [(0, fire()), (100, resolve(end=100)), (100, TICK), (150, fire(start=50))],
        ["0 trigger SEV1 a", "100 resolve SEV1 -a"],
        CTX,
    ),
    (
        "replayed old firing after resolution is stale",
        [(0, fire()), (100, resolve(end=100)), (100, TICK), (150, fire(start=0, received=150))],
        ["0 trigger SEV1 a", "100 resolve SEV1 -a"],
        CTX,
    ),
    (
        "resolution delivered before its firing: the firing is stale",
        [(10, resolve(end=10, start=0)), (20, fire(start=0, received=20))],
        [],
        CTX,
    ),
    (
        "firing after resolution notifies again",
        [(0, fire()), (100, resolve(end=100)), (100, TICK), (200, fire(start=200))],
        ["0 trigger SEV1 a", "100 resolve SEV1 -a", "200 trigger SEV1 a"],
        CTX,
    ),
    (
        "resolved and firing again before the resolve went out: nothing to say",
        [(0, fire()), (30, resolve(end=30)), (40, fire(start=40)), (60, TICK), (120, TICK)],
        ["0 trigger SEV1 a"],
        CTX,
    ),
    (
        "still firing is repeated after repeat_interval",
        [(0, fire()), (1799, TICK), (1800, TICK), (3600, TICK)],
        ["0 trigger SEV1 a", "1800 repeat SEV1 a", "3600 repeat SEV1 a"],
        CTX,
    ),
    (
        "flapping is announced once, damped, then its settled state notified",
        [
            (0, fire()),
            (10, resolve(end=10)),
            (60, TICK),
            (70, fire(start=70)),  # 3rd change within the window: flapping
            (80, resolve(end=80, start=70)),
            (90, fire(start=90)),
            (100, resolve(end=100, start=90)),
            (160, TICK),
            (1000, TICK),
            (1900, TICK),  # no change for flap_window since 100: settled
        ],
        ["0 trigger SEV1 a", "60 resolve SEV1 -a", "70 trigger SEV1 a flapping",
         "1900 resolve SEV1 -a"],
        FLAPPY,
    ),
    (
        "flapping that settles firing says so in an update",
        [
            (0, fire()),
            (10, resolve(end=10)),
            (20, fire(start=20)),
            (60, TICK),
            (70, resolve(end=70, start=20)),
            (80, fire(start=80)),
            (120, TICK),
            (1880, TICK),
        ],
        ["0 trigger SEV1 a", "60 update SEV1 a flapping", "1880 update SEV1 a"],
        FLAPPY,
    ),
]


@pytest.mark.parametrize(
    ("steps", "expected", "ctx"),
    [pytest.param(s, e, c, id=name) for name, s, e, c in SCENARIOS],
)
def test_transitions(steps: list[Step], expected: list[str], ctx: EngineContext) -> None:
    _, trace = run(steps, ctx)
    assert trace == expected


@pytest.mark.parametrize(
    ("steps", "duplicates", "stale"),
    [
        ([(0, fire()), (1, fire(received=1)), (2, fire(received=2))], 2, 0),
        ([(0, fire()), (100, resolve(end=100)), (101, resolve(end=100))], 1, 0),
        ([(0, fire()), (100, resolve(end=100)), (150, fire(start=50))], 0, 1),
        ([(0, fire(start=60)), (10, fire(start=30))], 0, 1),
        ([(10, resolve(end=10)), (20, fire(start=0))], 0, 1),
    ],
    ids=["duplicate firings", "duplicate resolution", "stale firing", "older firing",
         "firing older than first seen resolution"],
)
def test_duplicates_and_stale_are_counted(
    steps: list[Step], duplicates: int, stale: int
) -> None:
    state, _ = run(steps)
    assert state is not None
    assert (state.duplicates, state.stale) == (duplicates, stale)


def test_refire_after_resolution_opens_a_new_epoch_with_a_new_dedup_key() -> None:
    state, notes1, _ = decide(None, fire(), at(0), CTX, IDS)
    state, _, _ = decide(state, resolve(end=100), at(100), CTX, IDS)
    tick = Tick(group_key=default_group_key(fire().alert))
    state, notes2, _ = decide(state, tick, at(100), CTX, IDS)
    state, notes3, _ = decide(state, fire(start=200), at(200), CTX, IDS)
    trigger, resolution, again = notes1[0], notes2[0], notes3[0]
    assert trigger.dedup_key == resolution.dedup_key
    assert again.kind.value == "trigger"
    assert again.dedup_key != trigger.dedup_key
    assert again.id != trigger.id
    assert state is not None and state.epoch == 1


def test_notifications_of_one_epoch_share_the_dedup_key_and_have_distinct_ids() -> None:
    steps: list[Step] = [(0, fire("a")), (10, fire("b", 10)), (60, TICK), (1860, TICK),
                         (1900, resolve("a", 1900)), (1900, resolve("b", 1900)), (1920, TICK)]
    state: GroupState | None = None
    notes: list[Notification] = []
    for now, event in steps:
        ev = Tick(group_key="HighErrorRate|checkout") if event == TICK else event
        assert not isinstance(ev, str)
        state, emitted, _ = decide(state, ev, at(now), CTX, IDS)
        notes.extend(emitted)
    assert [n.kind.value for n in notes] == ["trigger", "update", "repeat", "resolve"]
    assert len({n.dedup_key for n in notes}) == 1
    assert len({n.id for n in notes}) == 4


@pytest.mark.parametrize(
    ("alert_receivers", "policy_receivers", "default", "expected"),
    [
        ((("pd",), ("slack",)), [], (), ["pd", "slack"]),
        (((), ()), ["oncall"], ("fallback",), ["oncall"]),
        (((), ()), [], ("fallback",), ["fallback"]),
    ],
    ids=["union of the alerts' receivers", "severity policy receivers", "context default"],
)
def test_one_notification_per_receiver(
    alert_receivers: tuple[tuple[str, ...], tuple[str, ...]],
    policy_receivers: list[str],
    default: tuple[str, ...],
    expected: list[str],
) -> None:
    ctx = EngineContext(
        policies=SeverityPolicies(SEV3=SeverityPolicy(receivers=policy_receivers)),
        default_receivers=default,
    )
    state, _, _ = decide(None, fire("a", sev=SEV3, receivers=alert_receivers[0]), at(0), ctx, IDS)
    state, _, _ = decide(state, fire("b", sev=SEV3, receivers=alert_receivers[1]), at(1), ctx, IDS)
    assert state is not None
    _, notes, _ = decide(state, Tick(group_key=state.key), at(30), ctx, IDS)
    assert [n.receiver for n in notes] == expected
    assert len({n.dedup_key for n in notes}) == 1
    assert len({n.id for n in notes}) == len(expected)
    assert all(len(n.alerts) == 2 for n in notes)


def test_resolution_reaches_every_receiver_that_heard_the_firing() -> None:
    state, _, _ = decide(None, fire("a", receivers=("pd",)), at(0), CTX, IDS)
    state, _, _ = decide(state, fire("b", receivers=("slack",)), at(10), CTX, IDS)
    state, _, _ = decide(state, Tick(group_key="HighErrorRate|checkout"), at(60), CTX, IDS)
    state, _, _ = decide(state, resolve("a", 100, receivers=("pd",)), at(100), CTX, IDS)
    state, _, _ = decide(state, resolve("b", 100, receivers=("slack",)), at(100), CTX, IDS)
    _, notes, _ = decide(state, Tick(group_key="HighErrorRate|checkout"), at(120), CTX, IDS)
    assert [(n.kind.value, n.receiver) for n in notes] == [("resolve", "pd"), ("resolve", "slack")]


def test_alerts_group_by_rule_group_key_else_name_and_service() -> None:
    state, _, _ = decide(None, fire("a", group_key="team-payments"), at(0), CTX, IDS)
    assert state is not None and state.key == "team-payments"
    state, _, _ = decide(None, fire("a", service=None), at(0), CTX, IDS)
    assert state is not None and state.key == "HighErrorRate|"
    assert default_group_key(fire().alert) == "HighErrorRate|checkout"


def test_resolved_group_is_deleted_after_retention_but_recognises_stale_firing_until_then(
) -> None:
    state, trace = run([(0, fire()), (100, resolve(end=100)), (100, TICK)])
    assert trace == ["0 trigger SEV1 a", "100 resolve SEV1 -a"]
    assert state is not None
    state, notes, _ = decide(state, fire(start=50, received=3000), at(3000), CTX, IDS)
    assert notes == [] and state is not None and state.stale == 1
    retention = CTX.resolved_retention.total_seconds()
    state, notes, _ = decide(state, Tick(group_key=state.key), at(100 + retention), CTX, IDS)
    assert (state, notes) == (None, [])


def timed(event: AlertEvent, **timers: float) -> AlertEvent:
    overrides = {k: timedelta(seconds=v) for k, v in timers.items()}
    return AlertEvent(alert=event.alert.model_copy(update=overrides))


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ([(0, timed(fire(sev=SEV3), group_wait=5)), (5, TICK)], ["5 trigger SEV3 a"]),
        ([(0, timed(fire(sev=SEV1), group_wait=20)), (20, TICK)], ["20 trigger SEV1 a"]),
        ([(0, timed(fire(), group_interval=300)), (10, fire("b", 10)), (60, TICK), (300, TICK)],
         ["0 trigger SEV1 a", "300 update SEV1 a,b"]),
        ([(0, timed(fire(), repeat_interval=600)), (600, TICK)],
         ["0 trigger SEV1 a", "600 repeat SEV1 a"]),
    ],
    ids=["shorter group_wait", "SEV1 made to wait", "longer group_interval",
         "shorter repeat_interval"],
)
def test_rule_timer_overrides_win_over_the_severity_policy(
    steps: list[Step], expected: list[str]
) -> None:
    assert run(steps)[1] == expected


def test_tick_without_state_and_commands_change_nothing() -> None:
    assert decide(None, Tick(group_key="g"), at(0), CTX, IDS) == (None, [], IDS)
    state, _, _ = decide(None, fire(), at(0), CTX, IDS)
    command = CommandEvent(command="ack", group_key=state.key if state else "", actor="me",
                           at=at(1))
    assert decide(state, command, at(1), CTX, IDS) == (state, [], IDS)


def test_notification_content() -> None:
    _, notes, _ = decide(None, fire(), at(0), CTX, IDS)
    (note,) = notes
    assert note.title == "HighErrorRate (checkout)"  # the templates add "[SEV1] "
    assert note.group_key == "HighErrorRate|checkout"
    assert note.created_at == at(0)
    assert note.details["flapping"] is False
    assert note.details["epoch"] == 0


def test_state_round_trips_through_bytes() -> None:
    state, _ = run([(0, fire("a")), (10, fire("b", 10, SEV2)), (60, TICK),
                    (70, resolve("a", 70)), (71, fire("b", 10, SEV2, received=71))])
    assert state is not None
    data = state.to_bytes()
    assert isinstance(data, bytes)
    assert GroupState.from_bytes(data) == state
    assert GroupState.from_bytes(data).to_bytes() == data


def test_now_only_drives_timers_not_event_order() -> None:
    # The same events decided at a different engine time give the same kinds and alerts.
    a = run([(0, fire()), (100, resolve(end=100)), (100, TICK), (150, fire(start=50))])[1]
    b = run([(0, fire()), (500, resolve(end=100)), (500, TICK), (900, fire(start=50))])[1]
    assert [x.split(" ", 1)[1] for x in a] == [x.split(" ", 1)[1] for x in b]


@pytest.mark.parametrize(
    ("event", "ctx"),
    [
        (fire(), CTX),
        (fire(sev=SEV3, service=None), CTX),
        (resolve(end=30), CTX),
        (timed(fire(), group_wait=5), CTX),
        (fire(), EngineContext(flap_window=timedelta(0))),  # no flap history kept
        (fire(), EngineContext(flap_threshold=1)),
    ],
    ids=["SEV1 firing", "SEV3 no service", "resolved", "timer override", "no flap window",
         "flap threshold 1"],
)
def test_a_new_group_built_in_one_step_equals_the_general_path(
    event: AlertEvent, ctx: EngineContext
) -> None:
    # decide's batched fast path for a group's first alert (`_new_group`) against applying
    # the alert to an empty group, then re-arming both at the end of the batch.
    from router.engine.decide import _apply_alert, _hold, _new_group, rearm

    now = at(40)
    general = _hold(_apply_alert(GroupState(k=default_group_key(event.alert)), event.alert,
                                 now.timestamp(), ctx), event.alert)
    fast, notes, _ = decide(None, event, now, ctx, IDS, flush=False)
    assert notes == []
    assert fast == general == _new_group(event.alert, now.timestamp(), ctx)
    assert fast is not None
    assert fast.to_bytes() == general.to_bytes()
    assert rearm(fast, now, ctx) == rearm(general, now, ctx)


# --- resolved alerts of a live group are compacted (issue 18: cost must not grow with time) ---


def churn(rounds: int) -> GroupState:
    """A group with one alert firing throughout while `rounds` others fire and resolve, each
    round notified (SEV1: group_interval 1 min)."""
    steps: list[Step] = [(0, fire("keep"))]
    for i in range(rounds):
        t = 100 + 200 * i
        steps += [(t, fire(f"c{i}", start=t)), (t + 60, TICK),
                  (t + 100, resolve(f"c{i}", start=t, end=t + 100)), (t + 160, TICK)]
    state, _ = run(steps)
    assert state is not None
    return run_tick(state, 100 + 200 * rounds)


def run_tick(state: GroupState, now: float) -> GroupState:
    after, _, _ = decide(state, Tick(group_key=state.key), at(now), CTX, IDS)
    assert after is not None
    return after


def test_resolved_alerts_of_a_firing_group_leave_the_state_once_their_resolution_is_out() -> None:
    state = churn(10)
    assert set(state.alerts) == {"am:keep"}
    assert set(state.gone) == {f"am:c{i}" for i in range(10)}
    # What each decision carries grows by a few bytes per resolved alert, not by the alert.
    assert len(churn(20).to_bytes()) - len(state.to_bytes()) < 10 * 60


def test_compacted_alerts_are_forgotten_after_the_retention() -> None:
    state = churn(3)
    retention = CTX.resolved_retention.total_seconds()
    later = run_tick(state, 1000 + retention)
    assert later.gone == {} and set(later.alerts) == {"am:keep"}


@pytest.mark.parametrize(
    ("event", "stale", "duplicates", "firing"),
    [
        (fire("c0", start=50, received=2000), 1, 0, False),  # older than its resolution
        (resolve("c0", start=100, end=200), 0, 1, False),  # the same resolution again
        (resolve("c0", start=100, end=300), 0, 1, False),  # a later resolution: nothing new
        (fire("c0", start=2000), 0, 0, True),  # firing again: a new problem
    ],
    ids=["late firing", "resolution again", "later resolution", "fires again"],
)
def test_a_compacted_alert_is_still_recognised(event: AlertEvent, stale: int, duplicates: int,
                                               firing: bool) -> None:
    state = churn(1)
    assert "am:c0" in state.gone
    after, _, _ = decide(state, event, at(2000), CTX, IDS)
    assert after is not None
    assert (after.stale - state.stale, after.duplicates - state.duplicates) == (stale, duplicates)
    assert ("am:c0" in after.alerts and after.alerts["am:c0"].firing) is firing
    assert ("am:c0" in after.gone) is not firing


def test_flap_history_survives_compaction() -> None:
    """An alert that flaps slower than group_interval is compacted between its changes and is
    still seen flapping: the same trace as the flap scenario above."""
    steps: list[Step] = [(0, fire("keep", sev=SEV1))]
    t = 0.0
    for i in range(3):
        t = 100 + 300 * i
        steps += [(t, fire("f", start=t)), (t + 60, TICK),
                  (t + 150, resolve("f", start=t, end=t + 150)), (t + 210, TICK),
                  (t + 280, TICK)]
    state, trace = run(steps, FLAPPY)
    assert state is not None and state.flapping
    assert any(line.endswith("flapping") for line in trace)
