"""A real single-node Apache Kafka broker (KRaft combined mode) for tests, without Docker.

The broker jars come from Maven Central through `tools/kafka/pom.xml` into a cache directory;
the broker runs as `java -cp '<cache>/libs/*' kafka.Kafka server.properties` on free
127.0.0.1 ports. Standard library only, so it works before (and outside) the project venv.

    python tools/kafka/broker.py fetch     # download the jars once (skipped when complete)
    python tools/kafka/broker.py start     # background broker, prints the bootstrap address
    python tools/kafka/broker.py status    # exit 0 and print the bootstrap when it answers
    python tools/kafka/broker.py stop

    with KafkaBroker() as broker:          # Python API (tests): start/stop/kill/restart
        bootstrap = broker.bootstrap       # "127.0.0.1:PORT"

Environment: KAFKA_VERSION (default below), KAFKA_CACHE_DIR (default
$XDG_CACHE_HOME/incident-router/kafka-<version>), KAFKA_HEAP (default 512m), JAVA (java binary).
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from pathlib import Path
from types import TracebackType

DEFAULT_VERSION = "4.1.2"
POM = Path(__file__).resolve().parent / "pom.xml"
COMPLETE_MARKER = ".complete"


class BrokerError(RuntimeError):
    """The broker could not be fetched or started; the message carries the log tail."""


# --- fetching --------------------------------------------------------------------------------


def kafka_version() -> str:
    return os.environ.get("KAFKA_VERSION", DEFAULT_VERSION)


def cache_dir(version: str | None = None) -> Path:
    explicit = os.environ.get("KAFKA_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "incident-router" / f"kafka-{version or kafka_version()}"


def _major(version: str) -> int:
    return int(version.split(".", 1)[0])


def fetch(version: str | None = None, cache: Path | None = None) -> Path:
    """Download kafka_2.13 and its runtime jars into `<cache>/libs`; return that directory.

    A marker file records a complete fetch (with the version), so a cut-off download is redone
    rather than half-used.
    """
    version = version or kafka_version()
    cache = cache or cache_dir(version)
    cache.mkdir(parents=True, exist_ok=True)
    # Several test sessions may start at once; one fetches while the others wait for it.
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _fetch_locked(version, cache)


def _fetch_locked(version: str, cache: Path) -> Path:
    libs = cache / "libs"
    marker = cache / COMPLETE_MARKER
    if marker.is_file() and marker.read_text().strip() == version and any(libs.glob("*.jar")):
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError("cannot fetch Kafka: `mvn` is not on PATH (install Maven 3.8+)")
    staging = Path(tempfile.mkdtemp(prefix="libs-", dir=cache))
    profile = "kafka3" if _major(version) < 4 else "kafka4"
    cmd = [
        mvn, "-q", "-B", "-f", str(POM), f"-P{profile}", f"-Dkafka.version={version}",
        "dependency:copy-dependencies", f"-DoutputDirectory={staging}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
        shutil.rmtree(staging, ignore_errors=True)
        out = (proc.stdout + proc.stderr).strip().splitlines()[-40:]
        raise BrokerError(f"mvn could not fetch Kafka {version}:\n" + "\n".join(out))
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    marker.write_text(version + "\n")
    return libs


# --- config ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_properties(data_dir: Path, port: int, controller_port: int) -> str:
    """KRaft combined mode, one node, internal topics sized for a single broker.

    A static voter set (controller.quorum.voters) works on 3.9 and 4.x alike and needs no
    `--standalone` at format time.
    """
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        # Without these, groups and transactions wait forever for replicas that never come.
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
        # Tests use small compacted topics; let the cleaner look at them promptly.
        "log.cleaner.backoff.ms": "1000",
        # After a kill the old registration blocks the new one until its session expires (default
        # 9 s); shorter keeps kill-and-restart tests quick with margin for a busy machine.
        "broker.session.timeout.ms": "4000",
        "broker.heartbeat.interval.ms": "500",
        "num.network.threads": "2",
        "num.io.threads": "2",
        "num.recovery.threads.per.data.dir": "1",
    }
    return "".join(f"{k}={v}\n" for k, v in props.items())


LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = STDOUT
logger.state.name = state.change.logger
logger.state.level = warn
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = warn
"""

LOG4J1 = """\
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.authorizer.logger=WARN
"""


