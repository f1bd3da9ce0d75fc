"""Opsgenie Alert API v2 and JSM Operations: create / acknowledge / note / close by alias."""

from __future__ import annotations

import pytest
from aiohttp import ClientSession

from router.delivery.receivers.alertapi import AlertApiSink
from router.delivery.receivers.jsm import JsmConfig
from router.delivery.receivers.jsm import build as build_jsm
from router.delivery.receivers.opsgenie import OpsgenieConfig
from router.delivery.receivers.opsgenie import build as build_opsgenie
from router.delivery.records import MemoryDeliveryStore
from router.delivery.sink import SinkContext
from router.model import NotificationKind, Severity
from tests.fakes.alertapi import FakeAlertApi
from tests.unit.delivery.conftest import Serve, notification

KEY = "genie-0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
JSM_PREFIX = "/jsm/ops/integration/v2/alerts"


async def sink_for(
    flavour: str, serve: Serve, session: ClientSession
) -> tuple[FakeAlertApi, AlertApiSink]:
    ctx = SinkContext(session=session, store=MemoryDeliveryStore())
    if flavour == "opsgenie":
        fake = FakeAlertApi(KEY)
        url = await serve(fake.app())
        return fake, build_opsgenie(OpsgenieConfig(name="og", api_key=KEY, api_url=url), ctx)
    fake = FakeAlertApi(KEY, prefix=JSM_PREFIX)
    url = await serve(fake.app())
    return fake, build_jsm(JsmConfig(name="jsm", api_key=KEY, api_url=url), ctx)


def test_default_hosts() -> None:
    assert OpsgenieConfig(name="a", api_key=KEY).alerts_url == "https://api.opsgenie.com/v2/alerts"
    assert (OpsgenieConfig(name="a", api_key=KEY, region="eu").alerts_url
            == "https://api.eu.opsgenie.com/v2/alerts")
    assert (JsmConfig(name="j", api_key=KEY).alerts_url
            == "https://api.atlassian.com/jsm/ops/integration/v2/alerts")


@pytest.mark.parametrize(("flavour", "prefix"), [("opsgenie", "/v2/alerts"),
                                                 ("jsm", JSM_PREFIX)])
async def test_create_request(
    serve: Serve, session: ClientSession, flavour: str, prefix: str
) -> None:
    fake, sink = await sink_for(flavour, serve, session)
    assert (await sink.send(notification(group="db/1 a"))).ok
    (req,) = fake.requests
    assert (req.method, req.path) == ("POST", prefix)
    assert req.headers["Authorization"] == f"GenieKey {KEY}"
    body = req.json
    description = body.pop("description")
    assert description.startswith("[SEV2] DiskFull on db-1\nStatus: Investigating")
    assert body == {
        "message": "[SEV2] DiskFull on db-1",
        "alias": "inc:db/1 a",
        "tags": ["SEV2", "storage", "postgres"],
        "details": {
            "severity": "SEV2", "incident_id": "INC-db/1 a", "group_key": "db/1 a",
            "runbook": "https://runbooks.example.net/disk",
            "dashboard": "https://grafana.example.net/d/disk",
            "source_url": "https://prom.example.net/graph?g0.expr=disk",
            "alert": "DiskFull", "alerts": "1",
            "label.alertname": "DiskFull", "label.instance": "db-1",
        },
        "source": "incident-router",
        "priority": "P2",
        "entity": "postgres",
    }


@pytest.mark.parametrize("flavour", ["opsgenie", "jsm"])
@pytest.mark.parametrize(
    ("kind", "action"),
    [(NotificationKind.ACKNOWLEDGE, "acknowledge"), (NotificationKind.UPDATE, "notes"),
     (NotificationKind.RESOLVE, "close")],
)
async def test_follow_ups_address_the_alert_by_url_encoded_alias(
    serve: Serve, session: ClientSession, flavour: str, kind: NotificationKind,
    action: str,
) -> None:
    fake, sink = await sink_for(flavour, serve, session)
    await sink.send(notification(group="db/1 a"))
    assert (await sink.send(notification(kind, group="db/1 a",
                                         details={"actor": "alice"}))).ok
    req = fake.requests[1]
    prefix = "/v2/alerts" if flavour == "opsgenie" else JSM_PREFIX
    assert req.path == f"{prefix}/inc:db/1 a/{action}"  # aiohttp shows it decoded
    assert req.query == {"identifierType": "alias"}
    assert req.raw_path == f"{prefix}/inc:db%2F1%20a/{action}?identifierType=alias"
    body = req.json
    assert body["source"] == "incident-router"
    assert body["note"].startswith("[SEV2]")
    assert ("user" in body) == (action != "notes")
    expected_status = {"acknowledge": "acked", "notes": "open", "close": "closed"}[action]
    assert fake.alerts["inc:db/1 a"]["status"] == expected_status


@pytest.mark.parametrize(
    ("severity", "priority"),
    [(Severity.SEV1, "P1"), (Severity.SEV2, "P2"), (Severity.SEV3, "P3"), (Severity.SEV4, "P4")],
)
async def test_priority_mapping(
    serve: Serve, session: ClientSession, severity: Severity, priority: str
) -> None:
    fake, sink = await sink_for("opsgenie", serve, session)
    await sink.send(notification(severity=severity))
    assert fake.requests[0].json["priority"] == priority


async def test_priorities_and_responders_are_configurable(
    serve: Serve, session: ClientSession
) -> None:
    fake = FakeAlertApi(KEY)
    url = await serve(fake.app())
    config = OpsgenieConfig.model_validate({
        "name": "og", "api_key": KEY, "api_url": url, "priorities": {"SEV4": "P5"},
        "responders": [{"type": "team", "name": "storage"}],
    })
    sink = build_opsgenie(config, SinkContext(session=session, store=MemoryDeliveryStore()))
    await sink.send(notification(severity=Severity.SEV4))
    body = fake.requests[0].json
    assert body["priority"] == "P5"
    assert body["responders"] == [{"type": "team", "name": "storage"}]


async def test_field_limits_are_respected(serve: Serve, session: ClientSession) -> None:
    fake, sink = await sink_for("opsgenie", serve, session)
    result = await sink.send(notification(title="t" * 500, details={"impact": "i" * 40_000}))
    assert result.ok
    body = fake.requests[0].json
    assert len(body["message"]) == 130
    assert len(body["description"]) == 15_000
    assert sum(len(k) + len(v) for k, v in body["details"].items()) <= 8000


async def test_a_redelivered_create_only_bumps_the_open_alert(
    serve: Serve, session: ClientSession
) -> None:
    fake, sink = await sink_for("opsgenie", serve, session)
    await sink.send(notification())
    await sink.send(notification())
    assert len(fake.alerts) == 1
    assert fake.alerts["inc:g1"]["count"] == 2


async def test_wrong_key_is_permanent(serve: Serve, session: ClientSession) -> None:
    fake = FakeAlertApi("another-key")
    url = await serve(fake.app())
    sink = build_opsgenie(OpsgenieConfig(name="og", api_key=KEY, api_url=url),
                          SinkContext(session=session, store=MemoryDeliveryStore()))
    result = await sink.send(notification())
    assert (result.ok, result.status, result.retryable) == (False, 401, False)
