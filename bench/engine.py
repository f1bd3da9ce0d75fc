"""Engine decisions per second, in process: the pure decision engine without I/O.

    .venv/bin/python bench/engine.py [--alerts N]

Scenarios: new firing alerts in distinct groups, their duplicates, the timer flush that sends
their first notifications, their resolutions, and a storm of one group with 5,000 alerts.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from router.engine.engine import Engine
from router.engine.state import EngineContext
from router.model import Alert, AlertEvent, Severity, Status

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
BATCH = 500


def event(i: int, status: Status, group: str | None = None) -> AlertEvent:
    name = f"Alert{i}"
    return AlertEvent.of(Alert.trusted(
        source="alertmanager", fingerprint=f"{i:016x}", status=status, name=name,
        labels={"alertname": name, "instance": f"host-{i}:9100", "env": "prod"},
        annotations={"summary": f"{name} is firing"}, starts_at=T0,
        ends_at=T0 + timedelta(minutes=5) if status is Status.RESOLVED else None,
        received_at=T0, severity=Severity.SEV3, receivers=("log",),
        group_key=group or f"{name}|"))


def rate(label: str, count: int, run: Callable[[], object]) -> None:
    started = time.perf_counter()
    run()
    elapsed = time.perf_counter() - started
    print(f"| {label:<40} | {count:>9,} | {count / elapsed:>12,.0f} |")


def apply_all(engine: Engine, events: list[AlertEvent], now: datetime) -> None:
    for j in range(0, len(events), BATCH):
        engine.apply(events[j:j + BATCH], now)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--alerts", type=int, default=50_000)
    n = parser.parse_args().alerts
    engine = Engine(EngineContext())
    firing = [event(i, Status.FIRING) for i in range(n)]
    resolved = [event(i, Status.RESOLVED) for i in range(n)]
    print("| scenario                                 |    events |  decisions/s |")
    print("|------------------------------------------|-----------|--------------|")
    rate("new firing alerts, distinct groups", n, lambda: apply_all(engine, firing, T0))
    rate("duplicates of them", n, lambda: apply_all(engine, firing, T0))
    later = T0 + timedelta(minutes=1)
    rate("group_wait flush (first notifications)", n, lambda: engine.apply([], later))
    end = T0 + timedelta(minutes=10)
    rate("resolutions (decided and flushed)", n, lambda: (apply_all(engine, resolved, end),
                                                          engine.apply([], end)))
    storm = [event(i, Status.FIRING, group="Storm|") for i in range(5_000)]
    rate("storm: 5,000 alerts into one group", 5_000,
         lambda: apply_all(Engine(EngineContext()), storm, T0))


if __name__ == "__main__":
    main()
