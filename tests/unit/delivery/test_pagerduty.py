"""PagerDuty Events API v2: the exact events sent for trigger, update, acknowledge, resolve."""

from __future__ import annotations

import pytest
from aiohttp import ClientSession

from router.delivery.receivers.pagerduty import PagerDutyConfig, PagerDutySink, build
from router.delivery.records import MemoryDeliveryStore
from router.delivery.sink import SinkContext
from router.model import NotificationKind, Severity
from tests.fakes.pagerduty import FakePagerDuty
from tests.unit.delivery.conftest import Serve, notification

KEY = "R0UTINGKEY0123456789abcdef012345"


async def pd_sink(
    serve: Serve, session: ClientSession
) -> tuple[FakePagerDuty, PagerDutySink]:
    fake = FakePagerDuty(KEY)
    url = await serve(fake.app())
    config = PagerDutyConfig(name="pd", routing_key=KEY, url=f"{url}/v2/enqueue",
                             client_url="https://router.example.net")
    return fake, build(config, SinkContext(session=session, store=MemoryDeliveryStore()))


async def test_trigger_event_is_exactly_what_pagerduty_documents(
    serve: Serve, session: ClientSession
) -> None:
    fake, sink = await pd_sink(serve, session)
    result = await sink.send(notification(receiver="pd"))
    assert result.ok and result.status == 202
    (req,) = fake.requests
    assert (req.method, req.path) == ("POST", "/v2/enqueue")
    assert req.headers["Content-Type"] == "application/json"
    event = req.json
    message = event["payload"]["custom_details"].pop("message")
    assert message.startswith("[SEV2] DiskFull on db-1\nStatus: Investigating")
    assert event == {
        "routing_key": KEY,
        "event_action": "trigger",
        "dedup_key": "inc:g1",
        "payload": {
            "summary": "[SEV2] DiskFull on db-1",
            "source": "db-1",
            "severity": "error",
            "timestamp": "2026-11-27T10:00:00+00:00",
            "component": "postgres",
            "group": "storage",
            "class": "DiskFull",
            "custom_details": {
                "incident_id": "INC-g1",
                "group_key": "g1",
                "kind": "trigger",
                "alerts": [{
                    "name": "DiskFull", "status": "firing",
                    "labels": {"alertname": "DiskFull", "instance": "db-1"},
                    "annotations": {"summary": "Disk almost full on db-1"}, "value": None,
                }],
            },
        },
        "client": "incident-router",
        "client_url": "https://router.example.net",
        "links": [
            {"href": "https://runbooks.example.net/disk", "text": "Runbook"},
            {"href": "https://grafana.example.net/d/disk", "text": "Dashboard"},
            {"href": "https://prom.example.net/graph?g0.expr=disk", "text": "Source"},
        ],
    }


@pytest.mark.parametrize(
    ("kind", "action"),
    [
        (NotificationKind.UPDATE, "trigger"),
        (NotificationKind.REPEAT, "trigger"),
        (NotificationKind.ESCALATE, "trigger"),
    ],
)
async def test_updates_retrigger_the_same_dedup_key(
    serve: Serve, session: ClientSession, kind: NotificationKind, action: str
) -> None:
    fake, sink = await pd_sink(serve, session)
    assert (await sink.send(notification(kind, receiver="pd"))).ok
    event = fake.requests[0].json
    assert (event["event_action"], event["dedup_key"]) == (action, "inc:g1")


@pytest.mark.parametrize(
    ("kind", "action"),
    [(NotificationKind.ACKNOWLEDGE, "acknowledge"), (NotificationKind.RESOLVE, "resolve")],
)
async def test_acknowledge_and_resolve_carry_only_key_action_and_dedup_key(
    serve: Serve, session: ClientSession, kind: NotificationKind, action: str
) -> None:
    fake, sink = await pd_sink(serve, session)
    assert (await sink.send(notification(kind, receiver="pd"))).ok
    assert fake.requests[0].json == {"routing_key": KEY, "event_action": action,
                                     "dedup_key": "inc:g1"}


@pytest.mark.parametrize(
    ("severity", "expected"),
    [(Severity.SEV1, "critical"), (Severity.SEV2, "error"), (Severity.SEV3, "warning"),
     (Severity.SEV4, "info")],
)
async def test_severity_mapping(
    serve: Serve, session: ClientSession, severity: Severity, expected: str
) -> None:
    fake, sink = await pd_sink(serve, session)
    await sink.send(notification(receiver="pd", severity=severity))
    assert fake.requests[0].json["payload"]["severity"] == expected


async def test_long_title_is_cut_to_pagerdutys_summary_limit(
    serve: Serve, session: ClientSession
) -> None:
    fake, sink = await pd_sink(serve, session)
    result = await sink.send(notification(receiver="pd", title="x" * 5000))
    assert result.ok
    assert len(fake.requests[0].json["payload"]["summary"]) == 1024


@pytest.mark.parametrize(
    ("status", "headers", "reason", "retryable", "retry_after"),
    [
        (429, {"Retry-After": "3"}, "rate_limited", True, 3.0),
        (500, {}, "server_error", True, None),
        (503, {}, "server_error", True, None),
        (400, {}, "client_error", False, None),
        (403, {}, "client_error", False, None),
    ],
)
async def test_answers_are_classified(
    serve: Serve, session: ClientSession, status: int, headers: dict[str, str],
    reason: str, retryable: bool, retry_after: float | None,
) -> None:
    fake, sink = await pd_sink(serve, session)
    fake.fail(status, headers=headers, body='{"status":"nope"}')
    result = await sink.send(notification(receiver="pd"))
    assert (result.ok, result.reason, result.retryable, result.retry_after) == (
        False, reason, retryable, retry_after)


async def test_each_escalation_page_is_its_own_pagerduty_alert_naming_its_targets(
    serve: Serve, session: ClientSession
) -> None:
    fake, sink = await pd_sink(serve, session)
    for level, who in ((1, ["alice"]), (2, ["bob", "carol"])):
        page = notification(NotificationKind.PAGE, receiver="pd", n=level,
                            details={"targets": who, "level": level})
        page = page.model_copy(update={"dedup_key": f"inc:g1:page-{level}"})
        assert (await sink.send(page)).ok
    first, second = (e for e in fake.accepted)
    assert [e["dedup_key"] for e in fake.accepted] == ["inc:g1:page-1", "inc:g1:page-2"]
    assert {e["event_action"] for e in fake.accepted} == {"trigger"}
    assert first["payload"]["summary"] == "[SEV2] DiskFull on db-1 (level 1: alice)"
    details = second["payload"]["custom_details"]
    assert (details["level"], details["targets"]) == (2, ["bob", "carol"])


async def test_postmortem_reminder_is_not_sent_to_pagerduty(
    serve: Serve, session: ClientSession
) -> None:
    fake, sink = await pd_sink(serve, session)
    assert (await sink.send(notification(NotificationKind.REMINDER, receiver="pd"))).ok
    assert fake.requests == []
