"""The real amtool (Debian's prometheus-alertmanager package) reads and writes our silence JSON.

A stand-in for the v2 silences API, built only from `router.noise.silences` (the HTTP layer
itself comes with the engine wiring), answers amtool's `silence add`, `query`, `update` and
`expire`: amtool is generated from Alertmanager's openapi spec, so this checks the shapes and
the status codes it depends on. amtool compares times with the wall clock, so the stand-in's
clock is the wall clock too.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from router.noise.matchers import MatcherError, parse_matcher
from router.noise.silences import (
    GettableSilence,
    PostableSilence,
    PostSilenceResponse,
    Silence,
    SilenceError,
    SilenceNotFound,
    check_post,
    expire,
    gettable_silences,
    matches_filter,
    set_silence,
)
from tests.procs import binary

pytestmark = pytest.mark.e2e


class SilenceApi:
    """Just enough of `/api/v2/silences` over an in-memory dict."""

    def __init__(self) -> None:
        self.silences: dict[str, Silence] = {}

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/v2/silences", self.post)
        app.router.add_get("/api/v2/silences", self.query)
        app.router.add_get("/api/v2/silence/{id}", self.get)
        app.router.add_delete("/api/v2/silence/{id}", self.delete)
        return app

    async def post(self, request: web.Request) -> web.Response:
        now = self.now()
        try:
            draft = PostableSilence.model_validate_json(await request.read()).to_draft()
            check_post(draft, now)
            existing = self.silences.get(draft.id) if draft.id else None
            out = set_silence(draft, existing, now, lambda: str(uuid.uuid4()))
        except SilenceNotFound as exc:
            return web.json_response(str(exc), status=404)
        except (ValueError, SilenceError) as exc:
            return web.json_response(str(exc), status=400)
        for silence in (out.expired, out.silence):
            if silence is not None:
                self.silences[silence.id] = silence
        return web.json_response(PostSilenceResponse(silence_id=out.silence.id).to_json())

    async def query(self, request: web.Request) -> web.Response:
        try:
            filters = [parse_matcher(f) for f in request.query.getall("filter", [])]
        except MatcherError as exc:
            return web.json_response(str(exc), status=400)
        found = [s for s in self.silences.values() if matches_filter(s, filters)]
        return web.json_response(gettable_silences(found, self.now()))

    async def get(self, request: web.Request) -> web.Response:
        silence = self.silences.get(request.match_info["id"])
        if silence is None:
            return web.json_response("silence not found", status=404)
        return web.json_response(GettableSilence.of(silence, self.now()).to_json())

    async def delete(self, request: web.Request) -> web.Response:
        silence = self.silences.get(request.match_info["id"])
        if silence is None:
            return web.json_response("silence not found", status=404)
        self.silences[silence.id] = expire(silence, self.now())
        return web.Response(status=200)


async def amtool(url: str, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        binary("amtool"),
        f"--alertmanager.url={url}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def api_url() -> AsyncIterator[tuple[SilenceApi, str]]:
    api = SilenceApi()
    server = TestServer(api.app(), host="127.0.0.1")
    await server.start_server()
    try:
        yield api, str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def test_amtool_adds_queries_updates_and_expires_a_silence(
    api_url: tuple[SilenceApi, str],
) -> None:
    api, url = api_url
    code, out, err = await amtool(
        url,
        "silence",
        "add",
        "alertname=HighErrorRate",
        'cluster=~"eu-.*"',
        "--duration=2h",
        "--author=alice",
        "--comment=deploy",
    )
    assert code == 0, err
    sid = out.strip()
    stored = api.silences[sid]
    assert str(stored.matchers) == '{alertname="HighErrorRate",cluster=~"eu-.*"}'
    assert (stored.created_by, stored.comment) == ("alice", "deploy")

    # amtool parses our list: JSON output, the filter, and its default table.
    code, out, err = await amtool(url, "silence", "query", "-o", "json")
    assert code == 0, err
    (listed,) = json.loads(out)
    assert listed["id"] == sid and listed["status"] == {"state": "active"}
    assert listed["matchers"][1] == {
        "name": "cluster",
        "value": "eu-.*",
        "isRegex": True,
        "isEqual": True,
    }
    code, out, err = await amtool(url, "silence", "query", "-q", 'cluster=~"eu-.*"')
    assert (code, out.split()) == (0, [sid]), err
    code, out, err = await amtool(url, "silence", "query", "-q", 'cluster="eu-1"')
    assert (code, out.split()) == (0, []), err
    code, out, err = await amtool(url, "silence", "query")
    assert code == 0 and sid in out and "deploy" in out, err

    # A new comment keeps the silence (same id); amtool GETs it, then posts it with the id.
    code, out, err = await amtool(url, "silence", "update", sid, "--comment=deploy 2")
    assert code == 0, err
    assert api.silences[sid].comment == "deploy 2"
    assert len(api.silences) == 1

    code, out, err = await amtool(url, "silence", "expire", sid)
    assert code == 0, err
    code, out, err = await amtool(url, "silence", "query", "-q")
    assert (code, out.split()) == (0, []), err
    code, out, err = await amtool(url, "silence", "query", "-q", "--expired")
    assert (code, out.split()) == (0, [sid]), err


async def test_amtool_shows_why_a_silence_is_refused(api_url: tuple[SilenceApi, str]) -> None:
    _, url = api_url
    code, _, err = await amtool(
        url, "silence", "add", 'env=~".*"', "--duration=1h", "--author=a", "--comment=c"
    )
    assert code != 0
    assert "at least one matcher must not match the empty string" in err
