"""Shared fixtures: a router app on the embedded backend, built from config text."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import yaml
from aiohttp.test_utils import TestClient

from router.api.app import build_app
from router.config import parse_config
from router.runtime import build_snapshot

# The real Kafka broker fixtures, shared by tests/kafka and tests/contract (one session broker).
pytest_plugins = ["tests.kafka.fixtures"]

ROOT = Path(__file__).resolve().parent.parent
TESTDATA = Path(__file__).resolve().parent / "testdata"

BASE_CONFIG = {
    "server": {"max_body_bytes": 65536},
    "backend": {"type": "embedded", "path": "router.db"},
    "rules_dir": str(ROOT / "rules"),
    "runbooks_dir": str(ROOT / "runbooks"),
    "receivers": [{"name": "log", "type": "log"}],
}


def merge(base: dict[str, object], extra: dict[str, object]) -> dict[str, object]:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)  # type: ignore[arg-type]
        else:
            out[k] = v
    return out


def write_config(tmp_path: Path, extra: dict[str, object] | None = None) -> Path:
    path = tmp_path / "router.yaml"
    path.write_text(yaml.safe_dump(merge(BASE_CONFIG, extra or {})))
    return path


RouterClient = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def router_client(aiohttp_client, tmp_path: Path) -> RouterClient:  # type: ignore[no-untyped-def]
    async def make(extra: dict[str, object] | None = None) -> TestClient:
        path = write_config(tmp_path, extra)
        snapshot = build_snapshot(parse_config(path.read_text(), str(path), base_dir=str(tmp_path)))
        return await aiohttp_client(build_app(snapshot, config_path=path))

    return make


def read_testdata(*parts: str) -> bytes:
    return TESTDATA.joinpath(*parts).read_bytes()
