"""`make bench`: every scenario for a fixed, bounded time, one table, the targets' ratios, JSON.

    .venv/bin/python bench/run.py [--quick] [--warmup S] [--duration S] [--only a,b] [--skip a]
                                  [--state-alerts N] [--e2e-rate N] [--profile cprofile|py-spy]

Servers under test run pinned to core 0, load generator and sink to core 1 (see README.md
for what each scenario includes and excludes). Writes bench/results/<UTC timestamp>.json.
Scenarios (names for --only/--skip): ceiling, embedded, kafka, alertmanager, delivery, e2e,
state, console, soak, stages (the embedded e2e rows again under py-spy, CPU per delivered
alert by stage); delivery, soak and stages are not in --quick unless named in --only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

from classify import generated_rules  # noqa: E402
from kafka_stages import describe, stage_times, summary, wall_offset  # noqa: E402
from stages import ORDER as STAGE_ORDER  # noqa: E402
from stages import per_alert_us  # noqa: E402
from stages import stages as stage_samples  # noqa: E402

PY = sys.executable
ROUTER_BIN = str(Path(PY).parent / "incident-router")
TOKEN = "bench-token-not-a-secret"
SCENARIOS = ("ceiling", "embedded", "kafka", "alertmanager", "delivery", "e2e", "state",
             "console", "soak", "stages")
# On PATH, or installed beside this Python (`make bench` installs it into the venv).
PYSPY = shutil.which("py-spy") or next(
    (str(p) for p in [Path(PY).parent / "py-spy"] if p.exists()), None)
CPUS = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
SERVER_CPU = CPUS[0]
LOAD_CPU = CPUS[1] if len(CPUS) > 1 else CPUS[0]
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Settings:
    warmup: float
    duration: float
    connections: int
    e2e_rate: float
    state_alerts: int
    sns_pool: int
    profile: str | None
    work: Path
    results: Path
    stamp: str
    payloads: set[str] | None = None
    systems: set[str] | None = None
    kafka_partitions: int = 12
    kafka_batch_interval: float | None = None  # engine_batch_interval_seconds; None: default
    replicas: tuple[int, ...] = (1,)  # Kafka delivery/e2e rows: router processes per row

    def wants(self, kind: str) -> bool:
        return self.payloads is None or kind in self.payloads


@dataclass
class Row:
    scenario: str
    payload: str
    alerts_s: float | None = None
    req_s: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    peak_rss_mb: float | None = None
    cpu_s_per_1k: float | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# --- processes -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pin_all(pid: int, cpu: int) -> None:
    """Pin every thread of a running process (e.g. a JVM started elsewhere)."""
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(tid), {cpu})


def cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except OSError:
        return 0.0


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """User+system CPU of each thread of `pid` by thread name (comm), the main thread as
    "main" (bench/stages.py splits a profile's samples thread by thread with these)."""
    out: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/stat") as f:
                head, _, rest = f.read().rpartition(")")
                name = "main" if int(tid) == pid else head.split("(", 1)[1]
                fields = rest.split()
                out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def peak_rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except Exception:
        return False


def http_json(url: str, method: str = "GET") -> Any:
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


class Proc:
    """A server process pinned to one core, with its output in a log file."""

    def __init__(self, name: str, cmd: list[str], log: Path, cpu: int | None,
                 env: dict[str, str] | None = None, stdout_null: bool = False) -> None:
        self.name = name
        self.log = log
        out = log.open("wb")

        def pin() -> None:
            if cpu is not None:
                os.sched_setaffinity(0, {cpu})

        self.popen = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL if stdout_null else out, stderr=out,
            preexec_fn=pin, env={**os.environ, **(env or {})}, cwd=str(ROOT),
        )
        out.close()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def wait_ready(self, url: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                break
            if http_ok(url):
                return
            time.sleep(0.1)
        self.stop()
        tail = self.log.read_text(errors="replace").splitlines()[-30:]
        raise RuntimeError(f"{self.name} did not become ready at {url}:\n" + "\n".join(tail))

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(8)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


@contextlib.contextmanager
def running(*procs: Proc) -> Iterator[None]:
    try:
        yield
    finally:
        for p in reversed(procs):
            p.stop()


def run_load(spec: dict[str, Any], pids: list[int]) -> tuple[dict[str, Any], float]:
    """Run the load generator; return its result and the CPU seconds `pids` used while it
    measured (sampled when it says `measure` and `done`). The peak RSS of `pids` at the end
    goes into the result as `peak_rss`."""
    spec = {"cpu": LOAD_CPU, **spec}
    proc = subprocess.Popen([PY, str(BENCH / "loadgen.py")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, cwd=str(ROOT))
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(spec).encode())
    proc.stdin.close()
    start = [cpu_seconds(p) for p in pids]
    threads_start: dict[str, float] = {}
    threads: dict[str, float] = {}
    used: list[float] = [0.0] * len(pids)
    window = 0.0
    rss = 0
    result: dict[str, Any] = {}
    for line in proc.stdout:
        text = line.strip()
        if text == b"measure":
            window = time.monotonic()
            start = [cpu_seconds(p) for p in pids]
            threads_start = thread_cpu_seconds(pids[0])
        elif text == b"done":
            used = [cpu_seconds(p) - s for p, s in zip(pids, start, strict=True)]
            window = time.monotonic() - window
            threads = {k: v - threads_start.get(k, 0.0)
                       for k, v in thread_cpu_seconds(pids[0]).items()}
            rss = max(peak_rss(p) for p in pids)
        elif text.startswith(b"{"):
            result = json.loads(text)
            result["peak_rss"] = rss
            result["thread_cpu_s"] = threads  # of the first process
            result["cpu_s_by_process"] = used
            result["cpu_window_s"] = window  # measured window plus the requests' tail
    if proc.wait() != 0 or not result:
        raise RuntimeError(f"load generator failed (exit {proc.returncode})")
    return result, sum(used)


def load_row(scenario: str, result: dict[str, Any], cpu: float, note: str = "") -> Row:
    alerts = result["requests"] * result["alerts_per_request"]
    bad = result["requests"] - result["ok"] + result["errors"]
    if bad:
        note = f"{note}; {bad} non-2xx/errors {result['status']}".strip("; ")
    if not result["requests"]:
        note = f"{note}; no request completed in the window".strip("; ")
    return Row(
        scenario, result["kind"], result["alerts_s"], result["req_s"], result["p50_ms"],
        result["p99_ms"], result["peak_rss"] / 2**20,
        cpu / (alerts / 1000) if alerts else None, note,
        {"thread_cpu_s": result.get("thread_cpu_s", {}), "alerts": alerts},
    )


# --- configs -------------------------------------------------------------------------------

BENCH_RULE = {
    "rules": [{
        # Like Alertmanager with group_by ['...'] and group_wait 0s: a notification per alert,
        # no incident (SEV3 is below incidents.open_at).
        "name": "bench-one-notification-per-alert",
        "description": "bench/run.py: every BenchE2E alert is its own notification, sent at once",
        "match": {"source": "alertmanager", "labels": ['alertname="BenchE2E"']},
        "set": {"severity": "SEV3", "group_by": ["alertname", "bench_seq"], "group_wait": "0s"},
    }, {
        "name": "bench-one-incident-per-alert",
        "description": "bench/run.py: every BenchIncident alert is its own SEV1 incident",
        "match": {"source": "alertmanager", "labels": ['alertname="BenchIncident"']},
        "set": {"severity": "SEV1", "group_by": ["alertname", "bench_seq"], "group_wait": "0s"},
    }]
}


def rules_dir(work: Path) -> Path:
    """Shipped rules, 200 generated ones (bench/classify.py) and the bench's one rule."""
    d = work / "rules"
    if not d.exists():
        d.mkdir(parents=True)
        for p in (ROOT / "rules").glob("*.yaml"):
            if not p.name.endswith(".test.yaml"):
                shutil.copy(p, d / p.name)
        (d / "50-generated.yaml").write_text(yaml.safe_dump(generated_rules(200)))
        (d / "05-bench.yaml").write_text(yaml.safe_dump(BENCH_RULE))
    return d


def router_config(work: Path, name: str, port: int, sink_port: int, backend: dict[str, Any],
                  deliver_to_sink: bool) -> Path:
    from tests import snskit

    d = work / name
    d.mkdir(parents=True, exist_ok=True)
    cfg = {
        "server": {"host": "127.0.0.1", "port": port, "max_body_bytes": 4 * 1048576},
        "backend": backend,
        "sources": {
            "alertmanager": {"auth": {"type": "bearer", "tokens": [TOKEN]}},
            "cloudwatch": {"topic_arns": [snskit.TOPIC_ARN],
                           "cert_host_pattern": snskit.LOCAL_HOST_PATTERN,
                           "allow_insecure_urls": True},
        },
        "rules_dir": str(rules_dir(work)),
        "runbooks_dir": str(ROOT / "runbooks"),
        "receivers": [
            {"name": "log", "type": "log"},
            {"name": "sink", "type": "webhook", "url": f"http://127.0.0.1:{sink_port}/router",
             "concurrency": 64},
        ],
        "default_receivers": ["sink" if deliver_to_sink else "log"],
    }
    path = d / "router.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def embedded_backend(work: Path, name: str) -> dict[str, Any]:
    return {"type": "embedded", "path": str(work / name / "router.db")}


def router_proc(s: Settings, name: str, config: Path, port: int) -> Proc:
    cmd = [ROUTER_BIN, "serve", "--config", str(config), "--log-level", "WARNING"]
    prof = s.results / f"{s.stamp}-{name}"
    if s.profile == "cprofile":
        cmd = [PY, "-m", "cProfile", "-o", f"{prof}.prof", *cmd]
    proc = Proc(name, cmd, s.work / f"{name}.log", SERVER_CPU, stdout_null=True)
    proc.wait_ready(f"http://127.0.0.1:{port}/readyz")
    if s.profile == "py-spy" and PYSPY:
        # Collapsed stacks (one line per stack with its sample count): grep-able, and
        # flamegraph.pl or speedscope draw them.
        subprocess.Popen([PYSPY, "record", "--pid", str(proc.pid), "--format", "raw",
                          "--output", f"{prof}.txt", "--duration",
                          str(int(s.warmup + s.duration + 2))],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc


def start_sink(s: Settings) -> tuple[Proc, int]:
    port = free_port()
    sink = Proc("sink", [PY, str(BENCH / "sink.py"), "--port", str(port), "--cpu",
                         str(LOAD_CPU), "--sns-key-dir", str(s.work)],
                s.work / f"sink-{port}.log", LOAD_CPU)
    sink.wait_ready(f"http://127.0.0.1:{port}/readyz")
    return sink, port


def load_spec(s: Settings, ports: list[int], kind: str, **extra: Any) -> dict[str, Any]:
    return {
        "targets": [["127.0.0.1", p] for p in ports],
        "payload": {"kind": kind, "sns_pool": s.sns_pool, "key_dir": str(s.work),
                    **extra.pop("payload", {})},
        "headers": {"Authorization": f"Bearer {TOKEN}"},
        "warmup": s.warmup, "duration": s.duration, "connections": s.connections,
        **extra,
    }


# --- scenarios -----------------------------------------------------------------------------


def scenario_ceiling(s: Settings) -> list[Row]:
    rows = []
    for kind in ("am1", "am10", "am100"):
        if not s.wants(kind):
            continue
        port = free_port()
        proc = Proc("ceiling", [PY, str(BENCH / "ceiling.py"), "--port", str(port)],
                    s.work / "ceiling.log", SERVER_CPU)
        with running(proc):
            proc.wait_ready(f"http://127.0.0.1:{port}/readyz")
            result, cpu = run_load(load_spec(s, [port], kind), [proc.pid])
        rows.append(load_row("1 ceiling (aiohttp+pydantic)", result, cpu))
    return rows


def scenario_embedded(s: Settings) -> list[Row]:
    rows = []
    for kind in ("am1", "am10", "am100", "dup30", "storm", "sns"):
        if not s.wants(kind):
            continue
        sink, sink_port = start_sink(s)
        with running(sink):
            port = free_port()
            name = f"embedded-{kind}"
            cfg = router_config(s.work, name, port, sink_port, embedded_backend(s.work, name),
                                deliver_to_sink=False)
            proc = router_proc(s, name, cfg, port)
            with running(proc):
                extra: dict[str, Any] = {}
                if kind == "sns":
                    extra["payload"] = {"cert_url": f"http://127.0.0.1:{sink_port}"
                                                    "/SimpleNotificationService-0123456789"
                                                    "abcdef.pem"}
                result, cpu = run_load(load_spec(s, [port], kind, **extra), [proc.pid])
            rows.append(load_row("2 router embedded", result, cpu,
                                 "pool of signed messages cycled" if kind == "sns" else ""))
    return rows


def kafka_available() -> str | None:
    try:
        from router.backends.kafka.backend import KafkaBackend  # noqa: F401
    except ImportError:
        return "kafka backend not available (router.backends.kafka.KafkaBackend missing)"
    if not shutil.which("java"):
        return "java not on PATH"
    return None


_BROKER: list[Any] = []  # one broker for the whole run (it takes 10-30 s to start)


@contextlib.contextmanager
def kafka_broker(s: Settings) -> Iterator[tuple[str, int]]:
    """The run's broker, started on first use; each user takes fresh topics (prefix)."""
    if not _BROKER:
        sys.path.insert(0, str(ROOT / "tools" / "kafka"))
        from broker import KafkaBroker  # type: ignore[import-not-found]

        broker = KafkaBroker(work_dir=s.work / "kafka", heap="1g")
        broker.start()
        _BROKER.append(broker)
    broker = _BROKER[0]
    assert broker.pid is not None
    pin_all(broker.pid, LOAD_CPU)  # the router gets core 0 to itself, as in every scenario
    yield broker.bootstrap, broker.pid


def close_broker() -> None:
    while _BROKER:
        _BROKER.pop().close()


def kafka_backend(s: Settings, bootstrap: str, name: str) -> dict[str, Any]:
    return {"type": "kafka", "bootstrap_servers": [bootstrap], "topic_prefix": f"bench-{name}",
            "group_id": f"bench-{name}", "partitions": s.kafka_partitions,
            **({"engine_batch_interval_seconds": s.kafka_batch_interval}
               if s.kafka_batch_interval is not None else {})}


def scenario_kafka(s: Settings) -> list[Row]:
    missing = kafka_available()
    if missing:
        return [Row("3 router kafka x1", "am10", note=missing),
                Row("3 router kafka x2", "am10", note=missing)]
    rows = []
    with kafka_broker(s) as (bootstrap, broker_pid):
        for n in (1, 2):
            sink, sink_port = start_sink(s)
            with running(sink):
                name = f"kafka-x{n}"
                ports = [free_port() for _ in range(n)]
                procs = []
                try:
                    for i, port in enumerate(ports):
                        cfg = router_config(s.work, f"{name}-{i}", port, sink_port,
                                            kafka_backend(s, bootstrap, name), False)
                        procs.append(router_proc(s, f"{name}-{i}", cfg, port))
                    with running(*procs):
                        partition_spread(ports, s.kafka_partitions)
                        pids = [p.pid for p in procs]
                        b0 = cpu_seconds(broker_pid)
                        result, cpu = run_load(load_spec(s, ports, "am10"), pids)
                        broker_cpu = cpu_seconds(broker_pid) - b0
                        replicas = replica_extra("kafka", ports, result,
                                                 result["requests"] * 10)
                except RuntimeError as exc:
                    rows.append(Row(f"3 router kafka x{n}", "am10", note=str(exc)[:200]))
                    continue
            alerts = result["requests"] * 10
            row = load_row(f"3 router kafka x{n}", result, cpu,
                           f"routers on core {SERVER_CPU}, broker on core {LOAD_CPU}")
            row.extra["broker_cpu_s_per_1k"] = broker_cpu / (alerts / 1000) if alerts else None
            row.extra.update(replicas)
            rows.append(row)
    return rows


def alertmanager_config(sink_port: int | None) -> str:
    if sink_port is None:  # ingest only: a realistic route to a receiver that sends nothing
        route = {"receiver": "null", "group_by": ["alertname"], "group_wait": "30s",
                 "group_interval": "5m", "repeat_interval": "4h"}
    else:  # one notification per alert, sent at once
        route = {"receiver": "sink", "group_by": ["..."], "group_wait": "0s",
                 "group_interval": "1h", "repeat_interval": "24h"}
    cfg = {
        "route": route,
        "receivers": [
            {"name": "null"},
            {"name": "sink", "webhook_configs": [
                {"url": f"http://127.0.0.1:{sink_port or 9}/am", "send_resolved": False}]},
        ],
    }
    return yaml.safe_dump(cfg, sort_keys=False)


def alertmanager_proc(s: Settings, name: str, sink_port: int | None) -> tuple[Proc, int]:
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        raise RuntimeError("prometheus-alertmanager not installed (make system-deps)")
    d = s.work / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "alertmanager.yml").write_text(alertmanager_config(sink_port))
    port = free_port()
    proc = Proc(name, [binary, f"--config.file={d / 'alertmanager.yml'}",
                       f"--storage.path={d / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                       "--cluster.listen-address=", "--log.level=warn"],
                s.work / f"{name}.log", SERVER_CPU)
    proc.wait_ready(f"http://127.0.0.1:{port}/-/ready")
    return proc, port


def alertmanager_version() -> str:
    binary = shutil.which("prometheus-alertmanager")
    if binary is None:
        return "not installed"
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    text = (out.stdout + out.stderr).split("\n", 1)[0]
    return text.replace("alertmanager, version ", "").split(" ")[0] or "unknown"


def scenario_alertmanager(s: Settings) -> list[Row]:
    rows = []
    for kind in ("amv2-1", "amv2-10", "amv2-100"):
        if not s.wants(kind.replace("amv2-", "am")):
            continue
        try:
            proc, port = alertmanager_proc(s, f"am-{kind}", None)
        except RuntimeError as exc:
            return [Row("4 alertmanager ingest", kind, note=str(exc)[:200])]
        with running(proc):
            result, cpu = run_load(load_spec(s, [port], kind), [proc.pid])
        rows.append(load_row(f"4 alertmanager {alertmanager_version()} ingest", result, cpu,
                             "POST /api/v2/alerts, null receiver"))
    return rows


def sink_latencies(sink_port: int, sends: dict[str, float], window: tuple[float, float],
                   settle: float) -> tuple[list[float], int, int, float]:
    """(latencies of alerts sent in the window, alerts sent, alerts arrived, arrivals/s in the
    window) after waiting up to `settle` s for stragglers."""
    expected = {int(k) for k in sends}
    deadline = time.monotonic() + settle
    last = -1
    stats: dict[str, Any] = {}
    while True:
        stats = http_json(f"http://127.0.0.1:{sink_port}/stats")
        arrived = len(stats["arrivals"])
        if arrived == last or time.monotonic() > deadline:
            break
        last = arrived
        time.sleep(1.0)
    lat = []
    in_window = 0
    for label, t in stats["arrivals"].items():
        seq = int(label.split("-", 1)[0], 16)
        if window[0] <= t <= window[1]:
            in_window += 1
        if seq in expected:
            lat.append(t - sends[str(seq)])
    rate = in_window / (window[1] - window[0])
    return lat, len(expected), len(lat), rate


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(p * len(s)))] * 1000


