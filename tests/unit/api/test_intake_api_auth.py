"""With `api.tokens` set, every `/api/v1` endpoint answers 401 to a request without a token."""

from __future__ import annotations

from aiohttp import web

from tests.conftest import RouterClient

TOKEN = "s3cret-api-token"
TOKENS = {"api": {"tokens": [TOKEN]}}


def api_reads(app: web.Application) -> list[str]:
    """Every GET route under /api/v1 the app serves (read off the router, so new ones count)."""
    paths = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = str(info.get("path") or info.get("formatter") or "")
        if route.method == "GET" and path.startswith("/api/v1"):
            paths.append(path.replace("{id}", "inc-1"))
    return sorted(set(paths))


async def test_every_api_read_needs_a_token_when_tokens_are_set(
    router_client: RouterClient,
) -> None:
    client = await router_client(TOKENS)
    paths = api_reads(client.app)
    assert "/api/v1/alerts" in paths
    for path in paths:
        resp = await client.get(path)
        assert resp.status == 401, path
        assert resp.headers["WWW-Authenticate"].startswith("Bearer"), path
        wrong = await client.get(path, headers={"Authorization": "Bearer nope"})
        assert wrong.status == 401, path


async def test_alerts_are_listed_with_the_token(router_client: RouterClient) -> None:
    client = await router_client(TOKENS)
    await client.post("/webhooks/generic", json={"name": "DiskFull"})
    resp = await client.get("/api/v1/alerts", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status == 200
    assert [a["name"] for a in (await resp.json())["data"]] == ["DiskFull"]


async def test_without_tokens_alerts_stay_readable(router_client: RouterClient) -> None:
    client = await router_client()
    assert (await client.get("/api/v1/alerts")).status == 200


async def test_a_read_only_token_reads_and_is_refused_every_write(
    router_client: RouterClient,
) -> None:
    client = await router_client({"api": {"tokens": [TOKEN], "read_tokens": ["r3ad-only"]}})
    reader = {"Authorization": "Bearer r3ad-only"}
    assert (await client.get("/api/v1/alerts", headers=reader)).status == 200
    assert (await client.get("/api/v1/incidents", headers=reader)).status == 200
    declare = await client.post("/api/v1/incidents", headers=reader,
                                json={"title": "x", "severity": "SEV2"})
    assert declare.status == 403
    assert (await declare.json())["error"] == "this API token is read-only"
    assert (await client.post("/-/reload", headers=reader)).status in (401, 403)
    assert (await client.get("/api/v1/incidents")).status == 401
