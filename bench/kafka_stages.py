"""Where a Kafka e2e alert's latency goes, stage by stage, from the records' own timestamps;
and where its CPU goes, from a py-spy profile of the row:

    .venv/bin/python bench/kafka_stages.py bench/results/<stamp>-e2e-kafka.txt

Called by `bench/run.py` after a Kafka e2e or delivery row (the broker is still up; the
topics stay). Per alert (its `bench_seq` label), four moments on one clock:

- `post`: when the load generator scheduled the POST (open loop: counts queueing);
- `logged`: the alerts record's CreateTime (aiokafka stamps it when intake hands it over);
- `produced`: the notification record's CreateTime (handed to the engine's transaction);
- `arrived`: the sink's receipt of the alert.

(A notification's `created_at` is the alert's `received_at`, the time it is decided at, not
when the engine decided it: no mark between `logged` and `produced`.)

The stages between them (the partition's turn: its transaction in flight, the budget's):

| stage | from - to | what it holds |
|---|---|---|
| intake | post - logged | loadgen queueing, HTTP, parse, classify, the router's core being busy |
| engine | logged - produced | produce ack, engine fetch, the partition's turn, decisions |
| deliver | produced - arrived | transaction commit, outbox read_committed fetch, Dispatcher, POST |

And the engine transactions that carried the alerts: a transaction's notifications are
consecutive offsets of their partition, and its commit marker takes the next offset, so a
gap in a partition's committed offsets ends a transaction.

Timestamps are milliseconds (Kafka's) against the monotonic clock of the load generator and
the sink, mapped to wall time once (`wall = monotonic + offset`): about 1 ms resolution.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

_SEQ = re.compile(rb'"bench_seq":"([0-9a-f]+)-')
STAGES = ("intake", "engine", "deliver")
BATCH = "batch"  # per alert: the alerts its engine transaction carried


async def _read(bootstrap: str, topic: str, partitions: int
                ) -> list[tuple[int, int, int, bytes]]:
    """(partition, offset, CreateTime ms, value) of every committed record of `topic`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, isolation_level="read_committed",
                                auto_offset_reset="earliest", fetch_max_wait_ms=50)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        out: list[tuple[int, int, int, bytes]] = []
        behind = {tp for tp in tps if end[tp] > 0}
        while behind:
            data = await consumer.getmany(*behind, timeout_ms=500, max_records=10_000)
            for records in data.values():
                out.extend((r.partition, r.offset, r.timestamp, r.value or b"")
                       for r in records)
            for tp in list(behind):
                if await consumer.position(tp) >= end[tp]:
                    behind.discard(tp)
        return out
    finally:
        await consumer.stop()


def stage_times(bootstrap: str, prefix: str, partitions: int, sends: dict[str, float],
                arrivals: dict[str, float], offset: float) -> dict[int, dict[str, float]]:
    """Per request seq, each stage's milliseconds (`offset` = wall - monotonic seconds)."""
    alerts, notifications = asyncio.run(_both(bootstrap, prefix, partitions))
    logged: dict[int, float] = {}
    for _, _, ts, value in alerts:
        for m in _SEQ.finditer(value):
            logged.setdefault(int(m.group(1), 16), float(ts))
    produced: dict[int, float] = {}
    batch_of: dict[int, tuple[int, int]] = {}  # seq -> (partition, first offset of its batch)
    batches: Counter[tuple[int, int]] = Counter()
    last: dict[int, int] = {}  # partition -> offset of the record before
    first: dict[int, int] = {}  # partition -> first offset of the batch in progress
    for partition, position, ts, value in sorted(notifications, key=lambda n: n[:2]):
        if last.get(partition) != position - 1:  # a marker (or an aborted batch) in between
            first[partition] = position
        last[partition] = position
        batch = (partition, first[partition])
        for m in _SEQ.finditer(value):
            seq = int(m.group(1), 16)
            if seq not in produced:
                produced[seq] = float(ts)
                batch_of[seq] = batch
                batches[batch] += 1
    arrived = {int(label.split("-", 1)[0], 16): t for label, t in arrivals.items()}
    out: dict[int, dict[str, float]] = {}
    for key, due in sends.items():
        seq = int(key)
        if seq not in logged or seq not in produced or seq not in arrived:
            continue
        marks = [(due + offset) * 1000, logged[seq], produced[seq],
                 (arrived[seq] + offset) * 1000]
        out[seq] = {stage: marks[i + 1] - marks[i] for i, stage in enumerate(STAGES)}
        out[seq][BATCH] = batches[batch_of[seq]]
    return out


