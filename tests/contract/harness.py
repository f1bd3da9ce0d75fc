"""Real router processes and a recording webhook receiver for the contract tests.

`RouterProcess` runs `python -m router.cli serve` as a subprocess on a free loopback port, so a
test can SIGKILL it mid-stream like a crashed pod. `WebhookSink` is the receiver the routers
deliver to: an aiohttp server on its own thread and loop, recording every delivery (webhook-id,
event type, group key) and answering 200, as a Standard Webhooks consumer would.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from aiohttp import web

from tests.procs import free_port

ROOT = Path(__file__).resolve().parents[2]
SEVERITIES = ("SEV1", "SEV2", "SEV3", "SEV4")


# --- the receiver ------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    webhook_id: str
    type: str
    group_key: str
    kind: str


class WebhookSink:
    """Records every webhook delivery; always answers 200."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._deliveries: list[Delivery] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    async def _handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        data = body.get("data", {})
        delivery = Delivery(
            webhook_id=request.headers.get("webhook-id", ""),
            type=str(body.get("type", "")),
            group_key=str(data.get("group_key", "")),
            kind=str(data.get("kind", "")),
        )
        with self._lock:
            self._deliveries.append(delivery)
        return web.Response(status=200)

    def start(self) -> None:
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                app = web.Application(client_max_size=16 * 1024 * 1024)
                app.router.add_post("/hook", self._handle)
                runner = web.AppRunner(app, access_log=None)
                loop.run_until_complete(runner.setup())
                site = web.TCPSite(runner, "127.0.0.1", 0)
                loop.run_until_complete(site.start())
                self._runner = runner
                port = runner.addresses[0][1]
                self.url = f"http://127.0.0.1:{port}/hook"
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="webhook-sink", daemon=True)
        self._thread.start()
        started.wait(10)
        if failure:
            raise failure[0]
        if not self.url:
            raise RuntimeError("webhook sink did not start")

    def close(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    # --- what arrived ----------------------------------------------------------------------

    def deliveries(self, type: str | None = None) -> list[Delivery]:
        with self._lock:
            items = list(self._deliveries)
        return [d for d in items if type is None or d.type == type]

    def count(self, type: str | None = None) -> int:
        return len(self.deliveries(type))

    def ids_by_group(self, type: str | None = None) -> dict[str, set[str]]:
        """Distinct notification ids (webhook-id) per group key."""
        groups: dict[str, set[str]] = {}
        for d in self.deliveries(type):
            groups.setdefault(d.group_key, set()).add(d.webhook_id)
        return groups

    def redeliveries(self, type: str | None = None) -> int:
        """Deliveries repeating an id already seen: allowed by Standard Webhooks (at least once)."""
        items = self.deliveries(type)
        return len(items) - len({d.webhook_id for d in items})


# --- the router process ------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: str


def _die_with_parent() -> None:
    """Child side: a killed pytest must not leave routers behind."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def tail(path: Path, lines: int = 40) -> str:
    try:
        with path.open("r", encoding="utf-8", errors="replace") as f:
            return "".join(deque(f, maxlen=lines))
    except OSError:
        return "(no log)\n"


class RouterProcess:
    """One `incident-router serve` subprocess with its own config file, port and log."""

    def __init__(self, name: str, workdir: Path, config: dict[str, object]) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / f"{name}.yaml"
        self.log_path = workdir / f"{name}.log"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self._proc: subprocess.Popen[bytes] | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self, ready_timeout: float = 60.0) -> None:
        if self.alive():
            return
        with self.log_path.open("ab") as log:
            log.write(f"--- start {datetime.now(UTC).isoformat()} ---\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "router.cli", "serve", "--config", str(self.config_path),
                 "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                preexec_fn=_die_with_parent,
            )
        self.wait_ready(ready_timeout)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                pytest.fail(f"router {self.name} exited with {self.returncode()} while "
                            f"starting\n{self.log_tail()}", pytrace=False)
            with contextlib.suppress(OSError):
                if self.get("/readyz", timeout=2).status == 200:
                    return
            time.sleep(0.2)
        pytest.fail(f"router {self.name} not ready within {timeout:g}s\n{self.log_tail()}",
                    pytrace=False)

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flush, like an OOM kill or a lost node."""
        if self._proc is not None and self.alive():
            self._proc.kill()
            self._proc.wait(10)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM and wait for a clean exit (SIGKILL if it hangs, which fails the caller)."""
        proc = self._proc
        if proc is None or not self.alive():
            return
        proc.terminate()
        self.wait_exit(timeout)

    def signal_term(self) -> None:
        """SIGTERM without waiting (to watch the router drain)."""
        if self._proc is not None and self.alive():
            self._proc.terminate()

    def wait_exit(self, timeout: float) -> None:
        """Until the process exited; fails (and kills it) after `timeout` seconds."""
        proc = self._proc
        if proc is None:
            return
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            pytest.fail(f"router {self.name} did not exit within {timeout:g}s\n"
                        f"{self.log_tail()}", pytrace=False)

    def restart(self, ready_timeout: float = 60.0) -> None:
        self.stop()
        self.start(ready_timeout)

    def log_tail(self, lines: int = 40) -> str:
        return f"=== {self.name} ({self.log_path}) ===\n{tail(self.log_path, lines)}"

    # --- HTTP ------------------------------------------------------------------------------

    def request(self, method: str, path: str, body: bytes | None = None,
                timeout: float = 30.0) -> Answer:
        """One HTTP call; an HTTP error status is an Answer, a transport failure raises OSError."""
        req = urllib.request.Request(self.url + path, data=body, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return Answer(resp.status, dict(resp.headers), resp.read().decode())
        except urllib.error.HTTPError as err:
            return Answer(err.code, dict(err.headers), err.read().decode(errors="replace"))

    def get(self, path: str, timeout: float = 10.0) -> Answer:
        return self.request("GET", path, timeout=timeout)

    def post_alertmanager(self, payload: dict[str, object], timeout: float = 30.0) -> Answer:
        return self.request("POST", "/webhooks/alertmanager", json.dumps(payload).encode(),
                            timeout=timeout)

    def metrics(self) -> dict[str, float]:
        """Each sample's value summed over its labels, by sample name."""
        text = self.get("/metrics").body
        out: dict[str, float] = {}
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            name_labels, _, value = line.rpartition(" ")
            name = name_labels.split("{", 1)[0]
            out[name] = out.get(name, 0.0) + float(value)
        return out


# --- config and payloads ----------------------------------------------------------------


def router_config(backend: dict[str, object], sink_url: str, rules_dir: Path) -> dict[str, object]:
    """Short timers (first notification at once, updates after 1s), one webhook receiver."""
    timers = {"group_wait": "0s", "group_interval": "1s", "repeat_interval": "1h"}
    return {
        "server": {"host": "127.0.0.1", "max_body_bytes": 8 * 1024 * 1024},
        "backend": backend,
        "sources": {"alertmanager": {"auth": {"type": "none"}}},
        "rules_dir": str(rules_dir),
        "receivers": [{"name": "sink", "type": "webhook", "url": sink_url, "concurrency": 32,
                       "retry": {"initial_backoff_seconds": 0.2, "max_backoff_seconds": 2}}],
        "default_receivers": ["sink"],
        "severities": {s: timers for s in SEVERITIES},
    }


def am_alert(i: int, starts_at: datetime, ends_at: datetime | None = None,
             name: str = "ContractTest") -> dict[str, object]:
    """Alert number `i`: its own `service` label, so its own group (`name|svc-i`)."""
    return {
        "status": "resolved" if ends_at is not None else "firing",
        "labels": {"alertname": name, "service": f"svc-{i}", "instance": f"host-{i}",
                   "severity": "critical"},
        "annotations": {"summary": f"contract alert {i}"},
        "startsAt": starts_at.isoformat(),
        "endsAt": ends_at.isoformat() if ends_at is not None else "0001-01-01T00:00:00Z",
        "generatorURL": "http://127.0.0.1:9090/graph",
        "fingerprint": f"{i:016x}",
    }


def am_payload(alerts: Sequence[dict[str, object]]) -> dict[str, object]:
    """An Alertmanager webhook (payload version 4) carrying `alerts`."""
    resolved = all(a["status"] == "resolved" for a in alerts)
    return {
        "version": "4",
        "groupKey": '{}:{alertname="ContractTest"}',
        "truncatedAlerts": 0,
        "status": "resolved" if resolved else "firing",
        "receiver": "router",
        "groupLabels": {"alertname": "ContractTest"},
        "commonLabels": {"alertname": "ContractTest"},
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": list(alerts),
    }


def group_key(i: int, name: str = "ContractTest") -> str:
    """The router's default group key of `am_alert(i)`: alert name plus service."""
    return f"{name}|svc-{i}"


# --- waiting -----------------------------------------------------------------------------


def logs_of(routers: Iterable[RouterProcess]) -> str:
    return "\n".join(r.log_tail() for r in routers)


ENGINE_GAUGES = (
    "incident_router_engine_events_total",
    "incident_router_engine_consumer_lag",
    "incident_router_engine_owned_partitions",
    "incident_router_engine_notifications_total",
    "incident_router_notifications_sent_total",
    "incident_router_engine_transaction_aborts_total",
)


def engine_summary(routers: Iterable[RouterProcess]) -> str:
    """One line per router: alive or not, and its engine and delivery counters."""
    lines = []
    for r in routers:
        if not r.alive():
            lines.append(f"{r.name}: not running (exit {r.returncode()})")
            continue
        try:
            m = r.metrics()
        except OSError as exc:
            lines.append(f"{r.name}: /metrics failed: {type(exc).__name__}")
            continue
        values = ", ".join(f"{k.removeprefix('incident_router_')}={m.get(k, 0):g}"
                           for k in ENGINE_GAUGES)
        lines.append(f"{r.name}: {values}")
    return "\n".join(lines)


def wait_for(check: Callable[[], bool], timeout: float, what: str,
             routers: Sequence[RouterProcess] = (),
             detail: Callable[[], str] | None = None) -> None:
    """Poll `check` until true; fail with `what`, `detail()`, the routers' counters and log
    tails after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.2)
    extra = ""
    if detail is not None:
        with contextlib.suppress(Exception):
            extra = detail() + "\n"
    pytest.fail(f"timed out after {timeout:g}s waiting for {what}\n{extra}"
                f"{engine_summary(routers)}\n{logs_of(routers)}", pytrace=False)


def settled(routers: Sequence[RouterProcess], sink: WebhookSink | None = None) -> bool:
    """Every live router has decided all it consumed and delivered all it emitted.

    Counters are per process, so the sums only balance when no router was killed since its
    start; after a kill pass `sink` and this also waits for the sink to stay quiet for 1s.
    """
    live = [r for r in routers if r.alive()]
    samples = [r.metrics() for r in live]
    if any(m.get("incident_router_engine_consumer_lag", 1) != 0 for m in samples):
        return False
    emitted = sum(m.get("incident_router_engine_notifications_total", 0) for m in samples)
    done = sum(m.get("incident_router_notifications_sent_total", 0)
               + m.get("incident_router_notifications_dead_lettered_total", 0) for m in samples)
    if sink is None:
        return emitted == done
    before = sink.count()
    time.sleep(1.0)
    return sink.count() == before and all(
        r.metrics().get("incident_router_engine_consumer_lag", 1) == 0 for r in live)


def post_until_accepted(routers: Sequence[RouterProcess], payload: dict[str, object],
                        first: int = 0, timeout: float = 90.0) -> tuple[int, list[str]]:
    """Post like Alertmanager behind a load balancer: on a transport error or 5xx, retry
    (against the next router) until a 2xx. Returns (attempts, what failed on the way).

    A 4xx fails the test at once: Alertmanager drops the alerts on a 4xx.
    """
    deadline = time.monotonic() + timeout
    failures: list[str] = []
    attempt = 0
    while True:
        router = routers[(first + attempt) % len(routers)]
        attempt += 1
        try:
            answer = router.post_alertmanager(payload)
        except OSError as exc:
            failures.append(f"{router.name}: {type(exc).__name__}")
        else:
            if 200 <= answer.status < 300:
                return attempt, failures
            if answer.status < 500:
                pytest.fail(f"{router.name} refused an alert batch with {answer.status}: "
                            f"{answer.body}", pytrace=False)
            failures.append(f"{router.name}: {answer.status} retry-after="
                            f"{answer.headers.get('Retry-After')}")
        if time.monotonic() > deadline:
            pytest.fail(f"alert batch not accepted within {timeout:g}s; failures: "
                        f"{failures[-5:]}\n{logs_of(routers)}", pytrace=False)
        time.sleep(0.2)


class Stream:
    """Posts payloads from `workers` threads, alternating over the routers, each payload
    retried (against the next router) until accepted, so that a router dying mid-stream loses
    nothing the sources were told was accepted."""

    def __init__(self, routers: Sequence[RouterProcess], payloads: Sequence[dict[str, object]],
                 workers: int = 2, pace: float = 0.0) -> None:
        self._routers = routers
        self._payloads = payloads
        self._pace = pace  # seconds each worker waits between payloads (a steady stream)
        self._lock = threading.Lock()
        self._next = 0
        self.acked = 0
        self.retried = 0  # payloads that needed more than one attempt
        self.failures: list[str] = []  # what went wrong on the way (connection errors, 503s)
        self.errors: list[BaseException] = []  # a payload that was never accepted
        self._threads = [threading.Thread(target=self._work, name=f"stream-{i}", daemon=True)
                         for i in range(workers)]

    def _work(self) -> None:
        while True:
            with self._lock:
                k = self._next
                self._next += 1
            if k >= len(self._payloads):
                return
            try:
                attempts, failures = post_until_accepted(self._routers, self._payloads[k],
                                                          first=k)
            except BaseException as exc:  # pytest.fail inside a thread: report it on join
                with self._lock:
                    self.errors.append(exc)
                return
            with self._lock:
                self.acked += 1
                self.retried += attempts > 1
                self.failures.extend(failures)
            time.sleep(self._pace)

    def start(self) -> Stream:
        for t in self._threads:
            t.start()
        return self

    def wait_acked(self, n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.acked < n and not self.errors and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.errors:
            raise self.errors[0]
        if self.acked < n:
            pytest.fail(f"only {self.acked} of {n} alert batches accepted within {timeout:g}s"
                        f"\n{logs_of(self._routers)}", pytrace=False)

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        if self.errors:
            raise self.errors[0]
        if any(t.is_alive() for t in self._threads):
            pytest.fail(f"posting did not finish within {timeout:g}s\n{logs_of(self._routers)}",
                        pytrace=False)
        assert self.acked == len(self._payloads)
