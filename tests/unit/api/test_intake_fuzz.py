"""Random and mutated payloads at every source: the answer is a 2xx or a 4xx, never a 5xx."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.api.app import build_app
from router.config import parse_config
from router.runtime import build_snapshot
from tests.conftest import read_testdata, write_config
from tests.procs import free_port

PATHS = ["/webhooks/alertmanager", "/webhooks/cloudwatch", "/webhooks/generic"]


@pytest.fixture(scope="module")
def router_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A real router on a loopback port, served from its own thread and event loop."""
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    path = write_config(tmp)
    snapshot = build_snapshot(parse_config(path.read_text(), str(path), base_dir=str(tmp)))
    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(build_app(snapshot, config_path=path))
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(20)
    yield port
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(20)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def post(port: int, path: str, body: bytes, content_type: str = "application/json") -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": content_type})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


def mutate(doc: Any, path: list[Any], value: Any) -> Any:
    """Replace the node at a pseudo-random path inside `doc` with `value`."""
    if not path or not isinstance(doc, dict | list) or not doc:
        return value
    if isinstance(doc, dict):
        key = sorted(doc)[path[0] % len(doc)]
        return {**doc, key: mutate(doc[key], path[1:], value)}
    idx = path[0] % len(doc)
    return [*doc[:idx], mutate(doc[idx], path[1:], value), *doc[idx + 1:]]


FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(path=st.sampled_from(PATHS), body=st.binary(max_size=300))
def test_random_bytes_never_5xx(router_port: int, path: str, body: bytes) -> None:
    assert 200 <= post(router_port, path, body) < 500


@FUZZ
@given(path=st.sampled_from(PATHS), doc=json_values)
def test_random_json_never_5xx(router_port: int, path: str, doc: Any) -> None:
    assert 200 <= post(router_port, path, json.dumps(doc).encode(), "text/plain") < 500


@FUZZ
@given(where=st.lists(st.integers(min_value=0, max_value=50), max_size=5), value=json_values)
def test_mutated_alertmanager_payload_never_5xx(router_port: int, where: list[int],
                                                value: Any) -> None:
    doc = json.loads(read_testdata("alertmanager", "firing.json"))
    body = json.dumps(mutate(doc, where, value)).encode()
    assert 200 <= post(router_port, "/webhooks/alertmanager", body) < 500


@FUZZ
@given(where=st.lists(st.integers(min_value=0, max_value=50), max_size=4), value=json_values)
def test_mutated_generic_payload_never_5xx(router_port: int, where: list[int], value: Any) -> None:
    doc = {"alerts": [{"name": "X", "labels": {"a": "b"}, "value": 1.5,
                       "starts_at": "2026-11-27T10:00:00Z"}]}
    body = json.dumps(mutate(doc, where, value)).encode()
    assert 200 <= post(router_port, "/webhooks/generic", body) < 500
