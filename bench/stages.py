"""Per-stage CPU of an alert's path from a py-spy profile of a bench run.

    .venv/bin/python bench/stages.py bench/results/<stamp>.json [--unmatched N]

For every router row of that run with a py-spy profile next to it (`bench/run.py --profile
py-spy` writes `<stamp>-<name>.txt`, collapsed stacks with sample counts), each sample is put
in the stage of its innermost frame that names one (table `STAGES`), and the stage's share of
the samples is multiplied by the row's CPU per alert (user+system time of the process over the
measured window / alerts accepted). So the table is CPU time, not wall-clock: it holds on a
shared machine, where throughput does not. py-spy samples on-CPU threads only (a thread
waiting on a lock or the disk is idle), so samples track CPU; the profile includes the warm-up.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

# (stage, pattern on one frame "function (file:line)"); per frame, the first that matches.
STAGES: list[tuple[str, str]] = [
    ("render", r"router/delivery/render\.py|jinja2/"),
    ("record", r"SqliteDeliveryStore\.|<lambda> \(router/backends/embedded_outbox\.py|"
               r"Dispatcher\._check_records|mark_delivered"),
    ("send", r"router/delivery/receivers/|router/delivery/(http|sink|session|retry)\.py|"
             r"LogSink\."),
    ("outbox", r"SqliteOutbox\.|router/delivery/(dispatcher|outbox|ratelimit)\.py"),
    ("engine", r"router/engine/|router/backends/embedded_engine\.py|router/noise/"),
    # The durable group commit: the log's work, its thread hop and the fsync'ed COMMIT.
    ("append", r"EmbeddedLog\.|Database\._flush|Database\._run|concurrent/futures/thread\.py|"
               r"router/backends/gate\.py"),
    ("classify", r"router/rules\.py|AlertEvent\.of|_intake\.<locals>\.<listcomp>|"
                 r"router/engine/noise"),
    ("active-alert cap", r"check_active"),
    ("parse+validate", r"router/sources/"),
    # Not run_app (aiohttp/web.py), the root of every stack on the event loop.
    ("intake/HTTP", r"aiohttp/(web_|http|streams|helpers|payload|base_protocol)|router/api/|"
                    r"multidict|yarl/"),
]
ORDER = ["intake/HTTP", "parse+validate", "classify", "active-alert cap", "append", "engine",
         "outbox", "render", "send", "record", "other (loop, GC, metrics, retention)"]
_COMPILED = [(stage, re.compile(p)) for stage, p in STAGES]


def stage_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for stage, pattern in _COMPILED:
            if pattern.search(frame):
                return stage
    return ORDER[-1]


def stages(profile: Path) -> tuple[Counter[str], Counter[str], int]:
    """Samples per stage, unmatched stacks' leaves, total samples."""
    counts: Counter[str] = Counter()
    unmatched: Counter[str] = Counter()
    total = 0
    for line in profile.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        frames = stack.split(";")
        stage = stage_of(frames)
        counts[stage] += int(n)
        total += int(n)
        if stage == ORDER[-1]:
            unmatched[";".join(f.split(" (")[0] for f in frames[-3:])] += int(n)
    return counts, unmatched, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("result", type=Path, help="bench/results/<stamp>.json")
    parser.add_argument("--unmatched", type=int, default=0,
                        help="also list the N largest stacks in no stage")
    args = parser.parse_args()
    run = json.loads(args.result.read_text())
    stamp = args.result.stem
    for row in run["rows"]:
        if not row["scenario"].startswith("2 router embedded") or not row["cpu_s_per_1k"]:
            continue
        profile = args.result.with_name(f"{stamp}-embedded-{row['payload']}.txt")
        if not profile.exists():
            continue
        per_alert_us = row["cpu_s_per_1k"] * 1000
        counts, unmatched, total = stages(profile)
        print(f"\n{row['payload']}: {per_alert_us:.0f} µs CPU per alert, "
              f"{row['alerts_s']:,.0f} alerts/s, {total} samples")
        print("| stage | share of samples | µs CPU per alert |\n|---|---|---|")
        for stage in ORDER:
            share = counts[stage] / total if total else 0.0
            print(f"| {stage} | {share:.1%} | {share * per_alert_us:.0f} |")
        for stack, n in unmatched.most_common(args.unmatched):
            print(f"  unmatched {n:5d} {stack}")


if __name__ == "__main__":
    main()
