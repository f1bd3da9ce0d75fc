"""Load generator: a minimal keep-alive HTTP/1.1 client on asyncio protocols, one process.

    .venv/bin/python bench/loadgen.py < spec.json     # prints "measure", "done", result JSON

Run by bench/run.py in its own process, pinned to the core the server under test does not
use. aiohttp's client tops out at a few thousand requests/s on one core, well below what a bare
aiohttp server answers, so this client writes pre-built request bytes and parses only the
status line, Content-Length (or chunked framing) of each answer.

Modes:
- `closed`: `connections` workers each send the next request as soon as the previous answer
  arrives (throughput).
- `open`: requests are scheduled at a fixed `rate` whatever the server does (latency); a
  request that waits for a free connection counts its latency from its scheduled time, so a
  slow server cannot hide its queueing (no coordinated omission).

Bounded: only 127.0.0.1, at most `warmup + duration` seconds and `max_requests` requests.
Latencies are recorded for requests sent in the measured window (after `warmup`).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from array import array
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import payloads

from router.cli import new_event_loop

GRACE = 5.0  # seconds after the window that in-flight requests may still complete


class ProtocolError(Exception):
    pass


class Conn(asyncio.Protocol):
    """One keep-alive connection; `request` sends bytes and resolves with the status code."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ProtocolError("connection lost"))

    def request(self, data: bytes) -> asyncio.Future[int]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter

    def data_received(self, data: bytes) -> None:
        self.buf += data
        status = self._parse()
        if status is not None and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(status)

    def _parse(self) -> int | None:
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(buf[:end]).lower()
        status = int(head[9:12])
        body_start = end + 4
        i = head.find(b"\r\ncontent-length:")
        if i >= 0:
            j = head.find(b"\r\n", i + 2)
            length = int(head[i + 17 : j if j >= 0 else len(head)])
            if len(buf) < body_start + length:
                return None
            del buf[: body_start + length]
            return status
        if b"\r\ntransfer-encoding: chunked" in head:
            pos = body_start
            while True:
                nl = buf.find(b"\r\n", pos)
                if nl < 0:
                    return None
                size = int(bytes(buf[pos:nl]).split(b";")[0], 16)
                if size == 0:
                    if len(buf) < nl + 4:
                        return None
                    del buf[: nl + 4]
                    return status
                pos = nl + 2 + size + 2
                if len(buf) < pos:
                    return None
        del buf[:body_start]  # no body (e.g. 204)
        return status


