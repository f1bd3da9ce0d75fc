"""The incident lifecycle end to end in the engine (issue 12): an incident ends when its problem
ends, nothing pages after that, every receiver hears one resolution, timelines are in time
order. Config as in test_incidents (SEV1: group_interval 1 min, ack 15 min / resolve 60 min;
escalation alice -> bob -> carol, 15 min each; page receiver pd-page, status page sp, SLA
receiver mgr), driven by an injected clock.
"""

from __future__ import annotations

from datetime import timedelta

from router.engine import Engine
from router.escalation import EscalationLevel, EscalationPolicy, OnCallConfig, UserTarget
from router.incidents import IncidentStatus, TimelineKind
from router.model import AlertEvent, Severity, Status
from router.policy import SeverityPolicies
from tests.unit.engine.test_incidents import (
    CTX,
    KEY,
    ONCALL,
    at,
    command,
    fire,
    only_incident,
    run,
)


def resolved(fp: str = "a", end: float = 0, start: float = 0,
             sev: Severity = Severity.SEV1) -> AlertEvent:
    alert = fire(sev, fp, start).alert
    return AlertEvent(alert=alert.replace(status=Status.RESOLVED, ends_at=at(end),
                                          received_at=at(end)))


def test_alerts_resolving_resolve_the_incident_and_its_pages_once_each() -> None:
    engine = Engine(CTX)
    assert run(engine, [(0, [fire()]), (5, [resolved(end=5)]), (6, [])]) == [
        "0 trigger slack", "0 trigger sp", "0 page pd-page 1:alice",
        # the group's resolution is the incident's: slack once, the status page, the page
        "5 resolve slack", "5 resolve sp", "5 resolve pd-page",
    ]
    inc = only_incident(engine)
    assert inc.view.status is IncidentStatus.RESOLVED and inc.view.resolved_at == at(5)
    assert (inc.next_page, inc.ack_due, inc.resolve_due, inc.page_keys) == (None, None, None, ())
    # Nothing more: no escalation, no SLA breach, no reminder; a person's resolve is a no-op.
    inc_id = inc.view.id
    assert run(engine, [(15, []), (30, [command("resolve", 30, inc_id)]), (61, []),
                        (24 * 60, [])]) == []


def test_a_resolution_inside_group_interval_holds_escalation_until_it_goes_out() -> None:
    # CloudWatch: the OK message 4 s after the alarm; level 2 is due at 10 s, the group's
    # resolution at 60 s (SEV1 group_interval): nobody is paged for a problem that is over.
    fast = OnCallConfig(
        escalation_policies=[EscalationPolicy(name="checkout", levels=[
            EscalationLevel(targets=[UserTarget(user="alice")], delay=timedelta(seconds=10)),
            EscalationLevel(targets=[UserTarget(user="bob")], delay=timedelta(seconds=10)),
            EscalationLevel(targets=[UserTarget(user="carol")], delay=timedelta(seconds=10)),
        ])],
        services=ONCALL.services)
    engine = Engine(CTX.with_(oncall=fast))
    steps = [(0, [fire()]), (4 / 60, [resolved(end=4 / 60)])]
    steps += [(s / 60, []) for s in (10, 20, 30, 59)]
    assert run(engine, steps) == ["0 trigger slack", "0 trigger sp", "0 page pd-page 1:alice"]
    assert run(engine, [(1, []), (2, []), (60, [])]) == [
        "1 resolve slack", "1 resolve sp", "1 resolve pd-page"]
    inc = only_incident(engine)
    assert inc.view.status is IncidentStatus.RESOLVED and inc.view.escalation_level is None
    assert "sla_breaches" not in inc.view.details


def test_a_second_resolve_from_any_channel_notifies_nobody() -> None:
    engine = Engine(CTX)
    run(engine, [(0, [fire()])])
    inc_id = only_incident(engine).view.id
    first = run(engine, [(3, [command("resolve", 3, inc_id, actor="api:ops")])])
    assert first == ["3 resolve slack", "3 resolve sp", "3 resolve pd-page"]
    assert run(engine, [(4, [command("resolve", 4, inc_id, actor="slack:U2"),
                             command("update", 4, inc_id, actor="pagerduty:P1",
                                     status="resolved")]),
                        (5, [resolved(end=5)]), (7, []), (120, [])]) == []


def test_a_person_resolving_while_alerts_fire_ends_the_paging_for_good() -> None:
    engine = Engine(CTX)
    run(engine, [(0, [fire()])])
    inc_id = only_incident(engine).view.id
    assert run(engine, [(2, [command("resolve", 2, inc_id)])]) == [
        "2 resolve slack", "2 resolve sp", "2 resolve pd-page"]
    # Alertmanager keeps re-sending the same firing alert, then its resolution: silence.
    assert run(engine, [(5, [fire()]), (31, []), (40, [fire()]), (61, []),
                        (90, [resolved(end=90)]), (92, [])]) == []


