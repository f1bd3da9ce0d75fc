"""The incident process timers on an injected clock (issue 16), with the default severity
policies: SEV1 update reminders every 15 min, acknowledgement timeout 30 min, idle resolve after
4 h. Config otherwise as in test_incidents (escalation alice -> bob -> carol, 15 min each)."""

from __future__ import annotations

from datetime import timedelta

from router.delivery.render import Renderer
from router.engine import Engine
from router.incidents import IncidentStatus, TimelineKind, postmortem_input
from router.model import Severity
from router.policy import SeverityPolicies
from router.postmortem import render_postmortem
from tests.unit.engine.test_incidents import CTX, at, command, fire, only_incident, run

PROCESS = CTX.with_(policies=SeverityPolicies())


def test_no_update_for_15_minutes_reminds_the_commander_until_one_is_posted() -> None:
    engine = Engine(PROCESS)
    run(engine, [(0, [fire()])])
    inc_id = only_incident(engine).view.id
    engine.apply([command("ack", 1, inc_id), command("update", 1, inc_id, commander="alice")],
                 at(1))
    out = run(engine, [(14, []), (15, [])])
    assert out == ["15 reminder slack"]
    engine.apply([command("ack", 16, inc_id)], at(16))  # (acknowledged again: no re-page)
    batch = engine.tick(at(30))
    (reminder,) = [n for n in batch.notifications if n.kind.value == "reminder"]
    assert reminder.details["reminder"] == "update" and reminder.details["commander"] == "alice"
    assert "[SEV1] HighErrorRate (checkout)" in reminder.details["template"]
    assert reminder.details["next_update"] == at(45).isoformat()
    # An update resets the clock: nothing at 45, the next at 32 + 15 = 47.
    engine.apply([command("update", 32, inc_id, message="rolling back")], at(32))
    assert [line for line in run(engine, [(45, []), (46, [])]) if "reminder" in line] == []
    assert [line for line in run(engine, [(47, [])]) if "reminder" in line] == [
        "47 reminder slack"]
    kinds = [e.kind for e in only_incident(engine).view.timeline]
    assert kinds.count(TimelineKind.REMINDER) == 3


def test_an_acknowledgement_that_times_out_pages_the_on_call_again_under_new_keys() -> None:
    engine = Engine(PROCESS)
    run(engine, [(0, [fire()])])
    inc_id = only_incident(engine).view.id
    first = only_incident(engine).page_keys
    engine.apply([command("ack", 2, inc_id)], at(2))
    assert [line for line in run(engine, [(31, [])]) if "page" in line] == []
    out = run(engine, [(32, [])])
    assert "32 page pd-page 1:alice" in out and "32 escalate slack" in out
    inc = only_incident(engine)
    assert inc.view.acknowledged_at is None and inc.cycle == 1
    new = [k for k in inc.page_keys if k not in first]
    assert new and new[0].endswith(":c1:page-1")  # the old page stays open, resolved later
    # Not acknowledged again: escalation runs on from level 1.
    assert "47 page pd-page 2:bob" in run(engine, [(47, [])])


def test_an_incident_with_nothing_firing_and_nobody_acting_resolves_itself_after_4h() -> None:
    engine = Engine(PROCESS)
    engine.apply([command("declare", 0, group_key="manual:x", title="Checkout slow",
                          severity="SEV2", receivers=["slack"])], at(0))
    engine.apply([command("update", 60, group_key="manual:x", message="looking")], at(60))
    engine.tick(at(60 + 239))
    state = engine.get("manual:x")
    assert state is not None and state.incidents[0].open
    batch = engine.tick(at(60 + 240))
    assert {n.kind.value for n in batch.notifications} == {"resolve"}
    assert {n.receiver for n in batch.notifications} == {"slack", "sp", "pd-page"}
    inc = engine.get("manual:x").incidents[0]  # type: ignore[union-attr]
    assert inc.view.status is IncidentStatus.RESOLVED
    assert engine.view(inc).timeline[-1].text.startswith(
        "resolved: no alert activity and no human action for 4 h")