def percentiles(values: array[float] | list[float]) -> dict[str, float]:
    if not values:
        return {"p50_ms": 0.0, "p90_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
    s = sorted(values)

    def q(p: float) -> float:
        return s[min(len(s) - 1, int(p * len(s)))] * 1000

    return {"p50_ms": q(0.50), "p90_ms": q(0.90), "p99_ms": q(0.99), "max_ms": s[-1] * 1000}


class LoadGen:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.targets: list[tuple[str, int]] = [(h, int(p)) for h, p in spec["targets"]]
        for host, _ in self.targets:
            if host != "127.0.0.1":
                raise SystemExit("loadgen: only 127.0.0.1 targets are allowed")
        pspec = spec["payload"]
        self.payload = payloads.build(pspec["kind"], cert_url=pspec.get("cert_url", ""),
                                      sns_pool=int(pspec.get("sns_pool", 2000)),
                                      key_dir=pspec.get("key_dir", ""))
        self.path = spec.get("path") or self.payload.path
        headers = {"Content-Type": self.payload.content_type, **self.payload.headers,
                   **spec.get("headers", {})}
        self.heads = [
            (f"POST {self.path} HTTP/1.1\r\nHost: {h}:{p}\r\n"
             + "".join(f"{k}: {v}\r\n" for k, v in headers.items())).encode()
            for h, p in self.targets
        ]
        self.warmup = float(spec.get("warmup", 2.0))
        self.duration = float(spec.get("duration", 10.0))
        self.max_requests = int(spec.get("max_requests", 10_000_000))
        self.seq = int(spec.get("seq_start", 0))
        self.latencies: array[float] = array("d")
        self.status: Counter[int] = Counter()
        self.errors = 0
        self.sent_measured = 0
        self.done_measured = 0
        self.sends: dict[int, float] = {}
        self.record_sends = bool(spec.get("record_sends"))

    def request_bytes(self, seq: int, target: int) -> bytes:
        body = self.payload.body(seq)
        return self.heads[target] + b"Content-Length: %d\r\n\r\n" % len(body) + body

    async def connect(self, target: int) -> Conn:
        host, port = self.targets[target]
        loop = asyncio.get_running_loop()
        transport, conn = await loop.create_connection(Conn, host, port)
        # uvloop may call connection_made after create_connection returns.
        conn.transport = transport
        return conn

    async def run(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        self.t0 = time.monotonic()
        self.t_measure = self.t0 + self.warmup
        self.t_end = self.t_measure + self.duration
        loop.call_at(self._loop_time(self.t_measure), lambda: print("measure", flush=True))
        if self.spec.get("mode", "closed") == "open":
            await self.run_open()
        else:
            await self.run_closed()
        print("done", flush=True)
        elapsed = min(time.monotonic(), self.t_end) - self.t_measure
        n = len(self.latencies)
        result: dict[str, Any] = {
            "kind": self.payload.kind,
            "alerts_per_request": self.payload.alerts_per_request,
            "elapsed_s": elapsed,
            "requests": n,
            "ok": sum(v for k, v in self.status.items() if 200 <= k < 300),
            "status": {str(k): v for k, v in self.status.items()},
            "errors": self.errors,
            "req_s": n / elapsed if elapsed > 0 else 0.0,
            "alerts_s": n * self.payload.alerts_per_request / elapsed if elapsed > 0 else 0.0,
            "measure_start": self.t_measure,
            "measure_end": self.t_end,
            **percentiles(self.latencies),
        }
        if self.record_sends:
            result["sends"] = self.sends
        return result

    def _loop_time(self, mono: float) -> float:
        loop = asyncio.get_running_loop()
        return loop.time() + (mono - time.monotonic())

    async def _bounded(self, answer: asyncio.Future[int]) -> int:
        """An answer, or TimeoutError once the run is `GRACE` s past its end (bounded runs)."""
        return await asyncio.wait_for(answer, max(0.1, self.t_end + GRACE - time.monotonic()))

    def _record(self, seq: int, sent: float, status: int | None) -> None:
        now = time.monotonic()
        if sent < self.t_measure or now > self.t_end + GRACE:
            return
        if status is None:
            self.errors += 1
            return
        self.status[status] += 1
        self.latencies.append(now - sent)

    # --- closed loop -----------------------------------------------------------------------

    async def run_closed(self) -> None:
        n = int(self.spec.get("connections", 32))
        await asyncio.gather(*(self._worker(i % len(self.targets)) for i in range(n)))

    async def _worker(self, target: int) -> None:
        conn: Conn | None = None
        while True:
            now = time.monotonic()
            if now >= self.t_end or self.seq >= self.max_requests:
                break
            seq = self.seq
            self.seq += 1
            data = self.request_bytes(seq, target)
            if self.record_sends and now >= self.t_measure:
                self.sends[seq] = now
            status: int | None = None
            try:
                if conn is None or conn.closed:
                    conn = await self.connect(target)
                status = await self._bounded(conn.request(data))
            except (OSError, ProtocolError, TimeoutError):
                if conn is not None and conn.transport is not None:
                    conn.transport.close()
                conn = None
                await asyncio.sleep(0.01)
            self._record(seq, now, status)
        if conn is not None and conn.transport is not None:
            conn.transport.close()

    # --- open loop -------------------------------------------------------------------------

    async def run_open(self) -> None:
        rate = float(self.spec["rate"])
        conns = int(self.spec.get("connections", 64))
        queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
        workers = [asyncio.create_task(self._open_worker(queue, i % len(self.targets)))
                   for i in range(conns)]
        i = 0
        start = time.monotonic()
        while True:
            due = start + i / rate
            if due >= self.t_end or self.seq >= self.max_requests:
                break
            now = time.monotonic()
            if due > now:
                await asyncio.sleep(due - now)
            seq = self.seq
            self.seq += 1
            if self.record_sends and due >= self.t_measure:
                self.sends[seq] = due
            queue.put_nowait((seq, due))
            i += 1
        for _ in workers:
            queue.put_nowait(None)
        # Let what is in flight finish (bounded).
        await asyncio.wait(workers, timeout=10)
        for w in workers:
            w.cancel()

    async def _open_worker(self, queue: asyncio.Queue[tuple[int, float] | None],
                           target: int) -> None:
        conn: Conn | None = None
        while True:
            item = await queue.get()
            if item is None:
                break
            seq, due = item
            status: int | None = None
            try:
                if conn is None or conn.closed:
                    conn = await self.connect(target)
                status = await self._bounded(conn.request(self.request_bytes(seq, target)))
            except (OSError, ProtocolError, TimeoutError):
                if conn is not None and conn.transport is not None:
                    conn.transport.close()
                conn = None
            self._record(seq, due, status)
        if conn is not None and conn.transport is not None:
            conn.transport.close()


def main() -> None:
    spec = orjson.loads(sys.stdin.buffer.read())
    cpu = spec.get("cpu")
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(cpu)})
    gen = LoadGen(spec)
    loop = new_event_loop(os.environ.get("LOADGEN_LOOP", "asyncio"))
    try:
        result = loop.run_until_complete(gen.run())
    finally:
        loop.close()
    sys.stdout.buffer.write(orjson.dumps(result, option=orjson.OPT_NON_STR_KEYS) + b"\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