def _delivery_targets(s: Settings, backend: str, name: str, sink_port: int,
                      stack: contextlib.ExitStack,
                      replicas: int = 1) -> tuple[list[Proc], list[int], str]:
    """Start the system under test delivering to the sink: (processes, ports, kind prefix).
    Kafka: `replicas` router processes in one consumer group, each with its own port."""
    if backend == "alertmanager":
        proc, port = alertmanager_proc(s, name, sink_port)
        stack.enter_context(running(proc))
        return [proc], [port], "e2e-v2-"
    if backend == "embedded":
        cfg_backend = embedded_backend(s.work, name)
    else:
        bootstrap, _ = stack.enter_context(kafka_broker(s))
        cfg_backend = kafka_backend(s, bootstrap, name)
    procs, ports = [], []
    for i in range(replicas):
        port = free_port()
        proc_name = name if replicas == 1 else f"{name}-{i}"
        cfg = router_config(s.work, proc_name, port, sink_port, cfg_backend,
                            deliver_to_sink=True)
        proc = router_proc(s, proc_name, cfg, port)
        stack.enter_context(running(proc))
        procs.append(proc)
        ports.append(port)
    if backend == "kafka":
        partition_spread(ports, s.kafka_partitions)
    return procs, ports, "e2e-"


def owned_partitions(port: int) -> int | None:
    """`incident_router_engine_owned_partitions` of the router on `port` (None: no answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("incident_router_engine_owned_partitions "):
            return int(float(line.split()[1]))
    return None


def partition_spread(ports: list[int], partitions: int, within: float = 60.0) -> list[int]:
    """Wait until the replicas on `ports` own all `partitions` between them, each some (the
    group settled after the last one joined); their counts, in port order."""
    deadline = time.monotonic() + within
    counts: list[int | None] = []
    while time.monotonic() < deadline:
        counts = [owned_partitions(p) for p in ports]
        if all(c for c in counts) and sum(c or 0 for c in counts) == partitions and all(
                http_ok(f"http://127.0.0.1:{p}/readyz") for p in ports):
            return [c or 0 for c in counts]
        time.sleep(0.5)
    raise RuntimeError(f"kafka replicas did not settle on {partitions} partitions: {counts}")


def _systems(s: Settings) -> list[tuple[str, str, int]]:
    """(label, backend, router processes) of the delivery and e2e rows."""
    wanted = s.systems or {"embedded", "kafka", "alertmanager"}
    systems = []
    if "embedded" in wanted:
        systems.append(("router embedded", "embedded", 1))
    if "kafka" in wanted and kafka_available() is None:
        systems.extend(("router kafka" + (f" x{n}" if n > 1 else ""), "kafka", n)
                       for n in s.replicas)
    if "alertmanager" in wanted:
        systems.append((f"alertmanager {alertmanager_version()}", "alertmanager", 1))
    return systems


def replica_extra(backend: str, ports: list[int], result: dict[str, Any],
                  alerts: float) -> dict[str, Any]:
    """Kafka rows: partitions owned and CPU per 1,000 alerts of each replica (of all alerts
    the row counts: the replicas share them) and the CPU each used per second."""
    if backend != "kafka":
        return {}
    cpu = result.get("cpu_s_by_process", [])
    seconds = result.get("cpu_window_s", 0.0)
    return {
        "replicas": len(ports),
        "owned_partitions": [owned_partitions(p) for p in ports],
        "cpu_s_per_1k_by_replica": [c / (alerts / 1000) if alerts else None for c in cpu],
        "cpu_util_by_replica": [c / seconds if seconds > 0 else None for c in cpu],
    }


def scenario_delivery(s: Settings) -> list[Row]:
    """Closed-loop ingest of 10-alert requests, every alert its own notification to the sink:
    notifications delivered per second in the window, and POST-to-sink latency."""
    rows = []
    for label, backend, replicas in _systems(s):
        with contextlib.ExitStack() as stack:
            sink, sink_port = start_sink(s)
            stack.enter_context(running(sink))
            try:
                procs, ports, prefix = _delivery_targets(
                    s, backend, f"delivery-{backend}-x{replicas}", sink_port, stack, replicas)
            except RuntimeError as exc:
                rows.append(Row(f"4 delivery {label}", "e2e-10", note=str(exc)[:200]))
                continue
            pids = [p.pid for p in procs]
            result, cpu = run_load(load_spec(s, ports, f"{prefix}10", record_sends=True), pids)
            lat, sent, arrived, rate = sink_latencies(
                sink_port, result["sends"], (result["measure_start"], result["measure_end"]),
                settle=5)
            alerts = result["requests"] * 10
            rows.append(Row(
                f"4 delivery {label}", f"{prefix}10", rate, result["req_s"], pct(lat, 0.5),
                pct(lat, 0.99), result["peak_rss"] / 2**20,
                cpu / (alerts / 1000) if alerts else None,
                f"alerts/s = delivered/s; ingest {result['alerts_s']:.0f}/s; "
                f"{arrived}/{sent * 10} delivered within 5 s",
                {"ingest_alerts_s": result["alerts_s"], "sent": sent * 10,
                 "delivered": arrived, **replica_extra(backend, ports, result, alerts)},
            ))
    return rows


def kafka_stage_summary(s: Settings, backend: str, name: str, sink_port: int,
                        sends: dict[str, float]) -> dict[str, Any]:
    """Kafka rows: per-stage latency from the records' timestamps (bench/kafka_stages.py)."""
    if backend != "kafka" or not _BROKER:
        return {}
    arrivals = http_json(f"http://127.0.0.1:{sink_port}/stats")["arrivals"]
    try:
        cfg = kafka_backend(s, "", name)
        per_alert = stage_times(_BROKER[0].bootstrap, cfg["topic_prefix"], cfg["partitions"],
                                sends, arrivals, wall_offset())
    except Exception as exc:  # the row stands without its breakdown
        return {"error": f"{type(exc).__name__}: {exc}"[:200]}
    return summary(per_alert)