def test_firing_again_within_the_reopen_window_reopens_with_one_new_page() -> None:
    engine = Engine(CTX)
    run(engine, [(0, [fire()]), (5, [resolved(end=5)]), (6, [])])
    first = only_incident(engine)
    out = run(engine, [(20, [fire(start=20)])])
    assert out == ["20 trigger slack", "20 trigger sp", "20 page pd-page 1:alice"]
    inc = only_incident(engine)
    assert inc.view.id == first.view.id and inc.view.status is IncidentStatus.INVESTIGATING
    assert inc.view.resolved_at is None and inc.dedup_key != first.dedup_key
    assert [e.kind for e in inc.view.timeline].count(TimelineKind.REOPENED) == 1
    # It escalates and resolves again, each page under the new key.
    assert run(engine, [(35, []), (36, [resolved(end=36, start=20)]), (37, [])]) == [
        "35 page pd-page 2:bob", "35 escalate mgr", "35 escalate slack",
        "35 sla_breach mgr", "35 sla_breach slack",
        "36 resolve slack", "36 resolve sp", "36 resolve pd-page", "36 resolve pd-page"]


def test_firing_after_the_reopen_window_opens_a_new_incident() -> None:
    engine = Engine(CTX)
    run(engine, [(0, [fire()]), (5, [resolved(end=5)]), (6, [])])
    first = only_incident(engine).view.id
    run(engine, [(6 + 61, [fire(start=67)])])
    state = engine.get(KEY)
    assert state is not None
    assert [i.view.id for i in state.incidents] == [first, "INC-20260302-2"]
    assert state.incidents[-1].open and not state.incidents[0].open


def test_auto_resolve_off_keeps_the_incident_open_with_one_resolution_from_a_person() -> None:
    policies = SeverityPolicies(SEV1=SeverityPolicies().SEV1.model_copy(
        update={"auto_resolve": False}))
    engine = Engine(CTX.with_(policies=policies))
    run(engine, [(0, [fire()]), (3, [command("ack", 3, "INC-20260302-1")])])
    out = run(engine, [(5, [resolved(end=5)]), (6, [])])
    assert out == ["5 update slack"]  # not a resolution: the vendors' incident stays open
    inc = only_incident(engine)
    assert inc.open and inc.view.status is IncidentStatus.INVESTIGATING
    # Firing again joins the open incident under its dedup key; then a person resolves it.
    batch = engine.apply([fire(start=8)], at(8))
    assert {n.dedup_key for n in batch.notifications} == {inc.dedup_key}
    assert run(engine, [(10, [command("resolve", 10, inc.view.id)]), (11, [resolved(end=11)]),
                        (20, [])]) == [
        "10 resolve slack", "10 resolve sp", "10 resolve pd-page"]


def test_declared_incidents_wait_for_a_person() -> None:
    engine = Engine(CTX)
    engine.apply([command("declare", 0, group_key="manual:x", title="Checkout down",
                          severity="SEV2", receivers=["slack"])], at(0))
    engine.tick(at(24 * 60))
    state = engine.get("manual:x")
    assert state is not None and state.incidents[0].open


def test_timeline_is_in_time_order_with_when_each_entry_was_recorded() -> None:
    engine = Engine(CTX)
    # The alert started 10 minutes before the router heard of it.
    engine.apply([AlertEvent.of(fire(start=-10).alert.replace(received_at=at(0)))], at(0))
    inc = only_incident(engine)
    times = [e.at for e in inc.view.timeline]
    assert times == sorted(times)
    assert inc.view.timeline[0].kind is TimelineKind.ALERT_FIRED
    assert inc.view.timeline[0].at == at(-10) and inc.view.timeline[0].recorded_at == at(0)
    # Taken at 1, decided at 3: it is on the timeline as of when the router took it.
    engine.apply([command("ack", 1, inc.view.id)], at(3))
    acked = only_incident(engine).view.timeline[-1]
    assert (acked.kind, acked.at, acked.recorded_at) == (TimelineKind.ACKNOWLEDGED, at(1), at(1))


def test_a_resolution_keeps_the_start_of_the_firing_it_ends() -> None:
    # CloudWatch OK: the message only knows when the state changed (its own start).
    engine = Engine(CTX)
    engine.apply([fire()], at(0))
    ok = resolved(end=24, start=24)
    batch = engine.apply([ok], at(24)).merge(engine.tick(at(25)))
    (note,) = [n for n in batch.notifications
               if n.receiver == "slack" and n.kind.value == "resolve"]
    (alert,) = note.alerts
    assert (alert.starts_at, alert.ends_at) == (at(0), at(24))


def test_ids_come_back_from_decide_instead_of_being_mutated() -> None:
    from router.engine import IncidentIds, decide

    ids = IncidentIds()
    state, out, after = decide(None, fire(), at(0), CTX, ids)
    assert state is not None and state.incidents[0].view.id == "INC-20260302-1"
    assert ids == IncidentIds() and after.seq == 1
    again = decide(None, fire(), at(0), CTX, ids)
    assert again.state is not None and again.state.incidents[0].view.id == "INC-20260302-1"
    assert [n.id for n in again.notifications] == [n.id for n in out]
