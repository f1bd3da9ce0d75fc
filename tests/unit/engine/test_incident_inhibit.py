"""The incident inhibition rule (issue 15): an open SEV1 incident for a service keeps the
service's less severe alerts quiet; they go on the incident's timeline instead of paging, and
notify when it closes if they still fire. Config and traces as in test_incidents.py."""

from __future__ import annotations

import pytest

from router.engine import Engine
from router.engine.incidents.inhibit import IncidentMuter, OpenIncident, inhibits, updated
from router.engine.noise import NOISE_KEY, Noise
from router.incidents import TimelineKind
from router.model import Alert, AlertEvent, Severity, Status
from tests.unit.engine.test_incidents import CTX, INCIDENTS, KEY, at, command, fire, run

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
    assert updated({}, [view.model_copy(update={"resolved_at": at(6)})],
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
    assert engine.noise.incidents[inc.view.id].service == "checkout"


def test_when_the_incident_closes_the_still_firing_alert_notifies_once() -> None:
    engine = Engine(CTX)
    run(engine, [(0, [fire()]), (1, [other()]), (5, [])])
    out = run(engine, [(20, [command("resolve", 20, note="fixed")]), (21, []), (30, [])])
    assert out.count("20 trigger slack") == 1  # the SEV3 alert, once the incident closed
    assert engine.get(OTHER).alerts["alertmanager:b"].muted is None  # type: ignore[union-attr]
    assert not engine.noise.incidents


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
    assert NOISE_KEY in stored
    again = Engine(CTX)
    for key, data in stored.items():
        again.load(key, data)
    assert run(again, [(2, [other(minute=2)]), (10, [])]) == []


def test_noise_stored_before_the_rule_still_decodes() -> None:
    old = b'{"silences":[],"sources":{}}'
    assert Noise.from_bytes(old).incidents == {}


def test_another_engine_learns_the_incident_from_the_broadcast_commands() -> None:
    """Kafka: the incident is on one partition, the lower-severity alert on another."""
    first = Engine(CTX)
    batch = first.apply([fire()], at(0)).merge(first.tick(at(1)))
    broadcast = [c for c in batch.commands if c.group_key == NOISE_KEY]
    assert [c.args["open"] for c in broadcast] == [True]
    second = Engine(CTX)
    second.apply(broadcast, at(1))
    batch = second.apply([other(minute=2)], at(2))
    (note,) = batch.commands  # the timeline entry, for the partition holding the incident
    assert (note.command, note.group_key) == ("inhibited", KEY)
    assert run(second, [(5, [])]) == []
    first.apply([note], at(3))
    inc = first.get(KEY).incidents[0]  # type: ignore[union-attr]
    assert any(e.kind is TimelineKind.QUIETED for e in first.view(inc).timeline)


def restarted(engine: Engine) -> Engine:
    """A new engine from what `engine` stored (as after a restart or a partition move)."""
    again = Engine(CTX)
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
    second = Engine(CTX)
    run(second, [(0, [other(minute=0)]), (1, [])])
    second = restarted(second)
    second.apply(broadcast, at(2))
    muted = second.get(OTHER).alerts["alertmanager:b"].muted  # type: ignore[union-attr]
    assert muted is not None and muted.startswith("incident:")
