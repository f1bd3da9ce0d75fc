"""Incident lifecycle in the engine, driven by an injected clock (`Engine.apply(events, now)`).

Config of these tests: SEV1 policy ack 15 min / resolve 60 min; escalation policy `checkout`:
level 1 alice, level 2 bob (15 min each), level 3 the `managers` schedule (carol); page
receiver `pd-page`, status page receiver `sp` (checkout -> component cmp-checkout), SLA
receiver `mgr`. A trace line is "<minute> <kind> <receiver> [<level>:<targets>]".
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from router.config import IncidentsConfig
from router.engine import Batch, Engine, EngineContext
from router.engine.ids import IDS_KEY, IncidentIds
from router.escalation import (
    EscalationLevel,
    EscalationPolicy,
    OnCallConfig,
    ScheduleTarget,
    ServiceConfig,
    UserTarget,
)
from router.incidents import IncidentStatus, TimelineKind, postmortem_input
from router.model import Alert, AlertEvent, CommandEvent, Notification, Severity, Status
from router.oncall import Schedule
from router.policy import SeverityPolicies
from router.postmortem import render_postmortem

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
KEY = "HighErrorRate|checkout"
ONCALL = OnCallConfig(
    schedules=[Schedule(name="managers", users=["carol"], start=datetime(2026, 1, 1))],
    escalation_policies=[EscalationPolicy(name="checkout", levels=[
        EscalationLevel(targets=[UserTarget(user="alice")], delay=timedelta(minutes=15)),
        EscalationLevel(targets=[UserTarget(user="bob")], delay=timedelta(minutes=15)),
        EscalationLevel(targets=[ScheduleTarget(schedule="managers")],
                        delay=timedelta(minutes=15)),
    ])],
    services={"checkout": ServiceConfig(escalation_policy="checkout", team="payments")},
)
INCIDENTS = IncidentsConfig(page_receivers=["pd-page"], statuspage_receiver="sp",
                            inhibit_lower_severity=True,
                            components={"checkout": "cmp-checkout"}, sla_receivers=["mgr"])
# The incident process timers (update reminders, acknowledgement timeout, idle resolve) are
# off here, so these traces show one mechanism each; test_process.py has them on.
NO_PROCESS = SeverityPolicies.model_validate({
    sev.value: {"update_every": None, "ack_timeout": None, "auto_resolve_after": None}
    for sev in Severity})
CTX = EngineContext(incidents=INCIDENTS, oncall=ONCALL, policies=NO_PROCESS)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def fire(sev: Severity = Severity.SEV1, fp: str = "a", start: float = 0,
         service: str = "checkout") -> AlertEvent:
    return AlertEvent(alert=Alert(
        source="alertmanager", fingerprint=fp, status=Status.FIRING, name="HighErrorRate",
        starts_at=at(start), received_at=at(start), severity=sev, service=service,
        receivers=("slack",), annotations={"summary": "5xx above 5%"},
    ))


def command(name: str, minute: float, incident_id: str | None = None, group_key: str = KEY,
            actor: str = "slack:U1", **args: Any) -> CommandEvent:
    return CommandEvent(command=name, incident_id=incident_id, group_key=group_key,
                        actor=actor, at=at(minute), args=args)


def trace(minute: float, batch: Batch) -> list[str]:
    lines = []
    for n in batch.notifications:
        line = f"{minute:g} {n.kind.value} {n.receiver}"
        if n.kind.value == "page":
            line += f" {n.details['level']}:{','.join(n.details['targets'])}"
        lines.append(line)
    return lines


def run(engine: Engine, steps: list[tuple[float, list[Any]]]) -> list[str]:
    out: list[str] = []
    for minute, events in steps:
        out += trace(minute, engine.apply(events, at(minute)))
    return out


def only_incident(engine: Engine, key: str = KEY) -> Any:
    state = engine.get(key)
    assert state is not None and len(state.incidents) == 1
    inc = state.incidents[0]
    return inc.with_(view=engine.view(inc))  # the whole view (the state keeps a hot one)


@pytest.mark.parametrize(
    ("open_at", "severity", "opens"),
    [
        (Severity.SEV2, Severity.SEV1, True),
        (Severity.SEV2, Severity.SEV2, True),
        (Severity.SEV2, Severity.SEV3, False),
        (Severity.SEV3, Severity.SEV3, True),
        (Severity.SEV1, Severity.SEV2, False),
    ],
)
def test_alert_groups_open_an_incident_at_or_above_open_at(
    open_at: Severity, severity: Severity, opens: bool
) -> None:
    ctx = EngineContext(incidents=IncidentsConfig(open_at=open_at))
    engine = Engine(ctx)
    batch = engine.apply([fire(severity)], at(0))
    batch = batch.merge(engine.tick(at(5)))  # past every group_wait
    assert bool(batch.incidents) is opens
    (trigger,) = [n for n in batch.notifications if n.kind.value == "trigger"]
    assert (trigger.incident_id is not None) is opens


def test_an_incident_opened_by_alerts_carries_what_the_api_shows() -> None:
    engine = Engine(CTX)
    batch = engine.apply([fire()], at(0))
    (view,) = batch.incidents.values()
    assert view.id == "INC-20260302-1"
    assert (view.title, view.severity, view.status) == (
        "HighErrorRate (checkout)", Severity.SEV1, IncidentStatus.INVESTIGATING)
    assert view.channel == "#inc-20260302-higherrorrate-checkout"
    assert (view.impact, view.service, view.team) == ("5xx above 5%", "checkout", "payments")
    assert view.alerts == ("alertmanager:a",)
    assert view.details["dedup_key"] == engine.get(KEY).dedup_key  # type: ignore[union-attr]
    assert view.escalation_level == 1
    assert [e.kind for e in view.timeline] == [
        TimelineKind.OPENED, TimelineKind.ALERT_FIRED, TimelineKind.NOTIFIED,
        TimelineKind.NOTIFIED, TimelineKind.PAGED]
    # Every notification of the group names the incident.
    assert {n.incident_id for n in batch.notifications} == {view.id}


def test_unacknowledged_pages_escalate_level_by_level_down_to_the_last() -> None:
    engine = Engine(CTX)
    assert run(engine, [(0, [fire()]), (14, []), (15, []), (29, []), (30, []), (45, []),
                        (59, [])]) == [
        "0 trigger slack", "0 trigger sp", "0 page pd-page 1:alice",
        "15 page pd-page 2:bob", "15 escalate mgr", "15 escalate slack",
        "15 sla_breach mgr", "15 sla_breach slack",
        "30 repeat slack",
        "30 page pd-page 3:carol", "30 escalate mgr", "30 escalate slack",
        # last level, no repeat configured: nothing more until the resolve SLA at 60 min
    ]
    inc = only_incident(engine)
    assert inc.view.escalation_level == 3
    assert inc.next_page is None
    kinds = [e.kind for e in inc.view.timeline]
    assert kinds.count(TimelineKind.ESCALATED) == 2
    assert kinds.count(TimelineKind.PAGED) == 3


def test_ack_stops_escalation_and_acknowledges_every_page() -> None:
    engine = Engine(CTX)
    run(engine, [(0, [fire()]), (15, [])])
    inc_id = only_incident(engine).view.id
    assert run(engine, [(20, [command("ack", 20, inc_id)]), (30, []), (45, [])]) == [
        "20 acknowledge slack", "20 acknowledge pd-page", "20 acknowledge pd-page",
        "30 repeat slack",
    ]
    inc = only_incident(engine)
    assert inc.view.acknowledged_at == at(20)
    assert inc.view.escalation_level is None
    batch = engine.apply([command("ack", 20.1, inc_id)], at(20.1))  # a double click
    assert batch.notifications == []
    pages = [n for n in engine.apply([command("ack", 21, inc_id)], at(21)).notifications]
    assert pages == []


def test_acknowledge_notifications_reach_each_page_by_its_own_dedup_key() -> None:
    engine = Engine(CTX)
    run(engine, [(0, [fire()]), (15, [])])
    inc = only_incident(engine)
    batch = engine.apply([command("ack", 16, inc.view.id)], at(16))
    keys = sorted(n.dedup_key for n in batch.notifications if n.receiver == "pd-page")
    assert keys == [f"{inc.dedup_key}:page-1", f"{inc.dedup_key}:page-2"]
    assert inc.view.details["page_keys"] == keys


def test_each_sla_breach_fires_once() -> None:
    engine = Engine(CTX)
    engine.apply([fire()], at(0))
    inc_id = only_incident(engine).view.id
    engine.apply([command("ack", 5, inc_id)], at(5))  # ack within SLA: no ack breach
    breaches: list[Notification] = []
    counted: dict[tuple[str, str], int] = {}
    for minute in (15, 16, 59, 60, 61, 120, 600):
        batch = engine.tick(at(minute))
        breaches += [n for n in batch.notifications if n.kind.value == "sla_breach"]
        for k, v in batch.sla_breaches.items():
            counted[k] = counted.get(k, 0) + v
    assert sorted((n.details["sla"], n.receiver) for n in breaches) == [
        ("resolve", "mgr"), ("resolve", "slack")]
    assert {n.created_at for n in breaches} == {at(60)}
    assert counted == {("SEV1", "resolve"): 1}
    inc = only_incident(engine)
    assert inc.view.details["sla_breaches"] == ["resolve"]


def test_update_posts_status_root_cause_and_eta_to_receivers_and_status_page() -> None:
    engine = Engine(CTX)
    engine.apply([fire()], at(0))
    inc_id = only_incident(engine).view.id
    update = command("update", 10, inc_id, status="identified", message="bad deploy 42",
                     root_cause="deploy 42 broke the pool", eta="10:30 UTC")
    batch = engine.apply([update], at(10))
    notes = {n.receiver: n for n in batch.notifications}
    assert sorted(notes) == ["slack", "sp"]
    d = notes["sp"].details
    assert (d["status"], d["root_cause"], d["eta"], d["note"]) == (
        "identified", "deploy 42 broke the pool", "10:30 UTC", "bad deploy 42")
    assert d["component_ids"] == ["cmp-checkout"]
    assert "channel" not in d and "actor" not in d  # the public page gets no internal names
    assert notes["slack"].details["channel"] == "#inc-20260302-higherrorrate-checkout"
    (view,) = batch.incidents.values()
    assert view.status is IncidentStatus.IDENTIFIED
    assert view.timeline[-1].kind is TimelineKind.STATUS_UPDATE
    assert view.timeline[-1].actor == "slack:U1"
    # The same click again within a minute changes nothing.
    assert engine.apply([update.model_copy(update={"at": at(10.2)})], at(10.2)).empty


def test_severity_change_by_update_is_on_the_timeline_and_rearms_slas() -> None:
    engine = Engine(EngineContext(incidents=IncidentsConfig(), oncall=ONCALL))
    engine.apply([fire(Severity.SEV2)], at(0))
    engine.tick(at(1))  # SEV2 waits 10 s before notifying: opened at its deadline, 10 s
    inc = only_incident(engine)
    opened = at(0) + timedelta(seconds=10)
    assert inc.ack_due == (opened + timedelta(minutes=30)).timestamp()
    engine.apply([command("update", 2, inc.view.id, severity="SEV1")], at(2))
    inc = only_incident(engine)
    assert inc.view.severity is Severity.SEV1
    assert inc.ack_due == (opened + timedelta(minutes=15)).timestamp()
    assert any(e.kind is TimelineKind.SEVERITY_CHANGE for e in inc.view.timeline)


def test_resolve_then_a_single_postmortem_reminder_unless_marked_done() -> None:
    engine = Engine(CTX)
    engine.apply([fire()], at(0))
    inc_id = only_incident(engine).view.id
    batch = engine.apply([command("resolve", 40, inc_id, message="rolled back deploy 42")],
                         at(40))
    # Unacknowledged for 40 minutes, it escalated before the resolve: both pages resolve.
    assert sorted(line for line in trace(40, batch) if "resolve" in line) == [
        "40 resolve pd-page", "40 resolve pd-page", "40 resolve slack", "40 resolve sp"]
    note = next(n for n in batch.notifications
                if n.receiver == "slack" and n.kind.value == "resolve")
    assert note.details["resolution"] == "rolled back deploy 42"
    assert "within 48 hours" in note.details["postmortem"]
    due = 40 + 48 * 60
    soon = [n for n in engine.tick(at(due - 12 * 60)).notifications
            if n.details.get("reminder") == "postmortem_soon"]
    assert [n.receiver for n in soon] == ["slack"]  # the commander hears 12 h before
    reminders = [n for m in (due - 1, due, due + 1, due + 120)
                 for n in engine.tick(at(m)).notifications if n.kind.value == "reminder"]
    assert sorted(n.receiver for n in reminders) == ["mgr", "slack"]
    assert {n.created_at for n in reminders} == {at(due)}

    other = Engine(CTX)
    other.apply([fire()], at(0))
    other.apply([command("resolve", 40, inc_id)], at(40))
    other.apply([command("postmortem_done", 50, inc_id, url="https://wiki/pm/1")], at(50))
    assert not [n for n in other.tick(at(due + 1)).notifications if n.kind.value == "reminder"]


def test_declare_opens_a_manual_incident_that_pages_and_goes_on_the_status_page() -> None:
    engine = Engine(CTX)
    declare = command("declare", 0, group_key="manual:7b1c", actor="api:ops", title="Checkout down",
                      severity="SEV1", service="checkout", impact="No orders",
                      commander="alice", receivers=["slack"])
    batch = engine.apply([declare], at(0))
    assert trace(0, batch) == ["0 trigger slack", "0 trigger sp", "0 page pd-page 1:alice"]
    (view,) = batch.incidents.values()
    assert (view.group_key, view.commander, view.impact) == ("manual:7b1c", "alice", "No orders")
    assert view.timeline[0].actor == "api:ops"
    assert engine.apply([declare], at(0.1)).notifications == []  # the same declare again
    assert len(engine.get("manual:7b1c").incidents) == 1  # type: ignore[union-attr]
    # The manual group is kept while the incident is open.
    engine.tick(at(24 * 60))
    assert "manual:7b1c" in engine


def test_page_command_pages_a_team_through_its_policy_or_a_user() -> None:
    engine = Engine(CTX)
    engine.apply([fire()], at(0))
    inc_id = only_incident(engine).view.id
    batch = engine.apply([command("page", 3, inc_id, target="payments", target_kind="team"),
                          command("page", 4, inc_id, target="@dave", target_kind="user")],
                         at(4))
    pages = [n for n in batch.notifications if n.kind.value == "page"]
    assert [(n.details["targets"], n.details["level"]) for n in pages] == [
        (["alice"], None), (["dave"], None)]
    assert len({n.dedup_key for n in pages}) == 2


def test_commands_for_unknown_incidents_are_counted_and_ignored() -> None:
    engine = Engine(CTX)
    engine.apply([fire()], at(0))
    batch = engine.apply([
        command("ack", 1, "INC-20990101-9"),
        command("ack", 1, None, group_key="nope"),
        CommandEvent(command="ack", actor="x", at=at(1)),
    ], at(1))
    assert batch.unknown_commands == 3
    assert batch.notifications == []
    assert only_incident(engine).view.acknowledged_at is None


def test_ids_are_sequential_per_day_and_the_counter_is_stored_with_the_states() -> None:
    engine = Engine(CTX)
    first = engine.apply([command("declare", 0, group_key="manual:1", title="A")], at(0))
    second = engine.apply([command("declare", 1, group_key="manual:2", title="B")], at(1))
    assert list(first.incidents) == ["INC-20260302-1"]
    assert list(second.incidents) == ["INC-20260302-2"]
    stored = second.encoded[IDS_KEY]
    assert stored is not None
    restored = Engine(CTX)
    restored.load(IDS_KEY, stored)
    third = restored.apply([command("declare", 2, group_key="manual:3", title="C")], at(2))
    assert list(third.incidents) == ["INC-20260302-3"]
    next_day = restored.apply([command("declare", 24 * 60, group_key="manual:4", title="D")],
                              at(24 * 60))
    assert "INC-20260303-1" in next_day.incidents


@pytest.mark.parametrize(("partition", "ids"), [(0, ["1", "4", "7"]), (2, ["3", "6", "9"])])
def test_kafka_partitions_never_collide(partition: int, ids: list[str]) -> None:
    counter = IncidentIds(stride=3, offset=partition)
    got = []
    for _ in range(3):
        incident_id, counter = counter.allocate(T0)
        got.append(incident_id.rsplit("-", 1)[1])
    assert got == ids


def test_replaying_the_same_history_gives_the_same_ids_and_notification_ids() -> None:
    def history() -> list[Notification]:
        engine = Engine(CTX)
        notes: list[Notification] = []
        notes += engine.apply([fire()], at(0)).notifications
        notes += engine.tick(at(15)).notifications
        inc_id = only_incident(engine).view.id
        notes += engine.apply([command("ack", 16, inc_id)], at(16)).notifications
        notes += engine.apply([command("resolve", 30, inc_id)], at(30)).notifications
        return notes

    a, b = history(), history()
    assert [n.id for n in a] == [n.id for n in b]
    assert len({n.id for n in a}) == len(a)


def test_a_timer_replayed_after_restore_from_bytes_pages_each_step_once() -> None:
    engine = Engine(CTX)
    engine.apply([fire()], at(0))
    saved = engine.encoded(KEY)
    assert saved is not None
    first = engine.tick(at(15)).notifications
    # A crash before the commit: restore the old state and decide the same timer again.
    again = Engine(CTX)
    again.load(KEY, saved)
    assert again.next_deadline() == at(15)
    second = again.tick(at(15)).notifications
    assert [n.id for n in first] == [n.id for n in second]
    # Late by an hour (the router was down): one page for the step due by then, not three.
    late = Engine(CTX)
    late.load(KEY, saved)
    pages = [n for n in late.tick(at(75)).notifications if n.kind.value == "page"]
    assert [n.details["level"] for n in pages] == [3]


def test_postmortem_input_is_built_from_the_incident() -> None:
    engine = Engine(CTX)
    started = fire(start=-3).alert.replace(received_at=at(0))  # heard of 3 minutes later
    engine.apply([AlertEvent.of(started)], at(0))
    inc_id = only_incident(engine).view.id
    engine.tick(at(15))
    engine.apply([command("ack", 17, inc_id)], at(17))
    engine.apply([command("update", 20, inc_id, status="identified", message="bad deploy",
                          root_cause="deploy 42")], at(20))
    batch = engine.apply([command("resolve", 45, inc_id, message="rolled back")], at(45))
    view = batch.incidents[inc_id]
    inp = postmortem_input(view, SeverityPolicies())
    assert (inp.started_at, inp.detected_at) == (at(-3), at(0))
    assert (inp.acknowledged_at, inp.resolved_at) == (at(17), at(45))
    assert (inp.ack_sla, inp.resolve_sla) == (timedelta(minutes=15), timedelta(hours=1))
    assert inp.root_cause == "deploy 42"
    assert [u.status for u in inp.updates] == ["identified"]
    assert [a.name for a in inp.alerts] == ["HighErrorRate"]
    text = render_postmortem(inp)
    assert "escalated" in text and "acknowledged" in text and "sla_breach" in text
    assert "lasted 48 min" in text


def pod(fp: str, start: float, end: float | None = None) -> AlertEvent:
    a = fire(fp=fp, start=start).alert.replace(labels={"pod": f"pod-{fp}"})
    if end is not None:
        a = a.replace(status=Status.RESOLVED, ends_at=at(end), received_at=at(end))
    return AlertEvent(alert=a)


def test_a_round_of_many_alerts_is_one_timeline_entry_each_way() -> None:
    """Ten pods of one group firing and resolving together: one entry says so, not ten."""
    engine = Engine(CTX)
    engine.apply([pod(str(i), 0) for i in range(10)], at(0))
    engine.apply([pod(str(i), 0, end=5) for i in range(10)], at(5))
    engine.apply([], at(7))
    view = only_incident(engine).view
    alert_entries = [e for e in view.timeline
                     if e.kind in (TimelineKind.ALERT_FIRED, TimelineKind.ALERT_RESOLVED)]
    assert [(e.kind, e.text) for e in alert_entries] == [
        (TimelineKind.ALERT_FIRED,
         "10 alerts firing: HighErrorRate (pod-0), HighErrorRate (pod-1), "
         "HighErrorRate (pod-2) +7 more"),
        (TimelineKind.ALERT_RESOLVED,
         "10 alerts resolved: HighErrorRate (pod-0), HighErrorRate (pod-1), "
         "HighErrorRate (pod-2) +7 more"),
    ]
    assert alert_entries[1].at == at(5)
    assert len(view.alerts) == 10 and view.status is IncidentStatus.RESOLVED


def test_an_incident_over_churning_pods_keeps_the_live_alerts_and_the_latest_resolved() -> None:
    """Pods come and go under one open incident: its view stays bounded, live ones first."""
    engine = Engine(CTX)
    engine.apply([pod("live", 0)], at(0))
    for i in range(150):
        engine.apply([pod(f"c{i}", 1 + 2 * i)], at(1 + 2 * i))
        engine.apply([pod(f"c{i}", 1 + 2 * i, end=2 + 2 * i)], at(2 + 2 * i))
    view = only_incident(engine).view
    assert view.open
    assert len(view.alerts) <= 100 and "alertmanager:live" in view.alerts
    assert "alertmanager:c149" in view.alerts and "alertmanager:c0" not in view.alerts
    assert set(view.details["alert_info"]) == set(view.alerts)
