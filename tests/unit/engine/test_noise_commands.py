"""Silences and inhibitors reach the engine as noise commands on the log: they mute what they
match at once, survive a restart from the stored bytes, and lift when expired or resolved."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import yaml

from router.backends.factory import engine_context
from router.config import parse_config
from router.engine import Engine
from router.engine.noise import INHIBIT_SOURCE, NOISE_KEY, SILENCE
from router.engine.quiet import Quiet
from router.model import AlertEvent, CommandEvent, Severity
from router.noise.inhibit import InhibitRule
from router.noise.matchers import parse_matchers
from router.noise.muters import InhibitMuter
from router.noise.silences import Silence
from tests.unit.engine.test_incidents import CTX, KEY, at, fire, run


def silence(start: float, end: float, matchers: str = '{alertname="HighErrorRate"}',
            sid: str = "s-1") -> CommandEvent:
    s = Silence(id=sid, matchers=parse_matchers(matchers), starts_at=at(start), ends_at=at(end),
                created_by="alice", comment="deploy", updated_at=at(start))
    return CommandEvent(command=SILENCE, group_key=NOISE_KEY, actor="api:alice", at=at(start),
                        args={"silence": s.model_dump(mode="json")})


def restarted(engine: Engine) -> Engine:
    fresh = Engine(CTX)
    for key in list(engine.keys()):
        fresh.load(key, engine.encoded(key))
    fresh.load(NOISE_KEY, engine.noise.to_bytes())
    return fresh


def test_a_silence_command_mutes_at_once_survives_a_restart_and_lifts_when_expired() -> None:
    engine = Engine(CTX)
    batch = engine.apply([silence(0, 60)], at(0))
    assert NOISE_KEY in batch.encoded  # stored beside the groups, in the same commit
    assert run(engine, [(1, [fire(start=1)]), (20, [])]) == []
    assert batch.quieted == {} and engine.apply([], at(21)).quieted == {}
    engine = restarted(engine)
    assert [s.id for s in engine.silences] == ["s-1"]
    assert run(engine, [(30, [])]) == []
    # Expired early (an edit that ends it now): the alert notifies in the same apply.
    out = run(engine, [(40, [silence(0, 40)])])
    assert out[:1] == ["40 trigger slack"]


def test_silencing_counts_each_alert_once_by_reason() -> None:
    engine = Engine(CTX)
    engine.apply([silence(0, 60)], at(0))
    batch = engine.apply([fire(start=1), fire(fp="b", start=1)], at(1))
    assert batch.quieted == {"silenced": 2}
    assert engine.apply([fire(start=1)], at(2)).quieted == {}


def test_an_inhibitor_firing_anywhere_keeps_its_targets_quiet_until_it_resolves() -> None:
    rule = InhibitRule.model_validate({"source_matchers": ['alertname="ClusterDown"'],
                                       "target_matchers": ['alertname="HighErrorRate"']})
    engine = Engine(CTX.with_(quiet=Quiet([InhibitMuter([rule])])))

    def source(firing: bool, minute: float) -> CommandEvent:
        args: dict[str, Any] = {"key": "am:cd", "labels": {"alertname": "ClusterDown"},
                                "firing": firing}
        return CommandEvent(command=INHIBIT_SOURCE, group_key=NOISE_KEY, actor="alertmanager",
                            at=at(minute), args=args)

    assert run(engine, [(0, [source(True, 0), fire()]), (5, [])]) == []
    state = engine.get(KEY)
    assert state is not None and state.alerts["alertmanager:a"].muted == (
        "inhibited:ClusterDown")
    out = run(engine, [(6, [source(False, 6)])])
    assert out[:1] == ["6 trigger slack"]



def _context(extra: dict[str, Any]) -> Any:
    base = {"receivers": [{"name": "slack", "type": "log"}], "default_receivers": ["slack"]}
    return engine_context(parse_config(yaml.safe_dump({**base, **extra})))


def test_a_sev3_alert_at_three_in_the_morning_waits_for_nine_in_the_teams_time_zone() -> None:
    ctx = _context({"business_hours": {
        "calendars": [{"name": "berlin", "time_zone": "Europe/Berlin",
                       "hours": [{"days": ["mon", "tue", "wed", "thu", "fri"],
                                  "start": "09:00", "end": "17:00"}]}],
        "teams": {"payments": "berlin"}}})
    engine = Engine(ctx)
    three = datetime(2026, 3, 3, 2, 0, tzinfo=UTC)  # Tuesday 03:00 in Berlin (CET)
    alert = fire(Severity.SEV3).alert.replace(team="payments", starts_at=three,
                                              received_at=three)
    batch = engine.apply([AlertEvent(alert=alert)], three)
    assert batch.notifications == [] and batch.quieted == {"deferred": 1}
    eight = datetime(2026, 3, 3, 7, 59, tzinfo=UTC)
    assert engine.tick(eight).notifications == []
    nine = engine.next_deadline()
    assert nine == datetime(2026, 3, 3, 8, 0, tzinfo=UTC)  # 09:00 CET
    sent = engine.tick(nine).notifications
    assert [(n.kind.value, n.receiver) for n in sent] == [("trigger", "slack")]
    # A SEV1 at 03:00 pages at once: paging responses never wait.
    loud = fire(Severity.SEV1, fp="x").alert.replace(team="payments", starts_at=three,
                                                       received_at=three)
    assert Engine(ctx).apply([AlertEvent(alert=loud)], three).notifications


def test_a_maintenance_window_keeps_its_alerts_quiet_then_they_notify_if_still_firing() -> None:
    ctx = _context({"maintenance_windows": [
        {"name": "db-upgrade", "matchers": ['service="checkout"'], "time_zone": "UTC",
         "start": "2026-03-02T09:00:00Z", "end": "2026-03-02T10:00:00Z"}]})
    engine = Engine(ctx)
    t = datetime(2026, 3, 2, 9, 5, tzinfo=UTC)
    alert = fire(Severity.SEV2).alert.replace(starts_at=t, received_at=t)
    batch = engine.apply([AlertEvent(alert=alert)], t)
    assert batch.notifications == [] and batch.quieted == {"maintenance": 1}
    end = engine.next_deadline()
    assert end == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    assert [n.kind.value for n in engine.tick(end).notifications] == ["trigger"]


def named(name: str, fp: str, minute: float = 0) -> AlertEvent:
    """A SEV3 alert (30 s group_wait) of its own group, received at `minute`."""
    a = fire(sev=Severity.SEV3, fp=fp).alert
    return AlertEvent(alert=a.replace(name=name, labels={"alertname": name},
                                      group_key=f"{name}|checkout", received_at=at(minute)))


def test_a_new_silence_mutes_the_groups_it_matches_and_only_those() -> None:
    """Groups are found by the label value the silence pins (an index kept as groups change),
    not by decoding every group; one that fired after the index was built is found too."""
    engine = Engine(CTX)
    engine.apply([named("DiskFull", "d"), named("CpuHot", "c")], at(0))
    # The first silence builds the index of alertname values; its group is muted at once.
    first = engine.apply([silence(0.1, 60, '{alertname="DiskFull"}', sid="s-1")], at(0.1))
    assert first.quieted == {"silenced": 1}
    assert run(engine, [(1, [])]) == ["1 trigger slack"]  # CpuHot's
    engine.apply([named("MemLow", "m", 1.1)], at(1.1))  # a group after the index
    second = engine.apply([silence(1.2, 60, '{alertname="MemLow"}', sid="s-2")], at(1.2))
    assert second.quieted == {"silenced": 1}
    assert run(engine, [(2, [])]) == []
    state = engine.get("MemLow|checkout")
    assert state is not None and state.alerts["alertmanager:m"].muted == "silenced:s-2"
    # Expired early: the group it muted looks again and notifies at once.
    out = run(engine, [(3, [silence(1.2, 3, '{alertname="MemLow"}', sid="s-2")])])
    assert out == ["3 trigger slack"]


def test_a_silence_of_regexes_only_still_reaches_every_group() -> None:
    engine = Engine(CTX)
    engine.apply([named("DiskFull", "d"), named("CpuHot", "c")], at(0))
    batch = engine.apply([silence(0.1, 60, '{alertname=~"Disk.*|Cpu.*"}')], at(0.1))
    assert batch.quieted == {"silenced": 2}
    assert run(engine, [(1, [])]) == []
    state = engine.get("CpuHot|checkout")
    assert state is not None and state.alerts["alertmanager:c"].muted == "silenced:s-1"


def test_the_silence_index_follows_a_restart() -> None:
    engine = Engine(CTX)
    engine.apply([named("DiskFull", "d")], at(0))
    engine.apply([silence(0.1, 60, '{alertname="CpuHot"}', sid="s-1")], at(0.1))
    engine = restarted(engine)
    assert engine.apply([named("CpuHot", "c", 0.2)], at(0.2)).quieted == {"silenced": 1}
    batch = engine.apply([silence(0.3, 60, '{alertname="DiskFull"}', sid="s-2")], at(0.3))
    assert batch.quieted == {"silenced": 1}  # DiskFull, restored before the index existed
    assert run(engine, [(1, [])]) == []
