"""SEV4 routed to the daily digest or to tickets instead of paging (issue 15): the digest's
schedule (time zones, DST), what it contains, that it survives a restart, and what
check-config says about the routes."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from router.backends.embedded.backend import EmbeddedBackend
from router.backends.factory import engine_context
from router.config import ConfigError, parse_config
from router.delivery.render import Renderer
from router.engine import Engine
from router.engine.digest import DIGEST_GROUP, DIGEST_KEY
from router.metrics import EngineMetrics
from router.model import Alert, AlertEvent, Notification, Severity, Status
from router.noise.digest import DigestConfig, next_send

MONDAY = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # 10:00 UTC, past the 09:00 digest


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("at", "zone", "after", "expected"),
    [
        ("09:00", "UTC", utc(2026, 3, 2, 3, 0), utc(2026, 3, 2, 9, 0)),  # later today
        ("09:00", "UTC", utc(2026, 3, 2, 9, 0), utc(2026, 3, 3, 9, 0)),  # strictly after
        ("09:00", "UTC", utc(2026, 3, 2, 10, 0), utc(2026, 3, 3, 9, 0)),  # tomorrow
        # Berlin: 09:00 CET is 08:00 UTC, 09:00 CEST (from 2026-03-29) is 07:00 UTC.
        ("09:00", "Europe/Berlin", utc(2026, 3, 28, 10, 0), utc(2026, 3, 29, 7, 0)),
        ("09:00", "Europe/Berlin", utc(2026, 3, 27, 10, 0), utc(2026, 3, 28, 8, 0)),
        # 02:30 does not happen on 2026-03-29 in Berlin: read as 03:30 CEST.
        ("02:30", "Europe/Berlin", utc(2026, 3, 28, 12, 0), utc(2026, 3, 29, 1, 30)),
        # New York falls back on 2026-11-01: 18:00 EST is 23:00 UTC (22:00 the day before).
        ("18:00", "America/New_York", utc(2026, 11, 1, 12, 0), utc(2026, 11, 1, 23, 0)),
        ("18:00", "America/New_York", utc(2026, 10, 31, 12, 0), utc(2026, 10, 31, 22, 0)),
        # Kolkata (UTC+05:30): the local day starts 18:30 UTC the day before.
        ("08:00", "Asia/Kolkata", utc(2026, 3, 2, 20, 0), utc(2026, 3, 3, 2, 30)),
    ],
)
def test_the_next_digest_time(at: str, zone: str, after: datetime, expected: datetime) -> None:
    cfg = DigestConfig.model_validate({"at": at, "time_zone": zone, "receivers": ["d"]})
    assert next_send(cfg, after) == expected


def config(**extra: Any) -> dict[str, Any]:
    return {
        "receivers": [
            {"name": "pager", "type": "pagerduty", "routing_key": "r" * 32},
            {"name": "digest-hook", "type": "webhook", "url": "https://digest.invalid/x"},
            {"name": "jsm", "type": "webhook", "url": "https://tickets.invalid/x"},
        ],
        "severities": {"SEV3": {"receivers": ["pager"]},
                       "SEV4": {"receivers": ["pager"], "route": "digest"}},
        "digest": {"receivers": ["digest-hook"], "at": "09:00", "time_zone": "UTC"},
        "tickets": {"receivers": ["jsm"]},
        **extra,
    }


def engine(cfg: dict[str, Any]) -> Engine:
    return Engine(engine_context(parse_config(yaml.safe_dump(cfg))))


def alert(name: str, sev: Severity = Severity.SEV4, minutes: float = 0,
          status: Status = Status.FIRING, fp: str | None = None) -> AlertEvent:
    t = MONDAY + timedelta(minutes=minutes)
    a = Alert(source="alertmanager", fingerprint=fp or name, status=status, name=name,
              starts_at=MONDAY, received_at=t, severity=sev, service="billing",
              ends_at=t if status is Status.RESOLVED else None)
    return AlertEvent(alert=a)


def step(e: Engine, minutes: float, *events: AlertEvent) -> list[Notification]:
    return e.apply(list(events), MONDAY + timedelta(minutes=minutes)).notifications


def test_sev4_does_not_page_and_goes_into_the_next_digest() -> None:
    e = engine(config())
    assert step(e, 0, alert("DiskSlowlyFilling"), alert("CertExpiresIn30d")) == []
    assert step(e, 5) == [] and step(e, 60) == []  # past group_wait: nothing is sent
    assert step(e, 120, alert("CertExpiresIn30d", minutes=120, status=Status.RESOLVED)) == []
    assert step(e, 130) == []
    assert e.digest.due == utc(2026, 3, 3, 9, 0).timestamp()
    (summary,) = step(e, 23 * 60)  # Tuesday 09:00
    assert (summary.receiver, summary.kind.value, summary.group_key) == (
        "digest-hook", "update", DIGEST_GROUP)
    assert summary.title == "Daily digest: 2 alert groups, 1 still firing"
    rows = {r["title"]: r for r in summary.details["digest"]}
    assert {k: (v["status"], v["alerts"]) for k, v in rows.items()} == {
        "DiskSlowlyFilling (billing)": ("firing", ["DiskSlowlyFilling"]),
        "CertExpiresIn30d (billing)": ("resolved", ["CertExpiresIn30d"]),
    }
    message = Renderer().render(summary)
    assert message.headline == summary.title
    assert "- [SEV4] DiskSlowlyFilling (billing): firing" in message.body
    # Emptied: nothing more until something new comes.
    assert e.digest.due is None
    assert step(e, 24 * 60) == []


def test_a_sev3_alert_still_pages() -> None:
    e = engine(config())
    out = step(e, 0, alert("QueueBacklog", Severity.SEV3)) + step(e, 1)
    assert [(n.kind.value, n.receiver) for n in out] == [("trigger", "pager")]


def test_the_digest_survives_a_restart_and_goes_out_when_it_is_back() -> None:
    e = engine(config())
    stored: dict[str, bytes | None] = {}
    for minutes, events in ((0, [alert("DiskSlowlyFilling")]), (5, [])):
        stored.update(e.apply(events, MONDAY + timedelta(minutes=minutes)).encoded)
    assert DIGEST_KEY in stored
    again = engine(config())
    for key, data in stored.items():
        again.load(key, data)
    assert again.next_deadline() == utc(2026, 3, 3, 9, 0)
    # Down over the digest time: it goes out at the first tick after.
    (summary,) = step(again, 25 * 60)
    assert [r["alerts"] for r in summary.details["digest"]] == [["DiskSlowlyFilling"]]


def test_route_ticket_sends_to_the_ticket_receivers_instead_of_paging() -> None:
    cfg = config()
    cfg["severities"]["SEV4"]["route"] = "ticket"
    e = engine(cfg)
    out = step(e, 0, alert("DiskSlowlyFilling")) + step(e, 5)
    assert [(n.kind.value, n.receiver) for n in out] == [("trigger", "jsm")]
    out = step(e, 10, alert("DiskSlowlyFilling", minutes=10, status=Status.RESOLVED))
    out += step(e, 30)
    assert [(n.kind.value, n.receiver) for n in out] == [("resolve", "jsm")]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"digest": {}}, "router.yaml: (top level): Value error, severities.SEV4.route: digest "
                         "needs digest.receivers (who gets the daily summary)"),
        ({"tickets": {}, "severities": {"SEV4": {"route": "ticket"}}},
         "router.yaml: (top level): Value error, severities.SEV4.route: ticket needs "
         "tickets.receivers (who files the tickets)"),
        ({"severities": {"SEV4": {"route": "email"}}},
         "router.yaml: severities.SEV4.route: Input should be 'page', 'digest' or 'ticket'"),
        ({"digest": {"receivers": ["d"], "at": 900}},
         "router.yaml: digest.at: Value error, write a time of day as a quoted string"),
        ({"digest": {"receivers": ["d"], "time_zone": "Mars/Olympus"}},
         "router.yaml: digest.time_zone: Value error, "),
    ],
)
def test_check_config_says_what_is_wrong_with_a_route(change: dict[str, Any],
                                                      expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(yaml.safe_dump({**config(), **change}))
    assert str(err.value).startswith(expected)


def test_an_unknown_digest_or_ticket_receiver_is_a_problem() -> None:
    cfg = config(digest={"receivers": ["digets"]}, tickets={"receivers": ["jsn"]})
    problems = parse_config(yaml.safe_dump(cfg)).receiver_problems()
    assert [p.split(" (known")[0] for p in problems] == [
        "router.yaml: digest.receivers: unknown receiver 'digets'",
        "router.yaml: tickets.receivers: unknown receiver 'jsn'"]


def test_the_digest_time_default() -> None:
    assert DigestConfig().at == time(9, 0)


async def test_the_digest_survives_a_restart_of_the_embedded_backend(tmp_path: Path) -> None:
    """The digest and its timer are in SQLite with the groups: a new process on the same
    database sends it at the digest time."""
    ctx = engine_context(parse_config(yaml.safe_dump(config())))
    now = {"t": MONDAY}
    first = EmbeddedBackend(tmp_path / "router.db", ctx, EngineMetrics(CollectorRegistry()))
    first.engine.clock = lambda: now["t"]
    await first.start()
    try:
        await first.log.append([alert("DiskSlowlyFilling")])
        await first.engine.drained()
        now["t"] = MONDAY + timedelta(minutes=5)
        await first.engine.drained()
    finally:
        await first.stop()
    second = EmbeddedBackend(tmp_path / "router.db", ctx, EngineMetrics(CollectorRegistry()))
    second.engine.clock = lambda: now["t"]
    now["t"] = utc(2026, 3, 3, 9, 0)
    await second.start()
    try:
        await second.engine.drained()
        rows = await second.db.read(
            lambda c: c.execute("SELECT body FROM outbox ORDER BY seq").fetchall())
        notes = [Notification.model_validate_json(r[0]) for r in rows]
        assert [(n.receiver, n.title) for n in notes] == [
            ("digest-hook", "Daily digest: 1 alert group, 1 still firing")]
    finally:
        await second.stop()


def test_engines_that_send_their_entries_through_the_log_make_one_digest() -> None:
    """Kafka: each partition's engine sends its entries as a command for the partition that
    owns the digest key (`Batch.commands`) and sends no digest of its own; that partition's
    engine collects them all and sends one summary at `digest.at`. A restored engine sends
    what it sent for that digest once more (a command lost between its commit and the
    append): received twice, an entry counts once."""
    ctx = engine_context(parse_config(yaml.safe_dump(config())))
    a, b = Engine(ctx, digest_via_log=True), Engine(ctx, digest_via_log=True)
    owner = Engine(ctx, digest_via_log=True)
    log = []
    for minutes, engine_, events in ((0, a, [alert("DiskSlowlyFilling")]),
                                     (0, b, [alert("CertExpiresIn30d")]), (5, a, []), (5, b, []),
                                     (60, a, [alert("DiskSlowlyFilling", minutes=60,
                                                    status=Status.RESOLVED)]), (61, a, [])):
        batch = engine_.apply(events, MONDAY + timedelta(minutes=minutes))
        assert batch.notifications == []
        log += batch.commands
    assert [c.group_key for c in log] == [DIGEST_KEY] * len(log)
    assert a.digest.due is None and b.digest.due is None  # no digest of their own
    again = Engine(ctx, digest_via_log=True)
    again.load(DIGEST_KEY, b.digest.to_bytes())  # b restored: its entry once more
    log += again.apply([], MONDAY + timedelta(minutes=62)).commands
    assert [list(c.args["entries"]) for c in log[-1:]] == [["CertExpiresIn30d|billing"]]
    assert again.apply([], MONDAY + timedelta(minutes=63)).commands == []
    stored = owner.apply(log, MONDAY + timedelta(minutes=62)).encoded
    assert DIGEST_KEY in stored
    assert owner.next_deadline() == utc(2026, 3, 3, 9, 0)
    (summary,) = step(owner, 23 * 60)
    rows = {r["title"]: (r["status"], r["first"][11:16]) for r in summary.details["digest"]}
    # (Each entry first seen at its trigger, after group_wait; the resolve kept it.)
    assert rows == {"DiskSlowlyFilling (billing)": ("resolved", "10:05"),
                    "CertExpiresIn30d (billing)": ("firing", "10:05")}
    assert step(owner, 24 * 60) == []