def scenario_e2e(s: Settings) -> list[Row]:
    """Open loop at a steady rate of 1-alert requests: POST to the sink's arrival, p50/p99."""
    rows = []
    variants: list[tuple[str, str, int, str | None]] = [
        (lb, b, n, None) for lb, b, n in _systems(s)]
    if any(b == "embedded" for _, b, _, _ in variants):
        # Each alert its own SEV1 incident too (timeline, SLA timers, incident view).
        variants.insert(1, ("router embedded, SEV1 incidents", "embedded", 1, "inc-"))
    for label, backend, replicas, kind in variants:
        with contextlib.ExitStack() as stack:
            sink, sink_port = start_sink(s)
            stack.enter_context(running(sink))
            try:
                name = f"e2e-{backend}" + ("-incidents" if kind else "") + (
                    f"-x{replicas}" if replicas > 1 else "")
                procs, ports, prefix = _delivery_targets(s, backend, name, sink_port, stack,
                                                         replicas)
            except RuntimeError as exc:
                rows.append(Row(f"5 e2e {label}", "e2e-1", note=str(exc)[:200]))
                continue
            prefix = kind or prefix
            pids = [p.pid for p in procs]
            spec = load_spec(s, ports, f"{prefix}1", record_sends=True, mode="open",
                             rate=s.e2e_rate, connections=64)
            result, cpu = run_load(spec, pids)
            lat, sent, arrived, rate = sink_latencies(
                sink_port, result["sends"], (result["measure_start"], result["measure_end"]),
                settle=10)
            stages = kafka_stage_summary(s, backend, name, sink_port, result["sends"])
            rows.append(Row(
                f"5 e2e @{s.e2e_rate:.0f}/s {label}", f"{prefix}1", rate, result["req_s"],
                pct(lat, 0.5), pct(lat, 0.99), result["peak_rss"] / 2**20,
                cpu / (result["requests"] / 1000) if result["requests"] else None,
                f"p50/p99 = POST to sink; HTTP p99 {result['p99_ms']:.1f} ms; "
                f"{arrived}/{sent} delivered" + (f"; {describe(stages)}" if stages else ""),
                {"http_p50_ms": result["p50_ms"], "http_p99_ms": result["p99_ms"],
                 "sent": sent, "delivered": arrived, "kafka_stages": stages,
                 "thread_cpu_s": result.get("thread_cpu_s", {}),
                 "alerts": result["requests"],
                 **replica_extra(backend, ports, result, result["requests"])},
            ))
    return rows


