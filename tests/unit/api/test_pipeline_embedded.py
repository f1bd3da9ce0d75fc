"""The whole embedded pipeline in one process: intake -> log -> engine -> outbox -> receiver."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from router.api.keys import BACKEND, DISPATCHER
from tests.conftest import RouterClient, read_testdata

FAST = {"group_wait": "0s", "group_interval": "1s", "repeat_interval": "1h"}


async def sink_server(aiohttp_server: Any) -> tuple[TestServer, list[dict[str, Any]]]:
    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    return await aiohttp_server(app), received


async def settle(client: Any, received: list[Any] | None = None, count: int = 0) -> None:
    """Wait until the engine and delivery are idle and (if given) `count` requests arrived.

    Timers (group_interval) may hold a notification back for a moment, hence the polling."""
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        await client.app[BACKEND].engine.drained()
        await client.app[DISPATCHER].wait_idle()
        if received is None or len(received) >= count:
            return
        if asyncio.get_running_loop().time() > deadline:
            return  # the assertion that follows says what is missing
        await asyncio.sleep(0.1)


async def test_three_deliveries_of_one_payload_notify_once(router_client: RouterClient,
                                                           aiohttp_server: Any) -> None:
    server, received = await sink_server(aiohttp_server)
    client = await router_client({
        "receivers": [{"name": "log", "type": "log"},
                      {"name": "hook", "type": "webhook", "url": str(server.make_url("/hook"))}],
        "default_receivers": ["hook"],
        "severities": {s: FAST for s in ("SEV1", "SEV2", "SEV3", "SEV4")},
    })
    body = read_testdata("alertmanager", "firing.json")
    for _ in range(3):
        assert (await client.post("/webhooks/alertmanager", data=body)).status == 200
        await settle(client)
    assert [r["type"] for r in received] == ["alert.firing"]

    resolved = json.loads(read_testdata("alertmanager", "firing.json"))
    for a in resolved["alerts"]:
        a["status"] = "resolved"
        a["endsAt"] = "2026-11-27T11:00:00Z"
    assert (await client.post("/webhooks/alertmanager", json=resolved)).status == 200
    await settle(client, received, 2)
    assert [r["type"] for r in received] == ["alert.firing", "alert.resolved"]
