"""An incident's history (timeline, alerts, their details) lives in a record beside its group,
not in the group's hot state: the state stays small however long the incident runs, the views
the API reads are whole, replays decide the same, and states stored with the history inside
still load (issue 18)."""

from __future__ import annotations

from router.engine import Engine
from router.engine.codec import pack, unpack, unpack_record
from router.engine.state import RECORD_PREFIX, GroupState
from router.incidents import Incident, TimelineKind
from router.model import AlertEvent, Status
from tests.unit.engine.test_incidents import CTX, KEY, at, command, fire

TK = TimelineKind


def pod(fp: str, minute: float, end: float | None = None) -> AlertEvent:
    a = fire(fp=fp, start=minute).alert.replace(labels={"pod": f"pod-{fp}"})
    if end is not None:
        a = a.replace(status=Status.RESOLVED, ends_at=at(end), received_at=at(end))
    return AlertEvent(alert=a)


def churn(engine: Engine, rounds: int, first: int = 0) -> dict[str, Incident]:
    """One pod firing and resolving every two minutes under the group's open incident (a live
    pod keeps it open); the incident views the batches wrote, last one per id."""
    views: dict[str, Incident] = {}
    for i in range(first, first + rounds):
        start = 1 + 2 * i
        views.update(engine.apply([pod(f"c{i}", start)], at(start)).incidents)
        views.update(engine.apply([pod(f"c{i}", start, end=start + 1)], at(start + 1)).incidents)
    return views


def state(engine: Engine) -> GroupState:
    s = engine.get(KEY)
    assert s is not None
    return s


def test_the_group_state_stays_small_while_the_incident_view_grows() -> None:
    engine = Engine(CTX)
    engine.apply([pod("live", 0)], at(0))
    churn(engine, 10)
    small = len(engine.encoded(KEY) or b"")
    views = churn(engine, 40, first=10)
    (inc,) = state(engine).incidents
    # What the API reads has every round; the state keeps only what decisions need.
    view = views[inc.view.id]
    assert view == engine.view(inc)
    assert len(view.timeline) > 100 and len(view.alerts) == 51
    assert [e.text for e in view.timeline if e.kind is TK.ALERT_FIRED][-1] == (
        "HighErrorRate firing: 5xx above 5%")
    assert inc.view.timeline == () and "alert_info" not in inc.view.details
    # Of the attached alerts, those still in the group: the live pod (the last one resolved
    # left the group's alerts at the round that announced its resolution).
    assert inc.view.alerts == ("alertmanager:live",)
    # The resolved pods' compacted history (`gone`) still grows for resolved_retention; the
    # incident part of the state does not.
    assert len(engine.encoded(KEY) or b"") < small + 40 * 40


def test_the_record_is_stored_beside_the_group_and_written_only_when_it_changes() -> None:
    engine = Engine(CTX)
    first = engine.apply([pod("live", 0)], at(0))
    (inc,) = state(engine).incidents
    key = RECORD_PREFIX + inc.view.id
    record = unpack_record(first.encoded[key] or b"")
    assert [e.kind for e in record.timeline][:2] == [TK.OPENED, TK.ALERT_FIRED]
    assert record.alerts == ("alertmanager:live",)
    # A re-send and a timer that change nothing on the incident leave the record alone.
    assert key not in engine.apply([pod("live", 0)], at(1)).encoded
    assert key not in engine.tick(at(2)).encoded
    noted = engine.apply([command("note", 3, inc.view.id, text="rollback started")], at(3))
    assert key in noted.encoded
    assert unpack_record(noted.encoded[key] or b"").timeline[-1].text == "rollback started"


def test_a_replay_from_the_stored_form_decides_and_records_the_same() -> None:
    """A crash before the commit: a new engine from what was stored decides the same batch
    into the same states, records, notifications and views."""
    engine = Engine(CTX)
    engine.apply([pod("live", 0)], at(0))
    churn(engine, 5)
    saved = engine.stored()
    events = [pod("c5", 11), command("ack", 11, state(engine).incidents[0].view.id)]
    first = engine.apply(events, at(11))
    again = Engine(CTX)
    for key, data in saved.items():
        again.load(key, data)
    second = again.apply(events, at(11))
    assert first.encoded == second.encoded
    assert [n.id for n in first.notifications] == [n.id for n in second.notifications]
    assert first.incidents == second.incidents


def test_a_state_stored_with_the_history_inside_still_loads_and_moves_it_out() -> None:
    """States written before records existed carry the whole view in the group's state."""
    engine = Engine(CTX)
    engine.apply([pod("live", 0)], at(0))
    churn(engine, 5)
    s = state(engine)
    whole = s.with_(incidents=tuple(x.with_(view=engine.view(x)) for x in s.incidents))
    old_form = whole.to_bytes()  # plain JSON of the older version
    assert b'"timeline"' in old_form and b'"alert_info"' in old_form
    older = Engine(CTX)
    older.load(KEY, old_form)
    (inc,) = state(older).incidents
    assert older.view(inc) == whole.incidents[0].view
    # The next change moves the history into a record and keeps adding to it.
    batch = older.apply([pod("c5", 11)], at(11))
    (inc,) = state(older).incidents
    assert inc.view.timeline == () and RECORD_PREFIX + inc.view.id in batch.encoded
    view = batch.incidents[inc.view.id]
    assert view.timeline[:len(whole.incidents[0].view.timeline)] == (
        whole.incidents[0].view.timeline)
    assert view.timeline[-1].kind is TK.NOTIFIED and "alertmanager:c5" in view.alerts
    assert view == engine.apply([pod("c5", 11)], at(11)).incidents[inc.view.id]
    assert unpack(pack(state(older)), KEY) == state(older)


def test_a_forgotten_incident_takes_its_record_with_it() -> None:
    engine = Engine(CTX)
    engine.apply([fire()], at(0))
    (inc,) = state(engine).incidents
    key = RECORD_PREFIX + inc.view.id
    assert key in engine.stored()
    engine.apply([command("resolve", 5, inc.view.id)], at(5))
    deleted = {}
    minute = 5.0
    while key in engine.stored() and minute < 60 * 24 * 60:
        minute += 60 * 24
        deleted.update(engine.tick(at(minute)).encoded)
    assert deleted.get(key, b"") is None and key not in engine.stored()
