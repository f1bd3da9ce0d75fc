"""The incident inhibition rule (issue 15): an open SEV1 incident for a service keeps the
service's less severe alerts quiet; they go on the incident's timeline instead of paging, and
notify when it closes if they still fire. Config and traces as in test_incidents.py."""

from __future__ import annotations

from typing import Any

import pytest

from router.engine import Engine
from router.engine.ids import IncidentIds
from router.engine.incidents.inhibit import IncidentMuter, OpenIncident, inhibits, own_updated
from router.engine.noise import INCIDENT_INHIBITS, INHIBITORS_KEY, NOISE_KEY, Noise
from router.incidents import TimelineKind
from router.model import Alert, AlertEvent, Severity, Status
from tests.unit.engine.test_incidents import CTX, INCIDENTS, KEY, at, command, fire, run, trace

OTHER = "LatencyHigh|checkout"


def other(sev: Severity = Severity.SEV3, minute: float = 1, service: str = "checkout",
          status: Status = Status.FIRING) -> AlertEvent:
    """A second alert of the service, in a group of its own."""
    alert = fire(sev, "b", minute, service).alert.replace(name="LatencyHigh", status=status)
    if status is Status.RESOLVED:
        alert = alert.replace(ends_at=at(minute))
    return AlertEvent(alert=alert)


def inhibiting(**cfg: object) -> Engine:
    return Engine(CTX.with_(incidents=INCIDENTS.model_copy(update=cfg)))


INC = OpenIncident("INC-1", "checkout", Severity.SEV1, KEY)


@pytest.mark.parametrize(
    ("incidents", "severity", "service", "group", "quiet"),
    [
        ([INC], Severity.SEV3, "checkout", OTHER, True),
        ([INC], Severity.SEV2, "checkout", OTHER, True),
        ([INC], Severity.SEV4, "checkout", OTHER, True),
        ([INC], Severity.SEV1, "checkout", OTHER, False),  # as severe: pages
        ([INC], Severity.SEV3, "search", OTHER, False),  # another service
        ([INC], Severity.SEV3, None, OTHER, False),  # no service
        ([INC], Severity.SEV3, "checkout", KEY, False),  # the incident's own group
        ([INC._replace(severity=Severity.SEV2)], Severity.SEV2, "checkout", OTHER, False),
        ([INC._replace(severity=Severity.SEV2)], Severity.SEV3, "checkout", OTHER, True),
        ([], Severity.SEV3, "checkout", OTHER, False),
        ([INC._replace(id="INC-2", severity=Severity.SEV2), INC], Severity.SEV2, "checkout",
         OTHER, True),
    ],
)
def test_which_alerts_an_open_incident_keeps_quiet(
    incidents: list[OpenIncident], severity: Severity, service: str | None, group: str,
    quiet: bool,
) -> None:
    alert = Alert(source="alertmanager", fingerprint="b", status=Status.FIRING, name="x",
                  starts_at=at(0), received_at=at(0), severity=severity, service=service,
                  group_key=group)
    mute = IncidentMuter(incidents).mute(alert, at(0).timestamp())
    assert (mute is not None) is quiet
    if mute is not None:
        assert (mute.reason, mute.ref, mute.until) == ("incident", "INC-1", None)


@pytest.mark.parametrize(
    ("cfg", "severity", "service", "inhibits_"),
    [
        ({}, Severity.SEV1, "checkout", True),
        ({}, Severity.SEV2, "checkout", False),
        ({"inhibit_at": Severity.SEV2}, Severity.SEV2, "checkout", True),
        ({"inhibit_lower_severity": False}, Severity.SEV1, "checkout", False),
        ({}, Severity.SEV1, None, False),
    ],
)
def test_which_incidents_inhibit(cfg: dict[str, object], severity: Severity,
                                 service: str | None, inhibits_: bool) -> None:
    engine = inhibiting(**cfg)
    batch = engine.apply([fire(severity, service=service or "")], at(0)).merge(
        engine.tick(at(5)))
    (view,) = batch.incidents.values()
    assert (inhibits(view, engine.context.incidents) is not None) is inhibits_
    assert own_updated({}, [view.model_copy(update={"resolved_at": at(6)})],
                       engine.context.incidents) is None


