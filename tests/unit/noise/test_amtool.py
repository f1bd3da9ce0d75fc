"""The real amtool (Debian's prometheus-alertmanager package) against the router's v2 API:
`silence add`, `query`, `update`, `expire` and the refusal message, through a running router
(embedded backend). amtool is generated from Alertmanager's openapi spec, so this checks the
shapes and the status codes it depends on; amtool compares times with the wall clock, which is
the router's clock here too.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from router.api.app import build_app
from router.api.keys import BACKEND
from router.config import parse_config
from router.noise.silences import Silence
from router.runtime import build_snapshot
from tests.conftest import write_config
from tests.procs import binary

pytestmark = pytest.mark.e2e


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


class Stored:
    """The silences the router's engine holds, read through its backend."""

    def __init__(self, server: TestServer) -> None:
        self.server = server

    async def all(self) -> dict[str, Silence]:
        return {s.id: s for s in await self.server.app[BACKEND].silences()}


@pytest.fixture
async def api_url(tmp_path: Path) -> AsyncIterator[tuple[Stored, str]]:
    path = write_config(tmp_path)
    snapshot = build_snapshot(parse_config(path.read_text(), str(path), base_dir=str(tmp_path)))
    server = TestServer(build_app(snapshot, config_path=path), host="127.0.0.1")
    await server.start_server()
    try:
        yield Stored(server), str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def test_amtool_adds_queries_updates_and_expires_a_silence(
    api_url: tuple[Stored, str],
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
    stored = (await api.all())[sid]
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
    assert (await api.all())[sid].comment == "deploy 2"
    assert len(await api.all()) == 1

    code, out, err = await amtool(url, "silence", "expire", sid)
    assert code == 0, err
    code, out, err = await amtool(url, "silence", "query", "-q")
    assert (code, out.split()) == (0, []), err
    code, out, err = await amtool(url, "silence", "query", "-q", "--expired")
    assert (code, out.split()) == (0, [sid]), err


async def test_amtool_shows_why_a_silence_is_refused(api_url: tuple[Stored, str]) -> None:
    _, url = api_url
    code, _, err = await amtool(
        url, "silence", "add", 'env=~".*"', "--duration=1h", "--author=a", "--comment=c"
    )
    assert code != 0
    assert "at least one matcher must not match the empty string" in err
