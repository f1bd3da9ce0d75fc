"""Quiet alerts in the engine (issue 15): a muted firing alert is neither paged, announced,
reminded of, escalated nor counted for an incident, and notifies once the mute lifts if it
still fires. The muters here are the smallest possible (`Mute` until a time for some
fingerprints); silences, windows, inhibition and calendars plug in the same way."""

from __future__ import annotations

from dataclasses import dataclass

from router.engine import Engine
from router.engine.quiet import Mute, Quiet
from router.incidents import TimelineKind
from router.model import Alert, AlertEvent, Severity, Status
from tests.unit.engine.test_incidents import CTX, KEY, at, fire, only_incident, run


@dataclass(frozen=True)
class Until:
    """Mutes the alerts with these fingerprints until `minute`."""

    fingerprints: frozenset[str]
    minute: float
    reason: str = "silenced"

    def mute(self, alert: Alert, now: float) -> Mute | None:
        until = at(self.minute).timestamp()
        if alert.fingerprint in self.fingerprints and now < until:
            return Mute(self.reason, "s1", until)
        return None


def quiet(*fps: str, until: float, reason: str = "silenced") -> Engine:
    return Engine(CTX.with_(quiet=Quiet([Until(frozenset(fps), until, reason)])))


def resolved(fp: str, end: float, start: float = 0) -> AlertEvent:
    alert = fire(Severity.SEV1, fp, start).alert
    return AlertEvent(alert=alert.replace(status=Status.RESOLVED, ends_at=at(end)))


def test_a_silenced_alert_opens_nothing_until_the_silence_ends_then_pages_once() -> None:
    engine = quiet("a", until=10)
    assert run(engine, [(0, [fire()]), (5, []), (9, [])]) == []
    assert engine.get(KEY) is not None and not engine.get(KEY).incidents  # type: ignore[union-attr]
    assert run(engine, [(10, []), (11, [])]) == [
        "10 trigger slack", "10 trigger sp", "10 page pd-page 1:alice"]
    assert only_incident(engine).open


def test_silencing_a_paged_incident_stops_escalation_and_reminders_until_it_ends() -> None:
    engine = quiet("a", until=60)
    engine.context = CTX  # paged before the silence exists
    run(engine, [(0, [fire()])])
    engine.context = CTX.with_(quiet=Quiet([Until(frozenset("a"), 60)]))
    assert run(engine, [(1, [fire()]), (15, []), (30, []), (45, [])]) == []
    inc = only_incident(engine)
    assert inc.open and inc.view.escalation_level == 1
    assert TimelineKind.QUIETED in [e.kind for e in inc.view.timeline]
    # The silence ends with the alert still firing: escalation and the SLAs pick up.
    out = run(engine, [(60, [])])
    # Escalation resumes with the level that was due (bob), not the one the clock reached.
    assert "60 page pd-page 2:bob" in out and "60 sla_breach mgr" in out
    assert not any("carol" in line for line in out)


def test_only_the_audible_alerts_of_a_group_are_notified() -> None:
    engine = quiet("b", until=30)
    batch = engine.apply([fire(fp="a"), fire(fp="b")], at(0))
    (trigger,) = [n for n in batch.notifications if n.receiver == "slack"]
    assert [a.fingerprint for a in trigger.alerts] == ["a"]
    # b becomes audible at 30: one update announces it.
    batch = engine.tick(at(30))
    (update,) = [n for n in batch.notifications
                 if n.receiver == "slack" and n.kind.value == "update"]
    assert sorted(a.fingerprint for a in update.alerts) == ["a", "b"]


def test_a_muted_alert_that_resolves_ends_the_incident() -> None:
    engine = quiet("a", until=120)
    engine.context = CTX
    run(engine, [(0, [fire()])])
    engine.context = CTX.with_(quiet=Quiet([Until(frozenset("a"), 120)]))
    out = run(engine, [(2, [fire()]), (5, [resolved("a", 5)])])
    assert out == ["5 resolve slack", "5 resolve sp", "5 resolve pd-page"]
    assert not only_incident(engine).open


def test_deferred_until_business_hours_then_sent_if_still_firing() -> None:
    engine = quiet("a", "b", until=9 * 60, reason="deferred")
    assert run(engine, [(0, [fire(sev=Severity.SEV3)]), (60, []), (8 * 60, [])]) == []
    state = engine.get(KEY)
    assert state is not None
    assert state.alerts["alertmanager:a"].muted == "deferred:s1"
    assert state.quiet_until == at(9 * 60).timestamp()
    assert run(engine, [(9 * 60, [])]) == [f"{9 * 60} trigger slack"]  # not group_wait later
    # Resolved before the opening: nothing at all.
    engine = quiet("a", until=9 * 60, reason="deferred")
    assert run(engine, [(0, [fire(sev=Severity.SEV3)]), (60, [resolved("a", 60)]),
                        (9 * 60, [])]) == []

