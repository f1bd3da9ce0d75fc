"""Silences and inhibitors reach the engine as noise commands on the log: they mute what they
match at once, survive a restart from the stored bytes, and lift when expired or resolved."""

from __future__ import annotations

from typing import Any

from router.engine import Engine
from router.engine.noise import INHIBIT_SOURCE, NOISE_KEY, SILENCE
from router.engine.quiet import Quiet
from router.model import CommandEvent
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