def scenario_state(s: Settings) -> list[Row]:
    cmd = [PY, str(BENCH / "state.py"), "--alerts", str(s.state_alerts), "--cpu",
           str(SERVER_CPU)]
    note = "restore = Engine.load of encoded states from memory (no Kafka backend)"
    with contextlib.ExitStack() as stack:
        if kafka_available() is None:
            bootstrap, _ = stack.enter_context(kafka_broker(s))
            cmd += ["--kafka", bootstrap]
            note = "restore = read compacted topic (aiokafka) + Engine.load"
        out = subprocess.run(cmd, capture_output=True, check=False, cwd=str(ROOT))
    if out.returncode != 0:
        return [Row("6 state", f"{s.state_alerts} alerts",
                    note=out.stderr.decode(errors="replace")[-300:])]
    r = json.loads(out.stdout)
    restore = r.get("kafka_restore_per_s", r["memory_load_per_s"])
    return [Row(
        "6 state", f"{s.state_alerts:,} alerts", restore, None, None, None,
        r["rss_delta_bytes"] / 2**20, None,
        f"{r['rss_per_alert']:.0f} B RSS/alert ({r['encoded_per_alert']:.0f} B encoded); "
        f"alerts/s = restore entries/s; apply {r['apply_per_s']:.0f}/s; {note}",
        r,
    )]


