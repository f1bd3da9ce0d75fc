"""The engine under a constant alert stream on a simulated clock: does cost grow with time?

    .venv/bin/python bench/soak_engine.py [--minutes 30] [--groups 500] [--per-group 10]

Alertmanager's pattern, as in issue 18's soak: `groups` groups of `per-group` firing alerts
each, every group re-sent every 30 s (one request per group, spread evenly over the 30 s),
every alert resolving after 1-10 min (seeded) and replaced by a new one in its group; a tenth
of the groups are SEV2 and open incidents (`--incident-every`). The clock is injected, so 30
simulated minutes take about a minute of CPU, and the numbers are the engine's alone (no I/O,
no HTTP): CPU per 1,000 events and the mean stored size of a group, per 5-minute window.
Constant load must give a flat table; a growing one means per-event cost depends on history.
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime, timedelta

from router.config import IncidentsConfig
from router.engine.engine import Engine
from router.engine.state import EngineContext
from router.model import Alert, AlertsEvent, Severity, Status

T0 = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
CYCLE = 30  # seconds between two sends of a group (Alertmanager's group_interval default)
WINDOW = 300  # seconds per reported window


class Group:
    """One group's live alerts: fingerprint -> (started, resolves at)."""

    def __init__(self, index: int, per_group: int, rng: random.Random, now: float,
                 incident_every: int) -> None:
        self.index = index
        self.severity = (Severity.SEV2 if incident_every and index % incident_every == 0
                         else Severity.SEV3)
        self.rng = rng
        self.next_id = 0
        self.live: dict[str, tuple[float, float]] = {}
        self.ended: list[tuple[str, float, float]] = []  # resolved since the last send
        for _ in range(per_group):
            self._add(now)

    def _add(self, now: float) -> None:
        fp = f"{self.index:05d}{self.next_id:011d}"
        self.next_id += 1
        self.live[fp] = (now, now + self.rng.uniform(60, 600))

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=int, default=30)
    parser.add_argument("--groups", type=int, default=500)
    parser.add_argument("--per-group", type=int, default=10)
    parser.add_argument("--hot-groups", type=int, default=256)
    parser.add_argument("--incident-every", type=int, default=10,
                        help="every Nth group is SEV2 and opens an incident (0: none)")
    args = parser.parse_args()
    rng = random.Random(18)
    start = T0.timestamp()
    groups = [Group(i, args.per_group, rng, start, args.incident_every)
              for i in range(args.groups)]
    engine = Engine(EngineContext(incidents=IncidentsConfig()), hot_groups=args.hot_groups)
    print("| window (min) |  events | notifications | CPU ms / 1k events | bytes / group |")
    print("|--------------|---------|---------------|--------------------|---------------|")
    cpu = 0.0
    events = notes = 0
    for second in range(args.minutes * 60):
        now = start + second
        # The groups whose 30 s turn is this second.
        batch = [g.send(now) for g in groups[second % CYCLE::CYCLE]]
        began = time.process_time()
        out = engine.apply(batch, T0 + timedelta(seconds=second))
        cpu += time.process_time() - began
        events += sum(len(e.alerts) for e in batch)
        notes += len(out.notifications)
        if (second + 1) % WINDOW == 0:
            held = [engine.encoded(k) or b"" for k in list(engine.keys())]
            size = sum(map(len, held)) / max(1, len(held))
            print(f"| {second // 60 - 4:>5}-{second // 60 + 1:<6} | {events:>7,} | "
                  f"{notes:>13,} | {cpu / events * 1e6:>18.1f} | {size:>13,.0f} |")
            cpu = 0.0
            events = notes = 0


if __name__ == "__main__":
    main()
