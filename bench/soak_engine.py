"""The engine under a constant alert stream on a simulated clock: does cost grow with time?

    .venv/bin/python bench/soak_engine.py [--minutes 30] [--groups 500] [--per-group 10]

Alertmanager's pattern, as in issue 18's soak: `groups` groups of `per-group` firing alerts
each, every group re-sent every 30 s (one request per group, spread evenly over the 30 s),
every alert resolving after 1-10 min (seeded) and replaced by a new one in its group; a tenth
of the groups are SEV2 and open incidents (`--incident-every`). The load is constant from the
first second: the alerts firing at the start have been firing for a while already (each
slot's alerts are drawn as if it had been churning for 20 minutes), so the rate of
resolutions and replacements does not ramp up over the first 10 minutes (`--cold-start`: all
start together, as before, which made the early windows cheaper than the load).

The clock is injected, so 30 simulated minutes take about a minute of CPU, and the numbers
are the engine's alone (no I/O, no HTTP), per 5-minute window: CPU per 1,000 events, the p99
of one second's `apply` (CPU ms: what a batch waits for the engine), the garbage collector's
share of that CPU, and the mean stored size of a group (incident records included). Constant
load must give a flat table; a growing one means per-event cost depends on history. The last
line compares the last window with the second (issue 18's target: within 10%).

`--replay N` then runs the second and the last window again N times each, interleaved in
10-second turns from copies of the soak taken at their start, and compares them by the least
CPU each second took over the N replays: on a shared machine the live table moves by 10-20%
between windows with the load of others, the replayed ratio by a few percent.

`--json` prints one JSON object instead of the tables (`bench/run.py`'s soak scenario:
`windows`, the `live` and `replayed` last/second ratios); `--cpu N` pins the process to core N.

`--profile DIR` runs each window's `apply` calls under cProfile and writes `DIR/window-N.prof`
(N from 1; open with pstats or snakeviz) and prints the functions whose own time per event
grew most from the second window to the last: what still scales with a group's history. Call
counts are exact, so they compare windows even on a noisy machine; times are inflated by the
profiler.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import math
import os
import pickle
import pstats
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from router.config import IncidentsConfig
from router.engine.engine import Engine
from router.engine.state import EngineContext
from router.gcpolicy import tune as tune_gc
from router.model import Alert, AlertsEvent, Severity, Status

T0 = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
RECORD_PREFIX = "\x00incident:"  # router.engine.state's (older engines lack it)
CYCLE = 30  # seconds between two sends of a group (Alertmanager's group_interval default)
WINDOW = 300  # seconds per reported window


class GcClock:
    """CPU seconds the garbage collector has taken (`gc.callbacks`): a collection runs inside
    whatever allocation triggers it, so its time lands in `apply` seconds at random."""

    def __init__(self) -> None:
        self.spent = 0.0
        self._began = 0.0
        gc.callbacks.append(self._on)

    def _on(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.process_time()
        else:
            self.spent += time.process_time() - self._began


GC = GcClock()


class Group:
    """One group's live alerts: fingerprint -> (started, resolves at)."""

    def __init__(self, index: int, per_group: int, rng: random.Random, now: float,
                 incident_every: int, cold_start: bool = False) -> None:
        self.index = index
        self.severity = (Severity.SEV2 if incident_every and index % incident_every == 0
                         else Severity.SEV3)
        self.rng = rng
        self.next_id = 0
        self._life: float | None = None  # drawn by _running_since for the next _add
        self.live: dict[str, tuple[float, float]] = {}
        self.ended: list[tuple[str, float, float]] = []  # resolved since the last send
        for _ in range(per_group):
            self._add(now if cold_start else self._running_since(now))

    def _running_since(self, now: float) -> float:
        """The start of the alert of a slot that has been churning for 20 minutes by `now`."""
        t = now - 1200
        while (life := self.rng.uniform(60, 600)) + t <= now:
            t += life
        self._life = life
        return t

    def _add(self, start: float) -> None:
        fp = f"{self.index:05d}{self.next_id:011d}"
        self.next_id += 1
        life, self._life = self._life or self.rng.uniform(60, 600), None
        self.live[fp] = (start, start + life)

    def send(self, now: float) -> AlertsEvent:
        for fp, (start, end) in list(self.live.items()):
            if end <= now:
                del self.live[fp]
                self.ended.append((fp, start, end))
                self._add(now)
        alerts = [self._alert(fp, start, None, now) for fp, (start, _) in self.live.items()]
        alerts += [self._alert(fp, start, end, now) for fp, start, end in self.ended]
        self.ended = []
        return AlertsEvent.of(tuple(alerts))

    def _alert(self, fp: str, start: float, end: float | None, now: float) -> Alert:
        name = f"Soak{self.index}"
        at = datetime.fromtimestamp
        return Alert.trusted(
            source="alertmanager", fingerprint=fp,
            status=Status.FIRING if end is None else Status.RESOLVED, name=name,
            labels={"alertname": name, "pod": f"pod-{fp[-4:]}", "env": "prod",
                    "service": f"svc{self.index}"},
            annotations={"summary": f"{name} on pod-{fp[-4:]}"},
            starts_at=at(start, UTC), ends_at=None if end is None else at(end, UTC),
            received_at=at(now, UTC), severity=self.severity, service=f"svc{self.index}",
            receivers=("log",), group_key=f"{name}|svc{self.index}")