def test_a_lower_severity_alert_under_an_open_sev1_incident_goes_on_its_timeline() -> None:
    engine = Engine(CTX)
    run(engine, [(0, [fire()])])
    batch = engine.apply([other()], at(1))
    assert batch.quieted == {"incident": 1}
    assert run(engine, [(2, []), (10, [])]) == []  # past SEV3's group_wait: nothing
    inc = engine.get(KEY).incidents[0]  # type: ignore[union-attr]
    (entry,) = [e for e in engine.view(inc).timeline if e.kind is TimelineKind.QUIETED]
    assert entry.text == (
        f"SEV3 alert LatencyHigh (group {OTHER}) inhibited by the open SEV1 incident "
        f"{inc.view.id} of service checkout: not paged while it is open")
    assert engine.get(OTHER).alerts["alertmanager:b"].muted == f"incident:{inc.view.id}"  # type: ignore[union-attr]
    assert engine.noise.services["checkout"].lead == (inc.view.id, "checkout", Severity.SEV1, KEY)


def test_when_the_incident_closes_the_still_firing_alert_notifies_once() -> None:
    engine = Engine(CTX)
    run(engine, [(0, [fire()]), (1, [other()]), (5, [])])
    out = run(engine, [(20, [command("resolve", 20, note="fixed")]), (21, []), (30, [])])
    assert out.count("20 trigger slack") == 1  # the SEV3 alert, once the incident closed
    assert engine.get(OTHER).alerts["alertmanager:b"].muted is None  # type: ignore[union-attr]
    assert not engine.noise.services


def test_an_inhibited_alert_that_resolves_is_never_notified() -> None:
    engine = Engine(CTX)
    run(engine, [(0, [fire()]), (1, [other()])])
    out = run(engine, [(3, [other(minute=3, status=Status.RESOLVED)]),
                       (20, [command("resolve", 20, note="fixed")]), (30, [])])
    assert not [line for line in out if line.endswith("trigger slack") and line != "0"]
    assert engine.get(OTHER) is None or not engine.get(OTHER).firing  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("alert", "cfg", "notified"),
    [
        (other(Severity.SEV1), {}, True),
        (other(service="search"), {}, True),
        (other(), {"inhibit_lower_severity": False}, True),
        (other(), {}, False),
    ],
)
def test_what_still_notifies_under_an_open_incident(alert: AlertEvent, cfg: dict[str, object],
                                                    notified: bool) -> None:
    engine = inhibiting(**cfg)
    run(engine, [(0, [fire()])])
    out = run(engine, [(1, [alert]), (5, [])])
    assert any(line.endswith(" slack") for line in out) is notified


def test_the_rule_survives_a_restart_from_the_stored_state() -> None:
    engine = Engine(CTX)
    stored: dict[str, bytes | None] = {}
    for batch in (engine.apply([fire()], at(0)), engine.tick(at(1))):
        stored.update(batch.encoded)
    assert INHIBITORS_KEY + "checkout" in stored
    again = Engine(CTX)
    for key, data in stored.items():
        again.load(key, data)
    assert run(again, [(2, [other(minute=2)]), (10, [])]) == []


def test_noise_stored_before_the_rule_still_decodes() -> None:
    old = b'{"silences":[],"sources":{}}'
    assert Noise.from_bytes(old).services == {}


def test_another_engine_learns_the_incident_from_the_broadcast_commands() -> None:
    """Kafka: the incident is on one partition, the lower-severity alert on another."""
    first = Engine(CTX)
    batch = first.apply([fire()], at(0)).merge(first.tick(at(1)))
    broadcast = [c for c in batch.commands if c.group_key == NOISE_KEY]
    assert [list(c.args["leads"]) for c in broadcast] == [["checkout"]]
    second = partition(1)
    second.apply(broadcast, at(1))
    batch = second.apply([other(minute=2)], at(2))
    (note,) = batch.commands  # the timeline entry, for the partition holding the incident
    assert (note.command, note.group_key) == ("inhibited", KEY)
    assert run(second, [(5, [])]) == []
    first.apply([note], at(3))
    inc = first.get(KEY).incidents[0]  # type: ignore[union-attr]
    assert any(e.kind is TimelineKind.QUIETED for e in first.view(inc).timeline)


def partition(p: int) -> Engine:
    """The engine of Kafka partition `p` of 2 (it tells its own announcements apart)."""
    return Engine(CTX, ids=IncidentIds(stride=2, offset=p))


def restarted(engine: Engine, p: int = 0) -> Engine:
    """A new engine from what `engine` stored (as after a restart or a partition move)."""
    again = partition(p) if p else Engine(CTX)
    for key in list(engine.keys()):
        again.load(key, engine.encoded(key))
    return again


