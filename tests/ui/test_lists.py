"""The console's lists stay one bounded page however much there is: counts of everything that
matches, the newest alerts a page at a time (older ones behind a link), the most urgent open
incidents with "show more"."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from router.api.keys import BACKEND
from router.ui.pages import OPEN_SHOWN
from tests.conftest import RouterClient
from tests.ui.test_guard import TOKENS, declare, log_in

RULES = """
rules:
  - name: db-slow
    match: {labels: ['alertname="DbSlow"']}
    set: {severity: SEV2, team: db, service: orders}
  - name: web-slow
    match: {labels: ['alertname="WebSlow"']}
    set: {severity: SEV3, team: web, service: shop}
"""
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def am_alert(name: str, n: int, minute: int) -> dict[str, Any]:
    return {"status": "firing", "labels": {"alertname": name, "instance": f"{name}-{n}"},
            "annotations": {}, "fingerprint": f"{name}{n:04}",
            "startsAt": (T0 + timedelta(minutes=minute)).isoformat().replace("+00:00", "Z"),
            "endsAt": "0001-01-01T00:00:00Z"}


async def console(router_client: RouterClient, tmp_path: Path) -> TestClient:
    rules = tmp_path / "list-rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(RULES)
    client = await router_client({**TOKENS, "rules_dir": str(rules)})
    await log_in(client)
    return client


async def fire(client: TestClient, alerts: list[dict[str, Any]]) -> None:
    resp = await client.post("/webhooks/alertmanager", json={
        "version": "4", "status": "firing", "receiver": "r", "groupKey": "{}:{}",
        "alerts": alerts})
    assert resp.status == 200, await resp.text()
    await client.server.app[BACKEND].engine.drained()


def text(page: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", page)).split())


async def test_the_alert_list_counts_everything_and_pages_the_newest_first(
        router_client: RouterClient, tmp_path: Path) -> None:
    client = await console(router_client, tmp_path)
    # 70 DbSlow first, then 60 newer WebSlow: the first page is every WebSlow and 40 DbSlow.
    await fire(client, [am_alert("DbSlow", n, n) for n in range(70)])
    await fire(client, [am_alert("WebSlow", n, 100 + n) for n in range(60)])

    first = await (await client.get("/ui/alerts/rows")).text()
    assert "130 alerts (SEV2 70, SEV3 60), showing 100 newest" in text(first)
    assert first.count('<tr class="firing">') == 100
    assert "DbSlow|orders · 40 firing of 40 shown, 70 in the group" in text(first)
    older = re.search(r'href="([^"]+)" id="older"', first)
    assert older and 'id="newest"' not in first

    second = await (await client.get(unescape(older.group(1)))).text()
    assert "showing 30 older ones" in text(second)
    assert second.count('<tr class="firing">') == 30
    assert 'id="older"' not in second and 'id="newest"' in second
    # Every alert once, over the two pages: the 30 oldest DbSlow on the second.
    keys = re.findall(r'href="/ui/alerts/(alertmanager[^"]+)"', first + second)
    assert len(keys) == len(set(keys)) == 130
    assert second.count(">DbSlow</a>") == 30


async def test_the_alert_list_filters_in_the_store_and_refuses_a_foreign_cursor(
        router_client: RouterClient, tmp_path: Path) -> None:
    client = await console(router_client, tmp_path)
    await fire(client, [am_alert("DbSlow", n, n) for n in range(5)])
    await fire(client, [am_alert("WebSlow", n, 10 + n) for n in range(3)])

    db = text(await (await client.get("/ui/alerts/rows?team=db&severity=SEV2")).text())
    assert "5 alerts (SEV2 5) ·" in db and "WebSlow" not in db
    page = await (await client.get("/ui/alerts?service=shop")).text()
    assert "3 alerts (SEV3 3) ·" in text(page)
    assert 'data-live="/ui/alerts/rows?service=shop"' in page
    none = text(await (await client.get("/ui/alerts/rows?team=nobody")).text())
    assert "0 alerts ·" in none and "No alerts match." in none

    resp = await client.get("/ui/alerts?cursor=not-one-of-ours")
    assert resp.status == 400
    assert "is not one this list handed out" in await resp.text()


async def test_the_incident_list_shows_the_most_urgent_a_page_at_a_time(
        router_client: RouterClient, tmp_path: Path) -> None:
    client = await console(router_client, tmp_path)
    for _ in range(OPEN_SHOWN + 3):
        await declare(client)
    await client.server.app[BACKEND].engine.drained()

    page = await (await client.get("/ui/incidents")).text()
    assert f"{OPEN_SHOWN + 3} open (SEV2 {OPEN_SHOWN + 3}), showing the {OPEN_SHOWN} most " \
           "urgent" in text(page)
    assert page.count('<tr class="investigating">') == OPEN_SHOWN
    assert 'data-live="/ui/incidents/rows"' in page
    following = re.search(r'href="([^"]+)" id="next-incidents" rel="next">Next 3 open incid',
                          page)
    assert following
    rest = await (await client.get(unescape(following.group(1)))).text()
    assert f"showing {OPEN_SHOWN + 1} to {OPEN_SHOWN + 3} by urgency" in text(rest)
    assert rest.count('<tr class="investigating">') == 3
    assert f'data-live="/ui/incidents/rows?from={OPEN_SHOWN}"' in rest
    assert 'id="next-incidents"' not in rest and 'id="most-urgent"' in rest
    ids = re.findall(r'href="/ui/incidents/(INC-[0-9-]+)"', page + rest)
    assert len(ids) == len(set(ids)) == OPEN_SHOWN + 3

    for bad, why in (("lots", "whole number"), ("-1", "0 or more")):
        resp = await client.get(f"/ui/incidents?from={bad}")
        assert resp.status == 400
        assert why in await resp.text()