class Soak:
    """The groups and the engine they send to, one second at a time."""

    def __init__(self, groups: list[Group], engine: Engine) -> None:
        self.groups = groups
        self.engine = engine

    def step(self, second: int) -> tuple[float, int, int, float]:
        """Send the groups whose 30 s turn is `second`: CPU seconds of the engine's `apply`,
        alert events, notifications, and the garbage collector's CPU seconds within `apply`."""
        batch = [g.send(T0.timestamp() + second) for g in self.groups[second % CYCLE::CYCLE]]
        collected = GC.spent
        began = time.process_time()
        out = self.engine.apply(batch, T0 + timedelta(seconds=second))
        took = time.process_time() - began
        return took, sum(len(e.alerts) for e in batch), len(out.notifications), (
            GC.spent - collected)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=int, default=30)
    parser.add_argument("--groups", type=int, default=500)
    parser.add_argument("--per-group", type=int, default=10)
    parser.add_argument("--hot-groups", type=int, default=256)
    parser.add_argument("--incident-every", type=int, default=10,
                        help="every Nth group is SEV2 and opens an incident (0: none)")
    parser.add_argument("--cold-start", action="store_true",
                        help="every first alert starts at 0 (churn ramps up for 10 minutes)")
    parser.add_argument("--profile", metavar="DIR",
                        help="cProfile each window into DIR/window-N.prof and compare them")
    parser.add_argument("--replay", type=int, default=0, metavar="N",
                        help="then replay the second and the last window N times each, "
                             "interleaved, and compare them by each second's least CPU")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (windows and ratios) instead of tables")
    parser.add_argument("--cpu", type=int, help="pin the process to this core")
    parser.add_argument("--python-gc", action="store_true",
                        help="keep Python's collector settings instead of the ones "
                             "`incident-router serve` runs with (router/gcpolicy.py)")
    args = parser.parse_args()
    if not args.python_gc:
        tune_gc()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    say = (lambda *_: None) if args.json else print
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    rng = random.Random(18)
    start = T0.timestamp()
    groups = [Group(i, args.per_group, rng, start, args.incident_every, args.cold_start)
              for i in range(args.groups)]
    engine = Engine(EngineContext(incidents=IncidentsConfig()), hot_groups=args.hot_groups)
    soak = Soak(groups, engine)
    say("| window (min) |  events | notifications | CPU µs / event | p99 apply ms "
        "| GC % of CPU | state bytes / group | + incident records |")
    say("|--------------|---------|---------------|----------------|--------------"
        "|-------------|---------------------|--------------------|")
    rows: list[tuple[float, float]] = []
    windows: list[dict[str, object]] = []
    cpu = collecting = 0.0
    events = notes = 0
    applies: list[float] = []
    profiler = cProfile.Profile() if args.profile else None
    counts: list[int] = []
    seconds = args.minutes * 60
    last = seconds - WINDOW  # the first second of the last window
    copies: dict[int, bytes] = {}  # pickled: bytes are no work for the garbage collector
    for second in range(seconds):
        if args.replay and second in (WINDOW, last):
            copies[second] = pickle.dumps(soak, pickle.HIGHEST_PROTOCOL)
        if profiler is not None:
            profiler.enable()
        took, n, sent, gc_took = soak.step(second)
        if profiler is not None:
            profiler.disable()
        cpu += took
        collecting += gc_took
        applies.append(took)
        events += n
        notes += sent
        if (second + 1) % WINDOW == 0:
            hot, whole = sizes(engine)
            rows.append((cpu / events * 1e6, p99_ms(applies)))
            windows.append({"minutes": f"{second // 60 - 4}-{second // 60 + 1}",
                            "events": events, "notifications": notes,
                            "cpu_us_per_event": rows[-1][0], "p99_ms": rows[-1][1],
                            "gc_share": collecting / cpu,
                            "state_bytes_per_group": hot, "with_records": whole})
            say(f"| {second // 60 - 4:>5}-{second // 60 + 1:<6} | {events:>7,} | "
                f"{notes:>13,} | {rows[-1][0]:>14.1f} | {rows[-1][1]:>12.2f} | "
                f"{collecting / cpu:>11.0%} | {hot:>19,.0f} | {whole:>18,.0f} |")
            if profiler is not None:
                profiler.dump_stats(Path(args.profile) / f"window-{len(rows)}.prof")
                profiler = cProfile.Profile()
                counts.append(events)
            cpu = collecting = 0.0
            events = notes = 0
            applies = []
    out: dict[str, object] = {"windows": windows}
    if len(rows) > 2:
        (cpu2, p2), (cpu_n, p_n) = rows[1], rows[-1]
        out["live"] = {"cpu": cpu_n / cpu2, "p99": p_n / p2}
        say(f"\nlast window / second: CPU per event {cpu_n / cpu2:.2f}, p99 {p_n / p2:.2f} "
            "(target: at most 1.10 each)")
    if args.replay and last > WINDOW:
        del soak, groups, engine
        out["replayed"] = replay(copies[WINDOW], copies[last], WINDOW, last, args.replay, say)
        out["replays"] = args.replay
    if args.json:
        print(json.dumps(out))
    if args.profile and len(rows) > 2:
        compare(Path(args.profile), 2, len(rows), counts[1], counts[-1])