def new_cluster_id() -> str:
    """What `kafka-storage.sh random-uuid` prints: 16 random bytes, base64url, no padding."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):  # Kafka avoids ids that look like CLI flags
            return cid


# --- readiness probe: one Metadata v4 request over a plain socket ----------------------------


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        buf += chunk
    return buf


def metadata_brokers(host: str, port: int, timeout: float = 2.0) -> list[tuple[int, str, int]]:
    """Ask the broker for cluster metadata; return its live brokers as (node_id, host, port).

    Metadata v4 is the oldest version every broker from 3.x to 4.x still answers.
    """
    client_id = b"incident-router-probe"
    header = struct.pack(">hhih", 3, 4, 1, len(client_id)) + client_id
    body = struct.pack(">i?", -1, False)  # all topics (null array), no auto-creation
    request = header + body
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        data = _recv_exact(sock, size)
    pos = 4 + 4  # correlation id, throttle_time_ms
    (count,) = struct.unpack_from(">i", data, pos)
    pos += 4
    brokers = []
    for _ in range(max(count, 0)):
        node_id, hlen = struct.unpack_from(">ih", data, pos)
        pos += 6
        bhost = data[pos : pos + hlen].decode()
        pos += hlen
        (bport, rlen) = struct.unpack_from(">ih", data, pos)
        pos += 6 + max(rlen, 0)
        brokers.append((node_id, bhost, bport))
    return brokers


def is_ready(host: str, port: int) -> bool:
    try:
        return any(p == port for _, _, p in metadata_brokers(host, port))
    except (OSError, struct.error, UnicodeDecodeError):
        return False


# --- the broker process ----------------------------------------------------------------------


def _set_pdeathsig() -> None:
    """Child side: die with the parent (a killed pytest must not leave a JVM behind)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def tail(path: Path, lines: int = 60) -> str:
    try:
        with path.open("r", encoding="utf-8", errors="replace") as f:
            return "".join(deque(f, maxlen=lines))
    except OSError:
        return "(no broker log)"


