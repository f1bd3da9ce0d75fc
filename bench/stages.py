"""Per-stage CPU of an alert's path from a py-spy profile of a bench run.

    .venv/bin/python bench/stages.py bench/results/<stamp>.json [--unmatched N]

For every router row of that run with a py-spy profile next to it (`bench/run.py --profile
py-spy` writes `<stamp>-<name>.txt`, collapsed stacks with sample counts), each sample is put
in the stage of its innermost frame that names one (table `STAGES`). CPU time, not
wall-clock, so the table holds on a shared machine where throughput does not: the kernel's
per-thread CPU over the measured window (`thread_cpu_s` in the JSON: the event loop's thread
and the SQLite commit thread) is divided by the alerts accepted, and each thread's CPU is
split over the stages by that thread's share of samples. Per thread, because py-spy counts a
runnable thread waiting for the one core as active: in the am1 run of 2026-12-05 the commit
thread had 25% of the samples and used 12% of the CPU. The profile includes the warm-up.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

# (stage, pattern on one frame "function (file:line)"); per frame, the first that matches.
STAGES: list[tuple[str, str]] = [
    ("render", r"router/delivery/render\.py|jinja2/"),
    ("record", r"SqliteDeliveryStore\.|<lambda> \(router/backends/embedded/outbox\.py|"
               r"Dispatcher\._check_records|mark_delivered"),
    ("send", r"router/delivery/receivers/|router/delivery/(http|sink|session|retry)\.py|"
             r"LogSink\."),
    ("outbox", r"SqliteOutbox\.|router/delivery/(dispatcher|outbox|ratelimit)\.py"),
    ("engine", r"router/engine/|router/backends/embedded/engine\.py|router/noise/"),
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


# aiohttp's client shares its HTTP writer and parser with the server: a stack through the
# client (a webhook send, its response read) is the send stage, not intake's HTTP.
_CLIENT = re.compile(r"aiohttp/client|ResponseHandler\.")


def stage_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for stage, pattern in _COMPILED:
            if pattern.search(frame):
                if stage == "intake/HTTP" and any(_CLIENT.search(f) for f in frames):
                    return "send"
                return stage
    if any(_CLIENT.search(f) for f in frames):
        return "send"
    return ORDER[-1]


def stages(profile: Path) -> tuple[dict[bool, Counter[str]], Counter[str]]:
    """Samples per stage of the main thread (True) and the others (False); the leaves of
    stacks in no stage."""
    counts: dict[bool, Counter[str]] = {True: Counter(), False: Counter()}
    unmatched: Counter[str] = Counter()
    for line in profile.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        frames = stack.split(";")
        stage = stage_of(frames)
        counts[frames[0].startswith("<module>")][stage] += int(n)
        if stage == ORDER[-1]:
            unmatched[";".join(f.split(" (")[0] for f in frames[-3:])] += int(n)
    return counts, unmatched


def per_alert_us(row: dict[str, Any], counts: dict[bool, Counter[str]]) -> dict[str, float]:
    """µs of CPU per alert by stage: each thread's CPU over its own samples."""
    threads: dict[str, float] = row["extra"].get("thread_cpu_s") or {}
    alerts = row["extra"].get("alerts") or 0
    if not threads or not alerts:  # an older run: the process's CPU over all samples
        both = counts[True] + counts[False]
        total = sum(both.values())
        return {k: v / total * row["cpu_s_per_1k"] * 1000 for k, v in both.items()}
    cpu = {True: threads.get("main", 0.0),
           False: sum(v for k, v in threads.items() if k != "main")}
    out: Counter[str] = Counter()
    for main, samples in counts.items():
        total = sum(samples.values())
        for stage, n in samples.items():
            out[stage] += n / total * cpu[main] / alerts * 1e6
    return dict(out)


def _profile_of(result: Path, stamp: str, row: dict[str, Any]) -> Path | None:
    """The py-spy profile of an embedded router row (closed-loop ingest or e2e), if taken."""
    scenario = row["scenario"]
    if scenario.startswith("2 router embedded"):
        name = f"embedded-{row['payload']}"
    elif scenario.startswith("5 e2e") and "router embedded" in scenario:
        name = "e2e-embedded-incidents" if "incidents" in scenario else "e2e-embedded"
    else:
        return None
    profile = result.with_name(f"{stamp}-{name}.txt")
    return profile if profile.exists() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("result", type=Path, help="bench/results/<stamp>.json")
    parser.add_argument("--unmatched", type=int, default=0,
                        help="also list the N largest stacks in no stage")
    args = parser.parse_args()
    run = json.loads(args.result.read_text())
    stamp = args.result.stem
    for row in run["rows"]:
        profile = _profile_of(args.result, stamp, row)
        if profile is None or not row["cpu_s_per_1k"]:
            continue
        counts, unmatched = stages(profile)
        us = per_alert_us(row, counts)
        total = sum(us.values())
        threads = row["extra"].get("thread_cpu_s") or {}
        print(f"\n{row['payload']}: {row['cpu_s_per_1k'] * 1000:.0f} µs CPU per alert "
              f"(process), {row['alerts_s']:,.0f} alerts/s; thread CPU s "
              + ", ".join(f"{k} {v:.2f}" for k, v in threads.items()))
        print("| stage | µs CPU per alert | share |\n|---|---|---|")
        for stage in ORDER:
            print(f"| {stage} | {us.get(stage, 0.0):.0f} | {us.get(stage, 0.0) / total:.1%} |")
        for stack, n in unmatched.most_common(args.unmatched):
            print(f"  unmatched {n:5d} {stack}")


if __name__ == "__main__":
    main()
