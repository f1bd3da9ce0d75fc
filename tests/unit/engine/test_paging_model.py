"""Model-based test of the paging promise on the pure engine (hypothesis stateful).

Random sequences of alerts firing and resolving (two alerts of one group, SEV1 or SEV2), stale
firing copies with older timestamps, duplicate deliveries, ack/update/resolve/page commands as
the API, Slack and PagerDuty send them, time passing escalation and SLA deadlines, and restarts
(the engine rebuilt from its stored bytes, as a backend restores it). After every step the
invariants of `tests.support.paging` hold. The same invariants are checked on both real
backends by tests/contract/test_paging_backends.py.
"""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from router.engine import Engine, GroupState
from router.engine.quiet import Quiet
from router.incidents import Incident
from router.model import AlertEvent, Notification, NotificationKind, Severity, Status
from tests.support.paging import history_problems, state_problems, step_problems
from tests.unit.engine.test_incidents import CTX, INCIDENTS, KEY, at, command, fire
from tests.unit.engine.test_quiet import Until

ACTORS = ("api:ops", "slack:U1", "pagerduty:P1")
K = NotificationKind
UNPROMPTED = {K.TRIGGER, K.REPEAT, K.ESCALATE, K.SLA_BREACH}
# Escalation levels of 45 s: deadlines land inside SEV1/SEV2 group intervals (1 and 2 min).
FAST = CTX.oncall.model_copy(update={"escalation_policies": [
    p.model_copy(update={"levels": [lv.model_copy(update={"delay": timedelta(seconds=45)})
                                    for lv in p.levels]})
    for p in CTX.oncall.escalation_policies]})
MODEL_CTX = CTX.with_(oncall=FAST)


class Paging(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.engine = Engine(MODEL_CTX)
        self.minute = 0.0
        self.history: list[Notification] = []
        self.views: dict[str, Incident] = {}
        self.last: dict[str, AlertEvent] = {}  # the last delivery of each alert
        self.started: dict[str, float] = {}
        self.problems: list[str] = []
        self.silence: Until | None = None

    def _apply(self, events: list[object]) -> None:
        batch = self.engine.apply(events, at(self.minute))  # type: ignore[arg-type]
        self._record(batch.notifications, batch.incidents)

    def _record(self, emitted: list[Notification], views: dict[str, Incident]) -> None:
        self.views.update(views)
        self.history += emitted
        now = at(self.minute).timestamp()
        if self.silence is not None:
            # Nothing the router says of its own accord lists a firing alert silenced now.
            self.problems += [
                f"{n.kind.value} to {n.receiver} lists silenced {a.fingerprint}"
                for n in emitted if n.kind in UNPROMPTED for a in n.alerts
                if a.status is Status.FIRING and self.silence.mute(a, now) is not None]
        self.problems += step_problems(emitted, self.views.values(), {KEY: self._state()})

    def _state(self) -> GroupState | None:
        """The group's state with its incidents' whole views (it keeps hot ones)."""
        state = self.engine.get(KEY)
        if state is None:
            return None
        views = tuple(x.with_(view=self.engine.view(x)) for x in state.incidents)
        return state.with_(incidents=views)

    def _incident_id(self) -> str | None:
        s = self._state()
        return s.incidents[-1].view.id if s is not None and s.incidents else None

    @rule(fp=st.sampled_from("ab"), sev=st.sampled_from([Severity.SEV1, Severity.SEV2]))
    def fires(self, fp: str, sev: Severity) -> None:
        start = self.started.get(fp)
        if start is None:
            start = self.started[fp] = self.minute
        event = fire(sev, fp, start)
        self.last[fp] = event
        self._apply([event])

    @rule(fp=st.sampled_from("ab"))
    def resolves(self, fp: str) -> None:
        start = self.started.pop(fp, self.minute)
        alert = fire(Severity.SEV1, fp, start).alert
        event = AlertEvent(alert=alert.replace(status=Status.RESOLVED, ends_at=at(self.minute),
                                               received_at=at(self.minute)))
        self.last[fp] = event
        self._apply([event])

    @rule(fp=st.sampled_from("ab"))
    def stale_firing_copy(self, fp: str) -> None:
        # A replica's delayed copy from before what the engine knows.
        self._apply([fire(Severity.SEV1, fp, self.minute - 120)])

    @rule(fp=st.sampled_from("ab"))
    def duplicate_delivery(self, fp: str) -> None:
        if fp in self.last:
            self._apply([self.last[fp]])

    @rule(name=st.sampled_from(["ack", "update", "resolve", "page", "update-resolved"]),
          actor=st.sampled_from(ACTORS))
    def person(self, name: str, actor: str) -> None:
        incident_id = self._incident_id()
        if incident_id is None:
            return
        args: dict[str, object] = {}
        if name == "update":
            args = {"message": f"looking {self.minute}", "status": "identified"}
        elif name == "update-resolved":
            name, args = "update", {"status": "resolved"}
        elif name == "page":
            args = {"target": "dave", "target_kind": "user"}
        self._apply([command(name, self.minute, incident_id, actor=actor, **args)])

    @rule(minutes=st.sampled_from([0.25, 0.5, 1, 2.5, 5, 14, 16, 31, 61, 180]))
    def time_passes(self, minutes: float) -> None:
        self.minute += minutes
        self._apply([])

    @rule(fp=st.sampled_from(["a", "b", "ab"]), minutes=st.sampled_from([1, 10, 45]))
    def silence_for(self, fp: str, minutes: int) -> None:
        self.silence = Until(frozenset(fp), self.minute + minutes)
        batch = self.engine.set_quiet(Quiet([self.silence]), at(self.minute))
        self._record(batch.notifications, batch.incidents)

    @rule()
    def next_timer_fires(self) -> None:
        due = self.engine.next_deadline()
        if due is not None and due > at(self.minute):
            self.minute = (due - at(0)).total_seconds() / 60
            self._apply([])

    @rule()
    def restart(self) -> None:
        engine = Engine(self.engine.context)
        for key, data in self.engine.stored().items():
            engine.load(key, data)
        self.engine = engine

    @invariant()
    def promise_kept(self) -> None:
        problems = list(self.problems)
        problems += history_problems(self.history, self.views.values(), INCIDENTS.page_receivers)
        state = self._state()
        problems += state_problems([state] if state is not None else [])
        assert problems == []


Paging.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
TestPaging = Paging.TestCase

