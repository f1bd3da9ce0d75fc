"""The chart's config-reloader sidecar (helm/incident-router/files/config-reloader.py) against
a real HTTP server standing in for the router's POST /-/reload, on a directory laid out the
way the kubelet writes ConfigMap volumes (files behind a `..data` symlink swapped atomically)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

SCRIPT = Path(__file__).resolve().parents[2] / "helm/incident-router/files/config-reloader.py"
WAIT = 30.0  # upper bound for an expected event; never a sleep


class ConfigMapDir:
    """A ConfigMap volume as the kubelet writes it: <dir>/<key> -> ..data/<key>,
    ..data -> ..<version>/, each update a new version and an atomic ..data rename."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.version = 0
        path.mkdir()

    def write(self, files: dict[str, str]) -> None:
        self.version += 1
        version = self.path / f"..v{self.version}"
        version.mkdir()
        for name, text in files.items():
            (version / name).write_text(text)
        tmp = self.path / "..data_tmp"
        tmp.symlink_to(version.name)
        os.replace(tmp, self.path / "..data")
        for name in files:
            link = self.path / name
            if not link.is_symlink():
                link.symlink_to(f"..data/{name}")


@dataclass
class FakeRouter:
    """Answers POST /-/reload with the queued statuses (then 200), recording each request."""

    statuses: list[int] = field(default_factory=list)
    requests: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)

    async def reload(self, request: web.Request) -> web.Response:
        await self.requests.put(request.headers.get("Authorization"))
        status = self.statuses.pop(0) if self.statuses else 200
        return web.json_response({"status": "success" if status == 200 else "error"},
                                 status=status)

    async def next_request(self) -> str | None:
        return await asyncio.wait_for(self.requests.get(), WAIT)


@pytest.fixture
async def router() -> AsyncIterator[tuple[FakeRouter, str]]:
    fake = FakeRouter()
    app = web.Application()
    app.router.add_post("/-/reload", fake.reload)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield fake, f"http://127.0.0.1:{port}/-/reload"
    await runner.cleanup()


class Reloader:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def line_with(self, text: str) -> str:
        """The next log line containing `text` (earlier lines are skipped)."""
        assert self.proc.stdout is not None
        while True:
            line = (await asyncio.wait_for(self.proc.stdout.readline(), WAIT)).decode()
            assert line, f"reloader exited before logging {text!r}"
            if text in line:
                return line


async def start(url: str, *dirs: Path, token_env: str = "",
                env: dict[str, str] | None = None) -> Reloader:
    args = [str(SCRIPT), "--url", url, "--interval", "0.05"]
    for d in dirs:
        args += ["--watch", str(d)]
    if token_env:
        args += ["--token-env", token_env]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *args, stdout=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})})
    reloader = Reloader(proc)
    await reloader.line_with('"msg": "watching"')
    return reloader


async def stop(reloader: Reloader) -> int:
    reloader.proc.terminate()
    return await asyncio.wait_for(reloader.proc.wait(), WAIT)


async def test_an_edit_in_either_directory_posts_one_reload(
        tmp_path: Path, router: tuple[FakeRouter, str]) -> None:
    fake, url = router
    config, rules = ConfigMapDir(tmp_path / "config"), ConfigMapDir(tmp_path / "rules")
    config.write({"router.yaml": "receivers: []\n"})
    rules.write({"10-a.yaml": "rules: []\n"})
    reloader = await start(url, config.path, rules.path)

    rules.write({"10-a.yaml": "rules: []\n", "20-b.yaml": "rules: []\n"})  # a file added
    assert await fake.next_request() is None  # no token configured: no header
    await reloader.line_with('"msg": "reloaded"')
    config.write({"router.yaml": "receivers: [] # edited\n"})
    assert await fake.next_request() is None
    await reloader.line_with('"msg": "reloaded"')

    assert await stop(reloader) == 0  # SIGTERM ends it cleanly
    # Nothing at start-up and one request per change: two in all.
    assert fake.requests.qsize() == 0


async def test_the_router_api_token_is_sent(tmp_path: Path,
                                            router: tuple[FakeRouter, str]) -> None:
    fake, url = router
    config = ConfigMapDir(tmp_path / "config")
    config.write({"router.yaml": "a: 1\n"})
    reloader = await start(url, config.path, token_env="RELOAD_API_TOKEN",
                           env={"RELOAD_API_TOKEN": "s3cret-token"})
    config.write({"router.yaml": "a: 2\n"})
    assert await fake.next_request() == "Bearer s3cret-token"
    line = await reloader.line_with('"msg": "reloaded"')
    assert "s3cret-token" not in line
    await stop(reloader)


async def test_unreachable_or_5xx_is_retried_but_a_refused_config_is_not(
        tmp_path: Path, router: tuple[FakeRouter, str]) -> None:
    fake, url = router
    config = ConfigMapDir(tmp_path / "config")
    config.write({"router.yaml": "a: 1\n"})
    reloader = await start(url, config.path)

    fake.statuses[:] = [503]  # the router is starting: ask again
    config.write({"router.yaml": "a: 2\n"})
    await fake.next_request()
    await reloader.line_with('"msg": "reload failed, retrying"')
    await fake.next_request()
    await reloader.line_with('"msg": "reloaded"')

    fake.statuses[:] = [400]  # the new config is invalid: the router keeps the old one
    config.write({"router.yaml": "a: broken\n"})
    await fake.next_request()
    line = await reloader.line_with('"msg": "reload refused')
    assert '"reason": "400: ' in line
    # The next change is tried again (and the refused one was not retried in between).
    config.write({"router.yaml": "a: 3\n"})
    await fake.next_request()
    await reloader.line_with('"msg": "reloaded"')
    await stop(reloader)
    assert fake.requests.qsize() == 0


async def test_a_missing_token_variable_is_an_error_at_start(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(SCRIPT), "--url", "http://127.0.0.1:9/-/reload",
        "--watch", str(tmp_path), "--token-env", "NOT_SET_ANYWHERE",
        stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), WAIT)
    assert proc.returncode == 2
    assert b"token variable is not set" in out
