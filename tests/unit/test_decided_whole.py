"""One source request's alerts of one group are one log record (`AlertsEvent`), so the engine
decides them together wherever a fetch of the log ends (issue 13)."""

from __future__ import annotations

import json

from pydantic import TypeAdapter

from router.api.keys import BACKEND
from router.engine import Engine, EngineContext
from router.model import AlertsEvent, CommandEvent, Event, decided_whole, event_key
from tests.conftest import RouterClient, read_testdata
from tests.unit.engine.test_incidents import at, fire


def test_alerts_sharing_a_group_are_joined_in_the_place_of_the_first() -> None:
    a1, b1, a2 = fire(fp="1"), fire(fp="2", service="billing"), fire(fp="3")
    cmd = CommandEvent(command="ack", group_key="x", actor="api", at=at(0))
    out = decided_whole([a1, cmd, b1, a2])
    assert [type(e).__name__ for e in out] == ["AlertsEvent", "CommandEvent", "AlertEvent"]
    joined = out[0]
    assert isinstance(joined, AlertsEvent)
    assert [a.fingerprint for a in joined.alerts] == ["1", "3"]
    assert event_key(joined) == event_key(a1)
    assert out[2] is b1
    single = [fire(fp="1"), fire(fp="2", service="billing")]
    assert decided_whole(single) == single


def test_the_record_round_trips_through_the_log_json() -> None:
    joined = decided_whole([fire(fp="1"), fire(fp="2")])[0]
    adapter: TypeAdapter[object] = TypeAdapter(Event)
    assert adapter.validate_json(joined.model_dump_json()) == joined


def test_a_burst_of_one_group_in_one_record_gives_one_trigger_listing_all() -> None:
    engine = Engine(EngineContext())
    alerts = tuple(fire(fp=str(i)).alert for i in range(10))
    batch = engine.apply([AlertsEvent.of(alerts)], at(0))
    (trigger,) = [n for n in batch.notifications if n.kind.value == "trigger"]
    assert sorted(a.fingerprint for a in trigger.alerts) == sorted(str(i) for i in range(10))



async def test_intake_writes_one_record_per_group_of_a_request(
        router_client: RouterClient) -> None:
    client = await router_client()
    payload = json.loads(read_testdata("alertmanager", "firing.json"))  # two DiskFull alerts
    resp = await client.post("/webhooks/alertmanager", json=payload)
    assert resp.status == 200
    assert (await resp.json())["accepted"] == 2
    backend = client.app[BACKEND]
    rows = await backend.db.read(lambda c: c.execute("SELECT kind, body FROM log").fetchall())
    assert [(kind, len(json.loads(body)["alerts"])) for kind, body in rows] == [("alerts", 2)]
    listed = (await (await client.get("/api/v1/alerts")).json())["items"]
    assert len(listed) == 2  # the read side still has each alert
