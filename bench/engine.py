"""Engine decisions per second, in process: the pure decision engine without I/O.

    .venv/bin/python bench/engine.py [--alerts N]

Scenarios: new firing alerts in distinct groups, their duplicates, the timer flush that sends
their first notifications, their resolutions, a storm of one group with 5,000 alerts, and the
end-to-end benchmark's load: new SEV1 alerts in distinct groups with incidents enabled, so each
alert is a TRIGGER at once (SEV1 group_wait 0) and opens its own incident. Then the two
embedded e2e rows of `bench/run.py` as the engine sees them at 1,000 alerts/s, one alert per
`apply` (a step of a 1-alert request): a SEV3 with group_wait 0 in its own group (`e2e-1`),
and a SEV1 of its own service opening its own incident (`inc-1`); what a step costs besides
its alerts weighs fully here. Then 100 silences
created one at a time (each matching one alert's instance, as from the console) over the
`--alerts` groups: each looks again at the groups it can match, not at every group.

Rates are per CPU second of this process (`time.process_time`: the machine is shared), and the
pre-built inputs are frozen out of the garbage collector (`gc.freeze`), so that its walks cost
what the engine's own objects cost. Run it 3 times and take the medians.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from router.config import IncidentsConfig
from router.engine.engine import Engine
from router.engine.noise import NOISE_KEY, SILENCE
from router.engine.state import EngineContext
from router.model import Alert, AlertEvent, CommandEvent, Severity, Status
from router.noise.matchers import Matcher, Matchers
from router.noise.silences import Silence

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
BATCH = 500


def event(i: int, status: Status, group: str | None = None,
          severity: Severity = Severity.SEV3) -> AlertEvent:
    name = f"Alert{i}"
    return AlertEvent.of(Alert.trusted(
        source="alertmanager", fingerprint=f"{i:016x}", status=status, name=name,
        labels={"alertname": name, "instance": f"host-{i}:9100", "env": "prod"},
        annotations={"summary": f"{name} is firing"}, starts_at=T0,
        ends_at=T0 + timedelta(minutes=5) if status is Status.RESOLVED else None,
        received_at=T0, severity=severity, receivers=("log",),
        group_key=group or f"{name}|"))


def with_service(e: AlertEvent, i: int) -> AlertEvent:
    return AlertEvent.of(e.alert.replace(service=f"svc-{i}"))


def on_service(e: AlertEvent, service: str) -> AlertEvent:
    return AlertEvent.of(e.alert.replace(service=service))


def silence(i: int) -> CommandEvent:
    """A silence of alert `i`'s instance for an hour, as the console's "silence" makes it."""
    s = Silence(id=f"s-{i}", matchers=Matchers.of(Matcher.of("instance", f"host-{i}:9100")),
                starts_at=T0, ends_at=T0 + timedelta(hours=1), created_by="bench",
                comment="bench", updated_at=T0)
    return CommandEvent(command=SILENCE, group_key=NOISE_KEY, actor="api:bench", at=T0,
                        args={"silence": s.model_dump(mode="json")})


def rate(label: str, count: int, run: Callable[[], object]) -> None:
    # CPU time of this process: the machine is shared, wall time counts the neighbours too.
    started = time.process_time()
    run()
    elapsed = time.process_time() - started
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
    storm = [event(i, Status.FIRING, group="Storm|") for i in range(5_000)]
    sev1 = [event(i, Status.FIRING, severity=Severity.SEV1) for i in range(n)]
    # The inputs (a few hundred thousand objects) are built up front and kept out of the
    # garbage collector's walks: in the server they come and go, so it walks the engine's own.
    gc.collect()
    gc.freeze()
    print("| scenario                                 |    events |  decisions/s |")
    print("|------------------------------------------|-----------|--------------|")
    rate("new firing alerts, distinct groups", n, lambda: apply_all(engine, firing, T0))
    rate("duplicates of them", n, lambda: apply_all(engine, firing, T0))
    later = T0 + timedelta(minutes=1)
    rate("group_wait flush (first notifications)", n, lambda: engine.apply([], later))
    end = T0 + timedelta(minutes=10)

    def resolve_all() -> None:
        apply_all(engine, resolved, end)
        engine.apply([], end)

    rate("resolutions (decided and flushed)", n, resolve_all)
    rate("storm: 5,000 alerts into one group", 5_000,
         lambda: apply_all(Engine(EngineContext()), storm, T0))
    incidents = Engine(EngineContext(incidents=IncidentsConfig()))
    rate("SEV1 alerts, own incident + trigger each", n,
         lambda: apply_all(incidents, sev1, T0))
    # The e2e rows' alerts, one per apply at 1 ms intervals (the default incidents config,
    # as the router runs it): the engine's per-step costs count once per alert here.
    steps = min(n, 20_000)
    e2e = [AlertEvent.of(with_service(event(i, Status.FIRING), i).alert.replace(
        group_wait=timedelta(0), received_at=T0 + timedelta(milliseconds=i)))
        for i in range(steps)]
    inc = [AlertEvent.of(e.alert.replace(severity=Severity.SEV1)) for e in e2e]
    def one_per_apply(events: list[AlertEvent]) -> None:
        engine = Engine(EngineContext(incidents=IncidentsConfig()))
        for i, e in enumerate(events):
            engine.apply([e], T0 + timedelta(milliseconds=i + 1))

    rate("e2e-1: SEV3 alert per apply, own group", steps, lambda: one_per_apply(e2e))
    rate("inc-1: SEV1 alert per apply, own incident", steps, lambda: one_per_apply(inc))
    # Each SEV1 incident of a service inhibits that service's less severe alerts: only its
    # groups may look again, not every group the engine holds.
    rule = IncidentsConfig(inhibit_lower_severity=True)  # (explicit: main had it off)
    crowd = Engine(EngineContext(incidents=rule))
    apply_all(crowd, [with_service(e, i) for i, e in enumerate(firing)], T0)
    inhibiting = [with_service(event(n + i, Status.FIRING, severity=Severity.SEV1), i)
                  for i in range(1_000)]
    rate(f"SEV1 incidents of a service, {n:,} groups", 1_000,
         lambda: [crowd.apply([e], T0) for e in inhibiting])
    # A storm of SEV1 incidents of one service over its SEV3 groups: the service's lead is
    # announced once, and its groups look again once, not per incident.
    storm_groups, storm_incidents = 2_000, 500
    one = Engine(EngineContext(incidents=rule))
    apply_all(one, [on_service(e, "svc-storm") for e in firing[:storm_groups]], T0)
    sev1_storm = [on_service(event(2 * n + i, Status.FIRING, severity=Severity.SEV1),
                             "svc-storm") for i in range(storm_incidents)]
    rate(f"SEV1 incidents of one service, {storm_groups:,} groups", storm_incidents,
         lambda: [one.apply([e], T0) for e in sev1_storm])
    # Silences created one by one over the groups of the first scenarios.
    quiet = Engine(EngineContext())
    apply_all(quiet, firing, T0)
    silences = [silence(i * (n // 100)) for i in range(100)]
    rate(f"silences created, {n:,} groups", 100,
         lambda: [quiet.apply([s], T0) for s in silences])


if __name__ == "__main__":
    main()