async def _both(bootstrap: str, prefix: str, partitions: int
                ) -> tuple[list[tuple[int, int, int, bytes]], list[tuple[int, int, int, bytes]]]:
    return (await _read(bootstrap, f"{prefix}.alerts", partitions),
            await _read(bootstrap, f"{prefix}.notifications", partitions))


def wall_offset() -> float:
    """wall - monotonic, seconds (both clocks read back to back)."""
    return time.time() - time.monotonic()


def summary(per_alert: dict[int, dict[str, float]]) -> dict[str, Any]:
    """p50/p99 of each stage, and the mean of each stage over the slowest 1% of alerts (what
    the end-to-end p99 is made of); and the engine transactions that carried the alerts, with
    the mean alerts per transaction."""
    if not per_alert:
        return {}
    rows = list(per_alert.values())
    totals = sorted((sum(r[st] for st in STAGES), i) for i, r in enumerate(rows))
    tail = [rows[i] for _, i in totals[int(0.99 * len(totals)):]]
    transactions = sum(1 / r[BATCH] for r in rows)
    out: dict[str, Any] = {"alerts": len(rows), "transactions": round(transactions),
                           "alerts_per_transaction": len(rows) / transactions}
    for stage in STAGES:
        values = sorted(r[stage] for r in rows)
        out[stage] = {
            "p50_ms": values[len(values) // 2],
            "p99_ms": values[min(len(values) - 1, int(0.99 * len(values)))],
            "slowest_1pct_mean_ms": sum(r[stage] for r in tail) / len(tail),
        }
    return out


def describe(s: dict[str, Any]) -> str:
    """One line: `stage p50/p99 (slowest 1%: mean)` per stage."""
    if not s or "error" in s:
        return f"stages: {s.get('error', 'no timestamps')}"
    return "stages ms p50/p99 (slowest 1% mean): " + ", ".join(
        f"{st} {s[st]['p50_ms']:.0f}/{s[st]['p99_ms']:.0f} ({s[st]['slowest_1pct_mean_ms']:.0f})"
        for st in STAGES) + (f"; {s['transactions']} transactions, "
                             f"{s['alerts_per_transaction']:.1f} alerts each")


# (share, pattern on the whole stack "frame;frame;..."): the first that matches. What runs in
# aiokafka's own tasks (sender, fetcher, connection reader) has no router frame above it.
SHARES: list[tuple[str, str]] = [
    ("delivery: record (produce)", r"KafkaDeliveryStore\.record|CompactedTable\.put"),
    ("delivery: render", r"router/delivery/render\.py"),
    ("delivery: HTTP send", r"router/delivery/http\.py|aiohttp/client"),
    ("delivery: other", r"router/delivery/"),
    ("engine: decide", r"Engine\.apply"),
    ("engine: transaction", r"KafkaEngineRunner\._commit"),
    ("engine: other", r"KafkaEngineRunner"),
    ("outbox fetch", r"KafkaOutbox"),
    ("views' tails", r"CompactedTable"),
    ("intake: produce", r"KafkaLog"),
    ("intake: active-alert cap", r"check_active"),
    ("intake: HTTP, parse, rules", r"web_protocol|router/api/"),
    ("aiokafka: producers' senders", r"aiokafka/producer/sender"),
    ("aiokafka: consumers' fetchers", r"aiokafka/consumer/"),
    ("aiokafka: connections", r"aiokafka/"),
]
_SHARES = [(name, re.compile(p)) for name, p in SHARES]


def profile_shares(profile: Path) -> dict[str, float]:
    """Percent of the samples of a collapsed-stack profile (`run.py --profile py-spy`) per
    share (`SHARES`, else "other: event loop, GC, aiohttp server")."""
    counts: Counter[str] = Counter()
    for line in profile.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        name = next((name for name, p in _SHARES if p.search(stack)),
                    "other: event loop, GC, aiohttp server")
        counts[name] += int(n)
    total = sum(counts.values()) or 1
    return {name: 100 * n / total for name, n in counts.most_common()}


def main() -> None:
    parser = argparse.ArgumentParser(description="CPU shares of a Kafka row's py-spy profile")
    parser.add_argument("profile", type=Path)
    args = parser.parse_args()
    for name, share in profile_shares(args.profile).items():
        print(f"{share:5.1f}%  {name}")


if __name__ == "__main__":
    main()