def scenario_console(s: Settings) -> list[Row]:
    """bench/console.py: console page times with 10,000 alerts and 1,000 incidents."""
    out = subprocess.run([PY, str(BENCH / "console.py"), "--json"], capture_output=True,
                         check=False, cwd=str(ROOT))
    if out.returncode != 0:
        return [Row("7 console", "pages", note=out.stderr.decode(errors="replace")[-300:])]
    return [Row("7 console", r["page"], p50_ms=r["p50_ms"], p99_ms=r["max_ms"],
                note=r.get("note") or "p99 column = worst of 20; server time + loopback")
            for r in json.loads(out.stdout)]


# The soak's second and last windows run again this many times (`soak_engine.py --replay`): on
# a shared machine the live windows move by 10-20% with the load of others.
SOAK_REPLAYS = 4


def scenario_soak(s: Settings) -> list[Row]:
    """bench/soak_engine.py on the server core: 30 simulated minutes of a constant
    Alertmanager-like stream with churn into the engine, a row per 5-minute window, and the
    last window against the second, replayed (issue 18: cost must not grow with time)."""
    cmd = [PY, str(BENCH / "soak_engine.py"), "--json", "--replay", str(SOAK_REPLAYS),
           "--cpu", str(SERVER_CPU)]
    out = subprocess.run(cmd, capture_output=True, check=False, cwd=str(ROOT))
    if out.returncode != 0:
        return [Row("8 soak", "engine", note=out.stderr.decode(errors="replace")[-300:])]
    r = json.loads(out.stdout)
    rows = [Row("8 soak", f"min {w['minutes']}", p99_ms=w["p99_ms"],
                cpu_s_per_1k=w["cpu_us_per_event"] / 1e3,
                note=f"{w['cpu_us_per_event']:.1f} µs CPU/event ({w['gc_share']:.0%} GC), "
                     f"{w['events']:,} events; p99 = one second's apply (CPU); "
                     f"{w['with_records']:,.0f} B/group",
                extra=w)
            for w in r["windows"]]
    replayed, live = r.get("replayed"), r.get("live")
    if replayed is not None and live is not None:
        rows.append(Row(
            "8 soak", "last / second",
            note=f"CPU per event {replayed['cpu']:.2f}, p99 {replayed['p99']:.2f}: the least "
                 f"CPU of each second over {r['replays']} interleaved replays of both windows; "
                 f"without the garbage collector's time CPU {replayed['cpu_without_gc']:.2f}, "
                 f"p99 {replayed['p99_without_gc']:.2f} (GC {replayed['gc_share_second']:.0%} -> "
                 f"{replayed['gc_share_last']:.0%} of the CPU); live windows: "
                 f"CPU {live['cpu']:.2f}, p99 {live['p99']:.2f}",
            extra={"replayed": replayed, "live": live, "replays": r["replays"]}))
    return rows