def test_an_alert_already_firing_goes_quiet_when_an_incident_of_its_service_opens() -> None:
    """Only the incident's service's groups look again, and that holds for groups restored
    from the store too (the engine's index of groups by service is rebuilt after a load)."""
    search = AlertEvent(alert=other(service="search", minute=0).alert.replace(
        fingerprint="c", name="SearchSlow"))
    engine = Engine(CTX)
    run(engine, [(0, [other(minute=0), search]), (1, [])])
    engine = restarted(engine)
    engine.apply([fire(start=2)], at(2))
    muted = engine.get(OTHER).alerts["alertmanager:b"].muted  # type: ignore[union-attr]
    assert muted is not None and muted.startswith("incident:")
    found = engine.get("SearchSlow|search")
    assert found is not None and found.alerts["alertmanager:c"].muted is None


def test_an_alert_already_firing_goes_quiet_when_another_engine_reports_the_incident() -> None:
    first = Engine(CTX)
    broadcast = [c for c in first.apply([fire()], at(0)).merge(first.tick(at(1))).commands
                 if c.group_key == NOISE_KEY]
    second = partition(1)
    run(second, [(0, [other(minute=0)]), (1, [])])
    second = restarted(second, 1)
    second.apply(broadcast, at(2))
    muted = second.get(OTHER).alerts["alertmanager:b"].muted  # type: ignore[union-attr]
    assert muted is not None and muted.startswith("incident:")


def storm_alert(i: int, minute: float) -> AlertEvent:
    """SEV1 alert `i` of checkout in a group of its own: each opens its own SEV1 incident."""
    return AlertEvent(alert=fire(fp=f"s{i}", start=minute).alert.replace(name=f"Down{i}"))


def test_a_storm_of_sev1_incidents_of_one_service_is_announced_in_a_constant_number_of_commands(
        ) -> None:
    """Kafka writes each announcement to every partition and every engine wakes the service's
    groups on it: N incidents of one service cost a constant number of announcements (the
    service's lead changes), not one per incident. The other partition keeps its alert of the
    service quiet all along, and lets it notify when the last incident closes."""
    n = 40
    first, second = partition(0), partition(1)
    run(second, [(0, [other(minute=0)])])
    announced: list[dict[str, object]] = []
    ids: list[str] = []
    heard: list[str] = []  # what the second engine notified
    svc = INHIBITORS_KEY + "checkout"
    lead_writes: list[bool] = []
    stored: dict[str, bytes | None] = {}

    def step(minute: float, events: list[Any]) -> None:
        batch = first.apply(events, at(minute)).merge(first.tick(at(minute + 0.5)))
        for view in batch.incidents.values():
            if view.id not in ids:
                ids.append(view.id)
        noise = [c for c in batch.commands if c.group_key == NOISE_KEY]
        assert all(c.command == INCIDENT_INHIBITS for c in noise)
        announced.extend(c.args["leads"]["checkout"] for c in noise)
        heard.extend(trace(minute, second.apply(noise, at(minute + 0.5))))
        # What the first engine stores for the rule: the service's lead when it changes, and
        # the record of the one incident that changed (not all of the service's each time).
        ours = [k for k in batch.encoded if k.startswith(INHIBITORS_KEY)]
        assert all(k == svc or k.startswith(svc + "\x00") for k in ours)
        assert len(ours) <= 2
        lead_writes.append(svc in ours)
        stored.update(batch.encoded)

    for i in range(n):
        step(i, [storm_alert(i, i)])
    assert len(ids) == n
    assert [lead["id"] for lead in announced] == [ids[0]]  # type: ignore[index]
    muted = second.get(OTHER).alerts["alertmanager:b"].muted  # type: ignore[union-attr]
    assert muted == f"incident:{ids[0]}"
    restored = partition(0)
    for key, data in stored.items():
        restored.load(key, data)
    assert restored.noise.services == first.noise.services  # the lead and all n incidents
    for i, ident in enumerate(ids):  # closed in the order they opened
        step(n + i, [command("resolve", n + i, ident, group_key=f"Down{i}|checkout")])
        if i < n - 1:
            muted = second.get(OTHER).alerts["alertmanager:b"].muted  # type: ignore[union-attr]
            assert muted is not None and muted.startswith("incident:")
    # The first lead, its successor (the most recent) when it closed, none at the last close.
    assert [lead and lead["id"] for lead in announced] == [ids[0], ids[-1], None]  # type: ignore[index]
    assert sum(lead_writes) == 3
    assert second.get(OTHER).alerts["alertmanager:b"].muted is None  # type: ignore[union-attr]
    heard += run(second, [(3 * n, [])])
    triggers = [line for line in heard if line.endswith("trigger slack")]
    assert triggers == [f"{2 * n - 1} trigger slack"]  # when the last incident closed