def test_a_firing_alert_keeps_its_incident_from_idling() -> None:
    engine = Engine(PROCESS)
    run(engine, [(0, [fire(Severity.SEV2)])])
    engine.tick(at(4 * 60 + 1))
    assert only_incident(engine).open


def test_commander_and_communications_lead_show_in_every_update() -> None:
    engine = Engine(PROCESS)
    run(engine, [(0, [fire()])])
    inc_id = only_incident(engine).view.id
    engine.apply([command("update", 1, inc_id, commander="alice"),
                  command("update", 2, inc_id, comms_lead="bob", actor="slack:U2")], at(2))
    batch = engine.apply([command("update", 3, inc_id, message="rolling back",
                                  actor="slack:U3")], at(3))
    (update,) = [n for n in batch.notifications if n.receiver == "slack"]
    assert (update.details["commander"], update.details["comms_lead"]) == ("alice", "bob")
    assert update.details["next_update"] == at(18).isoformat()


def test_action_items_fill_the_postmortem_and_remind_their_owner_once_overdue() -> None:
    engine = Engine(PROCESS)
    run(engine, [(0, [fire()])])
    inc_id = only_incident(engine).view.id
    engine.apply([command("update", 1, inc_id, commander="alice", users_affected="~8% of EU",
                          revenue_impact="~$12k in failed orders", actor="slack:U1")], at(1))
    engine.apply([command("resolve", 30, inc_id)], at(30))
    # After resolution: the post-mortem meeting writes the action items.
    engine.apply([command("action", 60, inc_id, text="Add a canary stage", owner="bob",
                          due="2026-03-03"),
                  command("action", 61, inc_id, text="Alert on p99 latency", owner="carol")],
                 at(61))
    inc = only_incident(engine)
    assert [(i["id"], i["owner"], i["status"]) for i in inc.view.details["action_items"]] == [
        ("A1", "bob", "open"), ("A2", "carol", "open")]
    # Overdue once 2026-03-03 has ended: bob's item is reminded, once.
    early = engine.tick(at(24 * 60 + 15 * 60 - 1)).notifications
    assert not [n for n in early if n.details.get("reminder") == "action_item"]
    batch = engine.tick(at(39 * 60))
    (reminder,) = [n for n in batch.notifications if n.details.get("reminder") == "action_item"
                   and n.receiver == "slack"]
    assert (reminder.details["owner"], reminder.details["item"]) == ("bob", "A1")
    assert not [n for n in engine.tick(at(40 * 60)).notifications
                if n.details.get("reminder") == "action_item"]
    engine.apply([command("action_update", 41 * 60, inc_id, id="A1", status="done")],
                 at(41 * 60))
    text = render_postmortem(postmortem_input(only_incident(engine).view, SeverityPolicies()))
    assert "| Add a canary stage | bob | 2026-03-03 | done |" in text
    assert "| Alert on p99 latency | carol |  | open |" in text
    assert "Authors: alice, slack:U1." in text
    assert "**Users affected:** ~8% of EU" in text
    assert "**Revenue impact:** ~$12k in failed orders" in text


def test_the_first_notification_says_when_the_next_update_is_due() -> None:
    engine = Engine(PROCESS)
    batch = engine.apply([fire(Severity.SEV2)], at(0)).merge(engine.tick(at(1)))
    (trigger,) = [n for n in batch.notifications
                  if n.kind.value == "trigger" and n.receiver == "slack"]
    # Opened when its group_wait ended (10 s), SEV2: 30 min.
    assert trigger.details["next_update"] == (at(30) + timedelta(seconds=10)).isoformat()
    assert "Next update: by 2026-03-02 09:30 UTC" in Renderer().render(trigger).body