def scenario_stages(s: Settings) -> list[Row]:
    """The embedded e2e rows again under py-spy, their CPU per delivered alert split by stage
    (bench/stages.py): where the router's CPU goes, beside Alertmanager's in scenario 5."""
    if not PYSPY:
        return [Row("9 stages", "e2e-1", note="py-spy not found (make bench installs it)")]
    profiled = replace(s, profile="py-spy", systems={"embedded"}, stamp=f"{s.stamp}-stages")
    rows: list[Row] = []
    for row in scenario_e2e(profiled):
        kind = row.payload
        name = "e2e-embedded-incidents" if "incidents" in row.scenario else "e2e-embedded"
        profile = s.results / f"{profiled.stamp}-{name}.txt"
        deadline = time.monotonic() + 15  # py-spy writes its file once the router is gone
        while not profile.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        if not profile.exists() or not row.cpu_s_per_1k:
            rows.append(Row(f"9 stages {kind}", "-", note=f"no profile: {row.note}"[:200]))
            continue
        us = per_alert_us(row.__dict__, stage_samples(profile)[0])
        total = sum(us.values())
        for stage in STAGE_ORDER:
            rows.append(Row(f"9 stages {kind}", stage, cpu_s_per_1k=us.get(stage, 0.0) / 1e3,
                            note=f"{us.get(stage, 0.0) / total:.1%} of {total:.0f} µs CPU "
                                 f"per delivered alert ({row.alerts_s or 0:,.0f}/s, py-spy)"))
    return rows