def test_an_engine_ignores_its_own_announcements_coming_back() -> None:
    """Kafka writes an announcement to every partition, the sender's too."""
    engine = partition(0)
    batch = engine.apply([fire()], at(0)).merge(engine.tick(at(1)))
    (broadcast,) = [c for c in batch.commands if c.group_key == NOISE_KEY]
    before = engine.noise
    assert engine.apply([broadcast], at(2)).commands == []
    assert engine.noise.services == before.services


def test_a_more_severe_incident_takes_the_lead() -> None:
    engine = inhibiting(inhibit_at=Severity.SEV2)
    run(engine, [(0, [fire(Severity.SEV2, fp="x", start=0)]), (1, [])])
    sev2 = engine.noise.services["checkout"].lead
    assert sev2 is not None and sev2.severity is Severity.SEV2
    batch = engine.apply([storm_alert(1, 2)], at(2)).merge(engine.tick(at(3)))
    (cmd,) = [c for c in batch.commands if c.group_key == NOISE_KEY]
    assert cmd.args["leads"]["checkout"]["severity"] == "SEV1"
    assert len(engine.noise.services["checkout"].own) == 2


_WAKE_ORDER = """
from router.engine import Engine
from router.model import AlertEvent, Severity
from tests.unit.engine.test_incident_inhibit import other
from tests.unit.engine.test_incidents import CTX, command, fire, run
engine = Engine(CTX)
run(engine, [(0, [fire()])])
quiet = [AlertEvent(alert=other(Severity.SEV2, 1).alert.replace(
    name=f"Latency{i}", fingerprint=f"f{i}", group_key=f"Latency{i}|checkout"))
    for i in range(30)]
run(engine, [(1, quiet), (5, [])])
run(engine, [(20, [command("resolve", 20, note="fixed")]), (21, [])])
for i in range(30):
    state = engine.get(f"Latency{i}|checkout")
    print(i, [inc.view.id for inc in state.incidents] if state else None)
"""


def test_groups_woken_by_a_closing_incident_get_the_same_incident_ids_in_every_process() -> None:
    """The service index holds sets, whose order follows the per-process string hash; the
    order groups are woken in allocates their incident ids, which a replay on another replica
    (or after a restart) must allocate the same."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    outs = {
        subprocess.run([sys.executable, "-c", _WAKE_ORDER], check=True, capture_output=True,
                       text=True, cwd=root,
                       env={**os.environ, "PYTHONPATH": str(root), "PYTHONHASHSEED": seed}
                       ).stdout
        for seed in ("0", "1", "2")
    }
    assert len(outs) == 1
    (out,) = outs
    assert out.count("INC-") == 30  # each woken SEV2 group opened its own incident


def test_what_a_batch_stores_for_the_inhibitors_is_the_same_as_a_full_comparison() -> None:
    """Noise tracks which services a batch touched, so `stored` and `changed_services` need not
    walk every service; their answers must be those of comparing every service."""
    from dataclasses import replace

    from router.engine.incidents.inhibit import Inhibitors

    def own(*ids: str, service: str) -> Inhibitors:
        return Inhibitors().with_own({i: OpenIncident(i, service, Severity.SEV1, f"g-{i}")
                                      for i in ids})

    held = Noise().with_services({f"svc-{i}": own(f"INC-{i}", service=f"svc-{i}")
                                  for i in range(50)}).settled()
    after = (held
             .with_services({"svc-3": Inhibitors(), "svc-new": own("INC-x", service="svc-new")})
             .with_services({"svc-7": own("INC-7", "INC-y", service="svc-7")})
             .applied(command("x", 1, group_key=NOISE_KEY).model_copy(update={
                 "command": INCIDENT_INHIBITS,
                 "args": {"origin": 5, "leads": {"svc-9": {"id": "INC-z", "service": "svc-9",
                                                           "severity": "SEV1",
                                                           "group_key": "g-z"}}}}), 0))
    untracked = replace(after, base=None, touched=frozenset())
    assert after.touched == {"svc-3", "svc-new", "svc-7", "svc-9"}
    assert after.stored(held) == untracked.stored(held)
    assert after.changed_services(held) == untracked.changed_services(held) == {
        "svc-3", "svc-new", "svc-7", "svc-9"}
    assert set(after.stored(held)) >= {INHIBITORS_KEY + "svc-3", INHIBITORS_KEY + "svc-9"}