def p99_ms(applies: list[float]) -> float:
    return sorted(applies)[int(len(applies) * 0.99)] * 1e3


# Seconds of one window run before the other's in `replay`.
SLICE = 10


def replay(second: bytes, last: bytes, first_second: int, last_second: int,
           times: int, say: Callable[..., None] = print) -> dict[str, float]:
    """The second and the last window again, from copies of the soak taken at their start,
    interleaved in SLICE-second turns (which goes first alternates), so that a change of the
    machine's load over the run's minutes weighs on both alike: their ratio is the engine's.
    Each second does the same work in every replay, so the least CPU it took over the
    replays is the best estimate of that work on a shared machine: the last line compares
    the windows by those minima.

    Two engines are alive at once, so what they held when copied is frozen out of the
    garbage collector (`gc.freeze`): a full collection would otherwise scan twice the heap of
    the run and land on one of them; what they allocate is collected as in the run. The
    collector's own time (`GcClock`) is reported apart too: a collection lands in whichever
    second's allocations trigger it, so it weighs on the p99 more than on the CPU.

    Returns the least-per-second comparison, with `*_without_gc` ratios and the collector's
    share of each window's CPU (`gc_share_second`, `gc_share_last`)."""
    say(f"\ninterleaved replay ({SLICE} s turns), last window / second:")
    best: list[list[float]] = [[math.inf] * WINDOW, [math.inf] * WINDOW]
    own: list[list[float]] = [[math.inf] * WINDOW, [math.inf] * WINDOW]
    collected = [0.0, 0.0]
    spent = [0.0, 0.0]
    events = [0, 0]
    for n in range(times):
        runs: list[tuple[Soak, int]] = [(pickle.loads(second), first_second),
                                        (pickle.loads(last), last_second)]
        gc.collect()
        gc.freeze()
        events = [0, 0]
        applies: list[list[float]] = [[0.0] * WINDOW, [0.0] * WINDOW]
        for turn, offset in enumerate(range(0, WINDOW, SLICE)):
            order = (0, 1) if turn % 2 == 0 else (1, 0)
            for i in order:
                soak, base = runs[i]
                for s in range(offset, min(offset + SLICE, WINDOW)):
                    took, k, _, gc_took = soak.step(base + s)
                    events[i] += k
                    applies[i][s] = took
                    best[i][s] = min(best[i][s], took)
                    own[i][s] = min(own[i][s], took - gc_took)
                    collected[i] += gc_took
                    spent[i] += took
        del runs
        gc.unfreeze()
        gc.collect()
        _compared(f"run {n + 1}", applies, events, say)
    out = _compared(f"least per second over {times} runs", best, events, say)
    without = _compared("the same without the garbage collector's time", own, events, say)
    out.update(cpu_without_gc=without["cpu"], p99_without_gc=without["p99"],
               gc_share_second=collected[0] / spent[0], gc_share_last=collected[1] / spent[1])
    say(f"  garbage collector's share of the CPU: {out['gc_share_second']:.0%} -> "
        f"{out['gc_share_last']:.0%}")
    return out


