"""`incident-router silence add|query|expire` against a running router (its REST API)."""

from __future__ import annotations

import asyncio

import pytest

from router.cli import main
from tests.conftest import RouterClient


async def test_the_cli_adds_lists_and_expires_a_silence(
        router_client: RouterClient, capsys: pytest.CaptureFixture[str]) -> None:
    client = await router_client({"api": {"tokens": ["cli-token"]}})
    url = str(client.server.make_url("")).rstrip("/")
    common = ["silence", "--url", url, "--token", "cli-token"]
    code = await asyncio.to_thread(main, [*common, "add", 'alertname=DiskFull',
                                          'env=~"prod|staging"', "--duration", "2h",
                                          "--author", "alice", "--comment", "disk swap"])
    assert code == 0
    sid = capsys.readouterr().out.strip()
    assert await asyncio.to_thread(main, [*common, "query"]) == 0
    listed = capsys.readouterr().out
    assert sid in listed and "active" in listed
    assert '{alertname="DiskFull",env=~"prod|staging"}' in listed
    assert "alice: disk swap" in listed
    assert await asyncio.to_thread(main, [*common, "expire", sid]) == 0
    assert await asyncio.to_thread(main, [*common, "query"]) == 0
    assert sid not in capsys.readouterr().out
    assert await asyncio.to_thread(main, [*common, "query", "--expired"]) == 0
    assert f"{sid}  expired" in capsys.readouterr().out


async def test_the_cli_says_what_is_wrong(router_client: RouterClient,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    client = await router_client({"api": {"tokens": ["cli-token"]}})
    url = str(client.server.make_url("")).rstrip("/")
    code = await asyncio.to_thread(main, ["silence", "--url", url, "--token", "wrong", "add",
                                          "a=b", "--comment", "c"])
    assert code == 1
    assert "401" in capsys.readouterr().err
    code = await asyncio.to_thread(main, ["silence", "--url", url, "--token", "cli-token",
                                          "add", 'env=~".*"', "--comment", "c"])
    assert code == 1
    assert "at least one matcher must not match the empty string" in capsys.readouterr().err
