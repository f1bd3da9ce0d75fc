"""Real third-party processes for end-to-end tests: Alertmanager (and Prometheus) on loopback.

Binaries come from Debian's packages (`make system-deps`). A process that does not come up
fails the test with the tail of its log, never a skip.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(check: Callable[[], bool], timeout: float, what: str,
               log: Path | None = None) -> None:
    """Poll `check` until true; fail with `what` (and a log tail) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.2)
    tail = ""
    if log is not None and log.exists():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
    pytest.fail(f"timed out waiting for {what}\n{tail}")


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return bool(resp.status == 200)


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run `make system-deps` (Debian package)")
    return path


@contextlib.contextmanager
def alertmanager(workdir: Path, config_yaml: str,
                 cluster: Sequence[str] = ("--cluster.listen-address=",)) -> Iterator[str]:
    """Start the real Alertmanager with `config_yaml`; yield its base URL. `cluster`: its
    gossip flags (by default none: a single instance)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "alertmanager.yml").write_text(config_yaml)
    port = free_port()
    log = workdir / "alertmanager.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                binary("prometheus-alertmanager"),
                f"--config.file={workdir / 'alertmanager.yml'}",
                f"--storage.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                *cluster,
                "--log.level=debug",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_ok(f"{url}/-/ready"), 30, "Alertmanager to be ready", log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@contextlib.contextmanager
def prometheus(workdir: Path, config_yaml: str, files: dict[str, str] | None = None,
               resend_delay: str = "1s") -> Iterator[str]:
    """Start the real Prometheus with `config_yaml` (plus `files`, e.g. rule files, written
    next to it, so relative `rule_files` resolve); yield its base URL.

    `resend_delay` is how often a firing alert is re-sent to Alertmanager: 1s so a changed
    annotation (a new `$value`) reaches Alertmanager at once instead of after the 1m default.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    for name, text in (files or {}).items():
        (workdir / name).parent.mkdir(parents=True, exist_ok=True)
        (workdir / name).write_text(text)
    (workdir / "prometheus.yml").write_text(config_yaml)
    port = free_port()
    log = workdir / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                binary("prometheus"),
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                f"--rules.alert.resend-delay={resend_delay}",
                "--log.level=debug",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_ok(f"{url}/-/ready"), 60, "Prometheus to be ready", log)
        yield url
    finally:
        _stop(proc)


@contextlib.contextmanager
def router_process(config_path: Path, log: Path) -> Iterator[str]:
    """Run `python -m router.cli serve --config <config_path>` on a free loopback port as its
    own process; yield its base URL once /readyz answers 200."""
    import os
    import sys

    port = free_port()
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "router.cli", "serve", "--config", str(config_path),
             "--host", "127.0.0.1", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, cwd=root, env=env,
        )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if proc.poll() is not None:  # exited (e.g. a bad config): no point waiting
            tail = log.read_text(errors="replace")[-4000:]
            pytest.fail(f"the router exited with {proc.returncode}:\n{tail}")
        return http_ok(f"{url}/readyz")

    try:
        wait_until(ready, 60, "the router to be ready", log)
        yield url
    finally:
        _stop(proc)