class KafkaBroker:
    """One broker process. Ports and data survive stop()/kill() so restart() comes back as the
    same cluster at the same address."""

    def __init__(
        self,
        version: str | None = None,
        *,
        work_dir: Path | None = None,
        cache: Path | None = None,
        heap: str | None = None,
        startup_timeout: float = 120.0,
        tie_to_parent: bool = True,
    ) -> None:
        self.version = version or kafka_version()
        self.cache = cache or cache_dir(self.version)
        self._own_work_dir = work_dir is None
        self.work_dir = work_dir or Path(tempfile.mkdtemp(prefix="kafka-test-"))
        self.heap = heap or os.environ.get("KAFKA_HEAP", "512m")
        self.startup_timeout = startup_timeout
        self.tie_to_parent = tie_to_parent
        self.port = 0
        self.controller_port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._formatted = False

    # paths
    @property
    def data_dir(self) -> Path:
        return self.work_dir / "data"

    @property
    def log_path(self) -> Path:
        return self.work_dir / "broker.log"

    @property
    def properties_path(self) -> Path:
        return self.work_dir / "server.properties"

    @property
    def bootstrap(self) -> str:
        if not self.port:
            raise BrokerError("broker has not been started")
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        return tail(self.log_path, lines)

    # lifecycle
    def start(self) -> str:
        """Fetch if needed, configure and format on first start, launch, wait until ready."""
        if self.running():
            return self.bootstrap
        libs = fetch(self.version, self.cache)
        if not self._formatted:
            self._configure(libs)
        self._launch(libs)
        self._wait_ready()
        return self.bootstrap

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful shutdown (SIGTERM, then SIGKILL if it hangs). Data and ports are kept."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            self._proc = None
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._proc = None

    def kill(self) -> None:
        """SIGKILL: a crash, as far as clients and the on-disk log are concerned."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        self._proc = None

    def restart(self) -> str:
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop and, when this object created the work directory, delete it."""
        self.stop()
        if self._own_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> KafkaBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # internals
    def _java(self) -> str:
        java = os.environ.get("JAVA") or shutil.which("java")
        if not java:
            raise BrokerError("cannot start Kafka: `java` (JDK 17+) is not on PATH")
        return java

    def _jvm_args(self, libs: Path) -> list[str]:
        if _major(self.version) >= 4:
            log_file, log_prop = self.work_dir / "log4j2.properties", "-Dlog4j2.configurationFile="
            log_file.write_text(LOG4J2)
        else:
            log_file, log_prop = self.work_dir / "log4j.properties", "-Dlog4j.configuration=file:"
            log_file.write_text(LOG4J1)
        return [
            self._java(),
            f"-Xmx{self.heap}",
            "-Xms64m",
            # Startup speed over peak throughput: tests push little data on a shared machine.
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            f"{log_prop}{log_file}",
            "-cp",
            str(libs / "*"),
        ]

    def _configure(self, libs: Path) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)
        self.port, self.controller_port = free_port(), free_port()
        while self.controller_port == self.port:
            self.controller_port = free_port()
        self.properties_path.write_text(
            server_properties(self.data_dir, self.port, self.controller_port)
        )
        cmd = [
            *self._jvm_args(libs), "kafka.tools.StorageTool", "format",
            "-t", new_cluster_id(), "-c", str(self.properties_path),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            out = (proc.stdout + proc.stderr).strip().splitlines()[-60:]
            raise BrokerError("kafka StorageTool format failed:\n" + "\n".join(out))
        self._formatted = True

    def _launch(self, libs: Path) -> None:
        cmd = [*self._jvm_args(libs), "kafka.Kafka", str(self.properties_path)]
        tie = self.tie_to_parent and threading.current_thread() is threading.main_thread()
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.work_dir,
                start_new_session=True,
                # PDEATHSIG fires when the launching *thread* exits, so only from the main one.
                preexec_fn=_set_pdeathsig if tie else None,
            )
        atexit.register(self._atexit_kill, self._proc)

    @staticmethod
    def _atexit_kill(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.kill()
            with contextlib.suppress(Exception):
                proc.wait(10)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                code = None if proc is None else proc.returncode
                self._proc = None
                raise BrokerError(
                    f"Kafka {self.version} exited during startup (code {code}); "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            if is_ready("127.0.0.1", self.port):
                return
            time.sleep(0.25)
        self.kill()
        raise BrokerError(
            f"Kafka {self.version} did not answer metadata on 127.0.0.1:{self.port} within "
            f"{self.startup_timeout:.0f}s; log {self.log_path}:\n{self.log_tail()}"
        )


# --- CLI: a detached broker whose state lives in <cache>/run ---------------------------------


def _state_file(run_dir: Path) -> Path:
    return run_dir / "broker.json"


def _pid_is_our_broker(pid: int, properties: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"kafka.Kafka" in cmdline and properties.encode() in cmdline


def _cli_fetch(_: argparse.Namespace) -> int:
    started = time.monotonic()
    libs = fetch()
    print(f"kafka {kafka_version()} jars in {libs} ({time.monotonic() - started:.1f}s)")
    return 0


def _cli_start(args: argparse.Namespace) -> int:
    run_dir = Path(args.dir) if args.dir else cache_dir() / "run"
    state = _state_file(run_dir)
    if state.is_file():
        info = json.loads(state.read_text())
        if _pid_is_our_broker(info["pid"], info["properties"]):
            print(info["bootstrap"])
            return 0
    # A fresh cluster each time (format wipes <dir>/data); never delete the directory itself.
    (run_dir / "broker.log").unlink(missing_ok=True)
    started = time.monotonic()
    broker = KafkaBroker(work_dir=run_dir, tie_to_parent=False)
    try:
        bootstrap = broker.start()
    except BrokerError as exc:
        print(exc, file=sys.stderr)
        return 1
    atexit.unregister(KafkaBroker._atexit_kill)  # the CLI leaves the broker running
    state.write_text(json.dumps({
        "pid": broker.pid, "bootstrap": bootstrap, "properties": str(broker.properties_path),
        "log": str(broker.log_path),
    }))
    print(bootstrap)
    print(f"started in {time.monotonic() - started:.1f}s; log {broker.log_path}", file=sys.stderr)
    return 0


def _cli_stop(args: argparse.Namespace) -> int:
    run_dir = Path(args.dir) if args.dir else cache_dir() / "run"
    state = _state_file(run_dir)
    if not state.is_file():
        print("not running")
        return 0
    info = json.loads(state.read_text())
    pid = int(info["pid"])
    if _pid_is_our_broker(pid, info["properties"]):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while _pid_is_our_broker(pid, info["properties"]) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _pid_is_our_broker(pid, info["properties"]):
            os.kill(pid, signal.SIGKILL)
    state.unlink()
    print("stopped")
    return 0


def _cli_status(args: argparse.Namespace) -> int:
    run_dir = Path(args.dir) if args.dir else cache_dir() / "run"
    state = _state_file(run_dir)
    if not state.is_file():
        print("not running")
        return 1
    info = json.loads(state.read_text())
    host, _, port = info["bootstrap"].rpartition(":")
    alive = _pid_is_our_broker(int(info["pid"]), info["properties"])
    if alive and is_ready(host, int(port)):
        print(f"running {info['bootstrap']} (pid {info['pid']}, log {info['log']})")
        return 0
    print(f"not answering {info['bootstrap']} (pid {info['pid']} alive: {alive})")
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("command", choices=["fetch", "start", "stop", "status"])
    parser.add_argument("--dir", help="work dir of the CLI broker (default <cache>/run)")
    args = parser.parse_args(argv)
    handlers = {"fetch": _cli_fetch, "start": _cli_start, "stop": _cli_stop,
                "status": _cli_status}
    try:
        return handlers[args.command](args)
    except BrokerError as exc:
        print(exc, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