RUNNERS: dict[str, Callable[[Settings], list[Row]]] = {
    "ceiling": scenario_ceiling,
    "embedded": scenario_embedded,
    "kafka": scenario_kafka,
    "alertmanager": scenario_alertmanager,
    "delivery": scenario_delivery,
    "e2e": scenario_e2e,
    "state": scenario_state,
    "console": scenario_console,
    "soak": scenario_soak,
    "stages": scenario_stages,
}


# --- report --------------------------------------------------------------------------------


def find(rows: list[Row], scenario: str, payload: str) -> Row | None:
    for r in rows:
        if r.scenario.startswith(scenario) and r.payload == payload and r.alerts_s is not None:
            return r
    return None


def ratios(rows: list[Row]) -> list[tuple[str, str, str, bool | None]]:
    """(what, value, target, met) for the issue's targets."""
    out: list[tuple[str, str, str, bool | None]] = []

    def ratio(what: str, a: Row | None, b: Row | None, target: float) -> None:
        if a is None or b is None or not b.alerts_s or a.alerts_s is None:
            out.append((what, "n/a", f">= {target:.2f}", None))
            return
        v = a.alerts_s / b.alerts_s
        out.append((what, f"{v:.2f}", f">= {target:.2f}", v >= target))

    ceiling = find(rows, "1 ceiling", "am10")
    ratio("embedded / ceiling alerts/s (10-alert)", find(rows, "2 router embedded", "am10"),
          ceiling, 0.35)
    ratio("kafka x1 / ceiling alerts/s (10-alert)", find(rows, "3 router kafka x1", "am10"),
          ceiling, 0.25)
    for n in (1, 10, 100):
        ratio(f"embedded / alertmanager ingest ({n}-alert)",
              find(rows, "2 router embedded", f"am{n}"),
              find(rows, "4 alertmanager", f"amv2-{n}"), 1.0)
    ratio("embedded / alertmanager delivered/s (1 notification per alert)",
          find(rows, "4 delivery router embedded", "e2e-10"),
          find(rows, "4 delivery alertmanager", "e2e-v2-10"), 1.0)
    e2e_emb = next((r for r in rows if r.scenario.startswith("5 e2e")
                    and r.scenario.endswith("router embedded") and r.payload == "e2e-1"
                    and r.alerts_s is not None), None)
    e2e_am = find(rows, "5 e2e", "e2e-v2-1")
    e2e_kafka = next((r for r in rows if r.scenario.startswith("5 e2e")
                      and "kafka" in r.scenario and r.p99_ms is not None), None)
    for what, row, limit in (("e2e p99 embedded (ms)", e2e_emb, 25.0),
                             ("e2e p99 kafka (ms)", e2e_kafka, 100.0)):
        if row is None or row.p99_ms is None:
            out.append((what, "n/a", f"< {limit:.0f}", None))
        else:
            out.append((what, f"{row.p99_ms:.1f}", f"< {limit:.0f}", row.p99_ms < limit))
    if e2e_emb and e2e_am and e2e_emb.p99_ms is not None and e2e_am.p99_ms:
        v = e2e_emb.p99_ms / e2e_am.p99_ms
        out.append(("e2e p99 embedded / alertmanager", f"{v:.2f}", "<= 2.00", v <= 2.0))
    else:
        out.append(("e2e p99 embedded / alertmanager", "n/a", "<= 2.00", None))
    state = next((r for r in rows if r.scenario == "6 state" and r.extra), None)
    if state is not None:
        per = state.extra["rss_per_alert"]
        out.append(("engine RSS per active alert (B)", f"{per:.0f}", "<= 1024", per <= 1024))
        rate = state.alerts_s or 0
        out.append(("restore entries/s", f"{rate:,.0f}", ">= 100,000", rate >= 100_000))
    else:
        out.append(("engine RSS per active alert (B)", "n/a", "<= 1024", None))
        out.append(("restore entries/s", "n/a", ">= 100,000", None))
    soak = next((r for r in rows if r.scenario == "8 soak" and "replayed" in r.extra), None)
    for what, field_ in (("soak CPU per event, last / second window", "cpu"),
                         ("soak p99, last / second window", "p99")):
        if soak is None:
            out.append((what, "n/a", "<= 1.10", None))
        else:
            v = soak.extra["replayed"][field_]
            out.append((what, f"{v:.2f}", "<= 1.10", v <= 1.10))
    return out


def fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def table(rows: list[Row]) -> str:
    head = ("scenario", "payload", "alerts/s", "req/s", "p50 ms", "p99 ms", "peak RSS MiB",
            "CPU s/1k alerts", "note")
    lines = [
        (r.scenario, r.payload, fmt(r.alerts_s, ",.0f"), fmt(r.req_s, ",.0f"),
         fmt(r.p50_ms, ".1f"), fmt(r.p99_ms, ".1f"), fmt(r.peak_rss_mb, ",.0f"),
         fmt(r.cpu_s_per_1k, ".3f"), r.note)
        for r in rows
    ]
    widths = [max(len(h), *(len(x[i]) for x in lines)) if lines else len(h)
              for i, h in enumerate(head)]
    widths[-1] = len(head[-1])

    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), sep, *(line(x) for x in lines)])


def ratio_table(items: list[tuple[str, str, str, bool | None]]) -> str:
    out = ["| target | value | goal | met |", "|---|---|---|---|"]
    for what, value, goal, met in items:
        out.append(f"| {what} | {value} | {goal} | "
                   f"{'n/a' if met is None else ('yes' if met else 'NO')} |")
    return "\n".join(out)


def machine() -> dict[str, Any]:
    model = platform.processor()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"nproc": os.cpu_count(), "cpu": model, "loadavg_at_start": os.getloadavg(),
            "python": platform.python_version(), "server_cpu": SERVER_CPU,
            "load_cpu": LOAD_CPU, "alertmanager": alertmanager_version()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="about a minute: a smoke run")
    parser.add_argument("--warmup", type=float)
    parser.add_argument("--duration", type=float)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--e2e-rate", type=float, default=1000.0)
    parser.add_argument("--state-alerts", type=int)
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(SCENARIOS)}")
    parser.add_argument("--skip", default="", help="comma-separated scenarios to leave out")
    parser.add_argument("--payloads", help="only these payload kinds in ceiling/embedded/"
                        "alertmanager, e.g. am10,storm")
    parser.add_argument("--systems", help="delivery/e2e only for these of embedded,kafka,"
                        "alertmanager")
    parser.add_argument("--kafka-partitions", type=int, default=12,
                        help="partitions of the Kafka rows' topics (default 12)")
    parser.add_argument("--kafka-batch-interval", type=float,
                        help="the Kafka rows' engine_batch_interval_seconds")
    parser.add_argument("--replicas", default="1",
                        help="Kafka delivery/e2e rows with these router process counts, "
                        "e.g. 1,2 (default 1)")
    parser.add_argument("--profile", choices=("cprofile", "py-spy"),
                        help="profile every router process (files next to the JSON)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()

    quick = args.quick
    warmup = args.warmup if args.warmup is not None else (1.0 if quick else 5.0)
    duration = args.duration if args.duration is not None else (3.0 if quick else 10.0)
    state_alerts = args.state_alerts or (50_000 if quick else 1_000_000)
    chosen = [x for x in (args.only.split(",") if args.only else SCENARIOS)
              if x not in args.skip.split(",")]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    payload_set = set(args.payloads.split(",")) if args.payloads else None
    if quick and not args.only:
        # e2e covers delivery in a smoke run; the soak takes minutes whatever its settings;
        # the stages re-run e2e under a profiler.
        chosen = [c for c in chosen if c not in ("delivery", "soak", "stages")]
    if quick and payload_set is None:
        payload_set = {"am10", "storm", "sns"}

    results = BENCH / "results"
    results.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    s = Settings(warmup, duration, args.connections, args.e2e_rate, state_alerts,
                 sns_pool=1000 if quick else 4000, profile=args.profile, work=work,
                 results=results, stamp=stamp,
                 payloads=payload_set,
                 systems=set(args.systems.split(",")) if args.systems else None,
                 kafka_partitions=args.kafka_partitions,
                 kafka_batch_interval=args.kafka_batch_interval,
                 replicas=tuple(int(n) for n in args.replicas.split(",")))
    info = machine()
    print(f"bench: {info['nproc']} CPUs ({info['cpu']}), load {info['loadavg_at_start'][0]:.2f};"
          f" server on core {SERVER_CPU}, load on core {LOAD_CPU}; warm-up {warmup:g} s,"
          f" measured {duration:g} s per run; scenarios: {', '.join(chosen)}", flush=True)
    rows: list[Row] = []
    started = time.monotonic()
    try:
        for name in chosen:
            t = time.monotonic()
            try:
                new = RUNNERS[name](s)
            except Exception as exc:  # one broken scenario must not lose the others' rows
                new = [Row(name, "-", note=f"failed: {exc.__class__.__name__}: {exc}"[:300])]
            rows.extend(new)
            for r in new:
                print(f"  {r.scenario:<38} {r.payload:<14} {fmt(r.alerts_s, ',.0f'):>10} "
                      f"alerts/s  p99 {fmt(r.p99_ms, '.1f'):>7} ms  {r.note}", flush=True)
            print(f"  ({name}: {time.monotonic() - t:.0f} s)", flush=True)
    finally:
        close_broker()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    items = ratios(rows)
    print()
    print(table(rows))
    print()
    print(ratio_table(items))
    out = results / f"{stamp}.json"
    out.write_text(json.dumps({
        "date": stamp, "machine": info, "command": " ".join(["bench/run.py", *sys.argv[1:]]),
        "settings": {"warmup_s": warmup, "duration_s": duration,
                     "connections": args.connections, "e2e_rate": args.e2e_rate,
                     "state_alerts": state_alerts},
        "elapsed_s": time.monotonic() - started,
        "rows": [r.__dict__ for r in rows],
        "ratios": [{"target": w, "value": v, "goal": g, "met": m} for w, v, g, m in items],
    }, indent=1, default=str))
    print(f"\nwrote {out.relative_to(ROOT)} ({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
