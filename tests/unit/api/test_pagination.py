"""GET /api/v1/incidents and /api/v1/alerts page with `limit` and an opaque `cursor`, and say
the total: walking the cursor returns every row exactly once (issue 14: the list silently
stopped at 1,000 of 1,314 incidents)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from router.api.keys import BACKEND
from router.model import Alert, AlertEvent, CommandEvent, Severity, Status
from tests.conftest import RouterClient

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def declare(n: int, at: datetime = T0) -> CommandEvent:
    return CommandEvent(command="declare", group_key=f"manual:{n}", actor="api", at=at,
                        args={"title": f"Incident {n}", "severity": "SEV3"})


def fire(n: int) -> AlertEvent:
    # Every tenth alert shares its timestamp with others: the id breaks the tie.
    at = T0 + timedelta(seconds=n - n % 10)
    return AlertEvent(alert=Alert(
        source="generic", fingerprint=f"fp{n}", status=Status.FIRING, name=f"Alert {n}",
        starts_at=at, received_at=at, severity=Severity.SEV4, group_key=f"g{n}",
    ))


async def append(client: TestClient, events: list[Any]) -> None:
    backend = client.app[BACKEND]
    for i in range(0, len(events), 500):
        await backend.log.append(events[i:i + 500])
    await backend.engine.drained()


async def get(client: TestClient, path: str, **params: str) -> dict[str, Any]:
    resp = await client.get(path, params=params)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def test_walking_the_incident_cursor_returns_all_1314_exactly_once(
        router_client: RouterClient) -> None:
    client = await router_client()
    # All opened in the same second: the order within it comes from the id alone.
    await append(client, [declare(n) for n in range(1314)])

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "100"} | ({"cursor": cursor} if cursor else {})
        page = await get(client, "/api/v1/incidents", **params)
        assert page["total"] == (1314 if pages < 7 else 1319)
        assert len(page["items"]) <= 100
        seen += [i["id"] for i in page["items"]]
        pages += 1
        if pages == 7:
            # Incidents opened during the walk come before the cursor: not in later pages.
            await append(client, [declare(n, T0 + timedelta(hours=1)) for n in range(2000, 2005)])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert pages == 14
    assert len(seen) == 1314 and Counter(seen).most_common(1)[0][1] == 1
    assert (await get(client, "/api/v1/incidents", limit="1"))["total"] == 1319


async def test_incident_pages_keep_the_filters(router_client: RouterClient) -> None:
    client = await router_client()
    # Declared minutes ago (the router's clock is the real one): months-old declarations
    # would be decided at their time and long since closed as idle by now.
    recent = datetime.now(UTC) - timedelta(minutes=10)
    await append(client, [declare(n, recent + timedelta(minutes=n)) for n in range(5)])
    page = await get(client, "/api/v1/incidents", limit="2", group_key="manual:3")
    assert [i["group_key"] for i in page["items"]] == ["manual:3"]
    assert page["total"] == 1 and page["next_cursor"] is None

    first = await get(client, "/api/v1/incidents", limit="2", status="open")
    second = await get(client, "/api/v1/incidents", limit="2", status="open",
                       cursor=first["next_cursor"])
    titles = [i["title"] for i in first["items"] + second["items"]]
    assert titles == ["Incident 4", "Incident 3", "Incident 2", "Incident 1"]  # newest first
    assert first["total"] == second["total"] == 5


async def test_alert_pages_default_to_100_and_walk_every_alert_once(
        router_client: RouterClient) -> None:
    client = await router_client()
    await append(client, [fire(n) for n in range(250)])

    first = await get(client, "/api/v1/alerts")
    assert len(first["items"]) == 100 and first["total"] == 250
    assert first["items"][0]["fingerprint"] == "fp249"  # latest first
    # The shape existing clients read stays for now.
    assert first["status"] == "success" and first["data"] == first["items"]

    seen = [a["fingerprint"] for a in first["items"]]
    cursor = first["next_cursor"]
    while cursor is not None:
        page = await get(client, "/api/v1/alerts", cursor=cursor)
        seen += [a["fingerprint"] for a in page["items"]]
        cursor = page["next_cursor"]
    assert sorted(seen) == sorted(f"fp{n}" for n in range(250))


async def test_alert_pages_keep_the_filters(router_client: RouterClient) -> None:
    client = await router_client()
    await append(client, [fire(n) for n in range(3)])
    page = await get(client, "/api/v1/alerts", source="cloudwatch")
    assert page == {"items": [], "next_cursor": None, "total": 0, "status": "success",
                    "data": []}
    page = await get(client, "/api/v1/alerts", status="firing", limit="2")
    assert page["total"] == 3 and len(page["items"]) == 2 and page["next_cursor"]


@pytest.mark.parametrize("path", ["/api/v1/incidents", "/api/v1/alerts"])
@pytest.mark.parametrize(("query", "message"), [
    ({"limit": "0"}, "limit must be an integer from 1 to 1000"),
    ({"limit": "1001"}, "limit must be an integer from 1 to 1000"),
    ({"limit": "ten"}, "limit must be an integer from 1 to 1000"),
    ({"cursor": "not-a-cursor"}, "cursor is not one this list handed out"),
    ({"cursor": "WyJvdGhlciIsMSwiYSJd"}, "cursor is not one this list handed out"),
])
async def test_bad_limit_or_cursor_is_a_400_saying_which(
        router_client: RouterClient, path: str, query: dict[str, str], message: str) -> None:
    client = await router_client()
    resp = await client.get(path, params=query)
    assert resp.status == 400
    assert (await resp.json())["error"] == message


async def test_one_lists_cursor_is_refused_by_the_other(router_client: RouterClient) -> None:
    client = await router_client()
    await append(client, [declare(n) for n in range(3)] + [fire(n) for n in range(3)])
    cursor = (await get(client, "/api/v1/incidents", limit="1"))["next_cursor"]
    resp = await client.get("/api/v1/alerts", params={"cursor": cursor})
    assert resp.status == 400


async def test_database_size_and_rows_are_on_metrics(router_client: RouterClient) -> None:
    client = await router_client()
    text = await (await client.get("/metrics")).text()
    samples = {(s.name, tuple(s.labels.items())): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples[("incident_router_db_size_bytes", ())] > 0
    assert samples[("incident_router_db_rows", (("table", "log"),))] == 0
    assert ("incident_router_db_pruned_rows_total", (("table", "dead_letters"),)) in samples
