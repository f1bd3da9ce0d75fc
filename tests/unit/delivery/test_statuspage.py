"""Statuspage: one public incident per dedup key, created, updated, resolved."""

from __future__ import annotations

import pytest
from aiohttp import ClientSession

from router.delivery.receivers.statuspage import StatuspageConfig, StatuspageSink, build
from router.delivery.records import MemoryDeliveryStore
from router.delivery.sink import SinkContext
from router.model import NotificationKind, Severity
from tests.fakes.statuspage import FakeStatuspage
from tests.unit.delivery.conftest import Serve, notification

KEY = "sp-oauth-key-9a8b7c6d5e4f"
PAGE = "pg1234"


async def page(serve: Serve, session: ClientSession,
               store: MemoryDeliveryStore | None = None
               ) -> tuple[FakeStatuspage, StatuspageSink, MemoryDeliveryStore]:
    fake = FakeStatuspage(KEY, PAGE)
    url = await serve(fake.app())
    store = store or MemoryDeliveryStore()
    config = StatuspageConfig(name="sp", page_id=PAGE, api_key=KEY, api_url=f"{url}/v1",
                              component_ids=["cmp1"])
    return fake, build(config, SinkContext(session=session, store=store)), store


async def test_trigger_update_resolve(serve: Serve, session: ClientSession) -> None:
    fake, sink, store = await page(serve, session)
    assert (await sink.send(notification(receiver="sp"))).ok
    assert (await sink.send(notification(NotificationKind.UPDATE, receiver="sp",
                                         details={"status": "identified"}))).ok
    assert (await sink.send(notification(NotificationKind.RESOLVE, receiver="sp"))).ok
    base = f"/v1/pages/{PAGE}"
    assert [(r.method, r.path) for r in fake.requests] == [
        ("GET", f"{base}/incidents/unresolved"),
        ("POST", f"{base}/incidents"),
        ("PATCH", f"{base}/incidents/{next(iter(fake.incidents))}"),
        ("PATCH", f"{base}/incidents/{next(iter(fake.incidents))}"),
    ]
    assert all(r.headers["Authorization"] == f"OAuth {KEY}" for r in fake.requests)
    create = fake.requests[1].json["incident"]
    body = create.pop("body")
    assert body.startswith("[SEV2] DiskFull on db-1\nStatus: Investigating")
    assert create == {
        "name": "DiskFull on db-1", "status": "investigating", "impact_override": "major",
        "component_ids": ["cmp1"], "components": {"cmp1": "partial_outage"},
        "deliver_notifications": True, "metadata": {"router": {"dedup_key": "inc:g1"}},
    }
    update = fake.requests[2].json["incident"]
    assert (update["status"], update["components"]) == ("identified", {"cmp1": "partial_outage"})
    resolve = fake.requests[3].json["incident"]
    assert (resolve["status"], resolve["components"]) == ("resolved", {"cmp1": "operational"})
    assert "Post-mortem" in resolve["body"]
    (incident,) = fake.incidents.values()
    assert incident["status"] == "resolved" and len(incident["incident_updates"]) == 3
    assert fake.components == {"cmp1": "operational"}
    assert await store.get_ref("sp", "statuspage-incident:inc:g1") == {"id": incident["id"]}


async def test_after_a_crash_the_open_incident_is_found_not_duplicated(
    serve: Serve, session: ClientSession
) -> None:
    fake, sink, _ = await page(serve, session)
    await sink.send(notification(receiver="sp"))
    # A new process with an empty store (the id was never persisted) redelivers.
    restarted = build(StatuspageConfig(name="sp", page_id=PAGE, api_key=KEY,
                                       api_url=sink._base.split("/pages")[0]),
                      SinkContext(session=session, store=MemoryDeliveryStore()))
    assert (await restarted.send(notification(receiver="sp"))).ok
    assert (await restarted.send(notification(NotificationKind.RESOLVE, receiver="sp"))).ok
    assert len(fake.incidents) == 1
    assert next(iter(fake.incidents.values()))["status"] == "resolved"


@pytest.mark.parametrize("kind", [NotificationKind.ACKNOWLEDGE, NotificationKind.REPEAT,
                                  NotificationKind.SLA_BREACH, NotificationKind.REMINDER])
async def test_internal_chatter_is_not_published(
    serve: Serve, session: ClientSession, kind: NotificationKind
) -> None:
    fake, sink, _ = await page(serve, session)
    assert (await sink.send(notification(kind, receiver="sp"))).ok
    assert fake.requests == []


@pytest.mark.parametrize("status", [420, 429])
async def test_420_and_429_are_rate_limits(
    serve: Serve, session: ClientSession, status: int
) -> None:
    fake, sink, _ = await page(serve, session)
    fake.fail(status, headers={"Retry-After": "1"})
    result = await sink.send(notification(receiver="sp"))
    assert (result.reason, result.retryable, result.retry_after) == ("rate_limited", True, 1.0)


@pytest.mark.parametrize(("severity", "impact", "component"), [
    (Severity.SEV1, "critical", "major_outage"), (Severity.SEV3, "minor", "degraded_performance"),
])
async def test_severity_sets_impact_and_component_status(
    serve: Serve, session: ClientSession, severity: Severity, impact: str, component: str
) -> None:
    fake, sink, _ = await page(serve, session)
    await sink.send(notification(receiver="sp", severity=severity))
    create = fake.requests[1].json["incident"]
    assert (create["impact_override"], create["components"]) == (impact, {"cmp1": component})


async def test_components_of_the_incidents_service_win_over_the_receivers(
    serve: Serve, session: ClientSession
) -> None:
    fake, sink, _ = await page(serve, session)
    assert (await sink.send(notification(receiver="sp", severity=Severity.SEV1,
                                         details={"component_ids": ["cmp-checkout"]}))).ok
    create = fake.requests[1].json["incident"]
    assert create["component_ids"] == ["cmp-checkout"]
    assert fake.components == {"cmp-checkout": "major_outage"}