def _compared(what: str, applies: list[list[float]], events: list[int],
              say: Callable[..., None]) -> dict[str, float]:
    a, b = (sum(applies[i]) / events[i] * 1e6 for i in (0, 1))
    pa, pb = (p99_ms(applies[i]) for i in (0, 1))
    say(f"  {what}: CPU µs / event {a:.1f} -> {b:.1f} ({b / a:.2f}), "
        f"p99 ms {pa:.2f} -> {pb:.2f} ({pb / pa:.2f}); events {events[0]:,} / {events[1]:,}")
    return {"cpu_us_per_event_second": a, "cpu_us_per_event_last": b, "cpu": b / a,
            "p99_ms_second": pa, "p99_ms_last": pb, "p99": pb / pa}


def compare(folder: Path, first: int, last: int, events_first: int, events_last: int,
            top: int = 15) -> None:
    """The functions whose own time per event grew most between two profiled windows, with
    their calls per 1,000 events in each."""
    a = _per_function(folder / f"window-{first}.prof")
    b = _per_function(folder / f"window-{last}.prof")
    grown = sorted(set(a) | set(b), key=lambda f: (
        b.get(f, (0, 0.0))[1] / events_last - a.get(f, (0, 0.0))[1] / events_first),
        reverse=True)
    print(f"\nown time per event, window {first} -> {last} (µs, profiled), calls per 1,000 "
          "events:")
    for f in grown[:top]:
        (ca, ta), (cb, tb) = a.get(f, (0, 0.0)), b.get(f, (0, 0.0))
        print(f"  {ta / events_first * 1e6:6.2f} -> {tb / events_last * 1e6:6.2f}  "
              f"calls {ca / events_first * 1e3:8.1f} -> {cb / events_last * 1e3:8.1f}  {f}")


def _per_function(path: Path) -> dict[str, tuple[int, float]]:
    """Calls and own time by `file:line(function)` of a profile."""
    stats: dict[tuple[str, int, str], tuple[int, int, float, float, object]] = (
        pstats.Stats(str(path)).stats)  # type: ignore[attr-defined]
    return {f"{Path(file).name}:{line}({name})": (calls, own)
            for (file, line, name), (_, calls, own, _, _) in stats.items()}


def sizes(engine: Engine) -> tuple[float, float]:
    """Mean stored bytes per group: its state, and with its incidents' records."""
    groups = [len(engine.encoded(k) or b"") for k in list(engine.keys())]
    stored = getattr(engine, "stored", None)  # (engines before incident records: none)
    records = sum(len(v) for k, v in stored().items() if k.startswith(RECORD_PREFIX)) if (
        stored is not None) else 0
    n = max(1, len(groups))
    return sum(groups) / n, (sum(groups) + records) / n

if __name__ == "__main__":
    main()
