"""State size and restore time of the engine, in its own process (clean RSS).

    .venv/bin/python bench/state.py --alerts 1000000 [--group-size 1] [--kafka BOOTSTRAP]
        [--compress-level N]

1. RSS per active alert: RSS before, then `Engine.apply` of `--alerts` firing alerts (in
   batches, as a backend feeds it) in groups of `--group-size` alerts, then RSS after; the
   delta divided by the alert count. Alerts are built with `model_construct` once per batch and
   dropped after it, so what stays is the engine's own state.
2. Restore: the stored states (`Engine.encoded`, the bytes the changelog holds) are
   - with `--kafka`: produced to a fresh compacted topic, then read back from the beginning by
     an aiokafka consumer and fed to `Engine.load` in a new engine: entries/s of read + load;
   - always: fed from memory to `Engine.load` in a new engine: entries/s of load alone.
`--compress-level` is passed to `Engine` (default: the engine's own default). Prints one JSON
object.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from router.engine.engine import Engine
from router.engine.state import EngineContext
from router.model import Alert, AlertEvent, Severity, Status

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def alert(i: int, group: int) -> Alert:
    labels = {"alertname": "KubePodCrashLooping", "severity": "warning", "env": "prod",
              "namespace": "payments", "service": f"svc-{group}", "pod": f"pod-{i:07d}",
              "instance": f"10.42.{i % 250}.17:8080", "job": "kubernetes-pods", "team": "payments"}
    annotations = {"summary": f"KubePodCrashLooping on pod-{i:07d}",
                   "runbook_url": "https://runbooks.example.com/kubepodcrashlooping"}
    return Alert.model_construct(
        source="alertmanager", fingerprint=f"{i:016x}", status=Status.FIRING,
        name="KubePodCrashLooping", labels=labels, annotations=annotations, value=None,
        starts_at=T0, ends_at=None, received_at=T0, generator_url=None,
        severity=Severity.SEV3, team="payments", service=f"svc-{group}",
        runbook_url=annotations["runbook_url"], dashboard_url=None, receivers=("log",),
        group_key=f"KubePodCrashLooping|svc-{group}", rule="bench",
    )


def fill(engine: Engine, n: int, group_size: int, batch: int = 2000) -> float:
    started = time.perf_counter()
    now = T0 + timedelta(seconds=1)  # before group_wait: no notifications, timers armed
    for start in range(0, n, batch):
        events = [AlertEvent.model_construct(kind="alert", alert=alert(i, i // group_size))
                  for i in range(start, min(n, start + batch))]
        engine.apply(events, now)
    return time.perf_counter() - started


async def kafka_restore(bootstrap: str, states: list[tuple[str, bytes]]) -> dict[str, Any]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    topic = f"bench-state-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1, topic_configs={
            "cleanup.policy": "compact"})])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20,
                                max_batch_size=1 << 20, compression_type=None)
    await producer.start()
    started = time.perf_counter()
    try:
        for key, value in states:
            await producer.send(topic, value=value, key=key.encode())
        await producer.flush()
    finally:
        await producer.stop()
    produce_s = time.perf_counter() - started

    engine = Engine(EngineContext())
    tp = TopicPartition(topic, 0)
    # Restore settings (measured on a 300k-entry topic): 8 MiB per partition fetch and 10,000
    # records per getmany beat both aiokafka's defaults (1 MiB, 5,000: ~30% slower) and
    # bigger buffers (32 MiB: slower again); skipping the CRC check of each record batch saves
    # another ~20% of the read's CPU.
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=8 << 20,
                                fetch_max_bytes=32 << 20, check_crcs=False)
    await consumer.start()
    try:
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        started = time.perf_counter()
        await consumer.seek_to_beginning(tp)
        done = 0
        while done < end:
            batch = await consumer.getmany(tp, timeout_ms=1000, max_records=10_000)
            for record in batch.get(tp, ()):
                engine.load(record.key.decode(), record.value)
                done = record.offset + 1
        restore_s = time.perf_counter() - started
    finally:
        await consumer.stop()
    return {"kafka_produce_s": produce_s, "kafka_restore_s": restore_s,
            "kafka_restore_per_s": len(states) / restore_s, "kafka_restored": len(engine)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--alerts", type=int, default=1_000_000)
    parser.add_argument("--group-size", type=int, default=1)
    parser.add_argument("--kafka", help="bootstrap address: restore through a real topic")
    parser.add_argument("--cpu", type=int)
    parser.add_argument("--compress-level", type=int, default=None,
                        help="Engine(compress_level=...); default: the engine's default")
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})

    gc.collect()
    before = rss_bytes()
    options = {} if args.compress_level is None else {"compress_level": args.compress_level}
    engine = Engine(EngineContext(), **options)
    fill_s = fill(engine, args.alerts, args.group_size)
    gc.collect()
    after = rss_bytes()
    keys = list(engine.keys())
    states = [(k, engine.encoded(k) or b"") for k in keys]
    encoded = sum(len(v) for _, v in states)
    result: dict[str, Any] = {
        "alerts": args.alerts, "groups": len(engine), "group_size": args.group_size,
        "fill_s": fill_s, "apply_per_s": args.alerts / fill_s,
        "rss_delta_bytes": after - before, "rss_per_alert": (after - before) / args.alerts,
        "encoded_bytes": encoded, "encoded_per_alert": encoded / args.alerts,
        "peak_rss_bytes": after,
    }
    del engine
    gc.collect()

    fresh = Engine(EngineContext(), **options)
    started = time.perf_counter()
    for key, value in states:
        fresh.load(key, value)
    load_s = time.perf_counter() - started
    result.update(memory_load_s=load_s, memory_load_per_s=len(states) / load_s,
                  memory_load_alerts_per_s=args.alerts / load_s)
    del fresh
    gc.collect()
    if args.kafka:
        result.update(asyncio.run(kafka_restore(args.kafka, states)))
    sys.stdout.buffer.write(orjson.dumps(result) + b"\n")


if __name__ == "__main__":
    main()
