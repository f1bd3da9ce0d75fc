"""The deduplication contract, against real router processes on both backends (issue 4).

One problem pages once: whatever arrives twice, through whichever router, across crashes and
restarts, is notified once, and nothing a router accepted is lost. Each test runs
`incident-router serve` subprocesses against a recording webhook receiver; the kafka parameter
uses a real broker (tests/kafka/fixtures.py) and never skips.

Counting is by notification id (the `webhook-id` header): a delivery repeated with the same id
after a crash between send and commit is allowed by Standard Webhooks (receivers dedupe on
webhook-id) and is reported, never failed on; two different ids for one group, or none, fail.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.contract.conftest import BackendUnderTest, RouterFactory
from tests.contract.harness import (
    Answer,
    RouterProcess,
    Stream,
    WebhookSink,
    am_alert,
    am_payload,
    group_key,
    logs_of,
    post_until_accepted,
    settled,
    wait_for,
)
from tests.kafka.fixtures import KafkaBroker

FIRING = "alert.firing"
RESOLVED = "alert.resolved"
DUPLICATES = "incident_router_engine_duplicates_suppressed_total"


def routers_for(backend: BackendUnderTest) -> int:
    # Two embedded processes on one SQLite file are not supported (each would run its own
    # engine over the same log): the embedded backend gets one process, posted to twice as often.
    return 2 if backend.scales_out else 1


def metric_sum(routers: list[RouterProcess], name: str) -> float:
    return sum(r.metrics().get(name, 0.0) for r in routers if r.alive())


def assert_each_group_once(sink: WebhookSink, keys: list[str], type: str,
                           routers: list[RouterProcess]) -> None:
    """Each group in `keys` got exactly one distinct notification id of `type`, none other."""
    groups = sink.ids_by_group(type)
    missing = [k for k in keys if k not in groups]
    twice = {k: sorted(ids) for k, ids in groups.items() if len(ids) > 1}
    unexpected = sorted(set(groups) - set(keys))
    redelivered = sink.redeliveries(type)
    assert not missing and not twice and not unexpected, (
        f"{type}: {len(groups)} of {len(keys)} groups notified; missing {len(missing)} "
        f"(e.g. {missing[:5]}); notified with different ids {len(twice)} "
        f"(e.g. {list(twice.items())[:3]}); unexpected groups {unexpected[:5]}; "
        f"same-id redeliveries {redelivered}\n{logs_of(routers)}"
    )
    if redelivered:
        print(f"{type}: {redelivered} same-id redeliveries (allowed: receivers dedupe on id)")


# --- 1. the same payload three times, through both routers ----------------------------------


def test_same_payload_posted_three_times_notifies_once(
        backend: BackendUnderTest, sink: WebhookSink, start_routers: RouterFactory) -> None:
    routers = start_routers(backend, routers_for(backend))
    payload = am_payload([am_alert(1, datetime.now(UTC) - timedelta(minutes=1))])

    for i in range(3):
        answer = routers[i % len(routers)].post_alertmanager(payload)
        assert answer.status == 200, answer

    wait_for(lambda: sink.count() >= 1, 60, "the first notification", routers)
    wait_for(lambda: metric_sum(routers, DUPLICATES) >= 2, 60,
             "the engine to decide the two repeats", routers)
    wait_for(lambda: settled(routers), 60, "the engine to settle and the outbox to drain",
             routers)
    assert [(d.type, d.group_key) for d in sink.deliveries()] == [(FIRING, group_key(1))]
    assert metric_sum(routers, DUPLICATES) == 2


# --- 2. 10,000 groups while a router is killed ---------------------------------------------

GROUPS = 10_000
PER_PAYLOAD = 100


def test_ten_thousand_groups_notified_once_across_sigkill(
        backend: BackendUnderTest, sink: WebhookSink, start_routers: RouterFactory) -> None:
    routers = start_routers(backend, routers_for(backend))
    starts = datetime.now(UTC) - timedelta(minutes=1)
    payloads = [am_payload([am_alert(i, starts) for i in range(b, b + PER_PAYLOAD)])
                for b in range(0, GROUPS, PER_PAYLOAD)]
    victim = routers[-1]

    stream = Stream(routers, payloads).start()
    stream.wait_acked(len(payloads) // 2, 120)
    victim.kill()
    if not backend.scales_out:
        # The only process: kill -9 it, then bring it back on the same database; the stream
        # keeps retrying what it could not deliver meanwhile.
        victim.start()
    stream.join(180)

    keys = [group_key(i) for i in range(GROUPS)]
    live = [r for r in routers if r.alive()]
    wait_for(lambda: len(sink.ids_by_group(FIRING)) >= GROUPS, 180,
             f"all {GROUPS} groups to be notified", routers,
             lambda: f"{len(sink.ids_by_group(FIRING))} groups notified, "
                     f"{sink.count()} deliveries")
    wait_for(lambda: settled(live, sink), 60, "the survivors to settle", routers)
    print(f"{backend.name}: {stream.retried} batches retried after "
          f"{len(stream.failures)} failed attempts; {sink.count()} deliveries")
    assert_each_group_once(sink, keys, FIRING, routers)


# --- 3. stop everything, start again ---------------------------------------------------------


def test_restart_restores_state(
        backend: BackendUnderTest, sink: WebhookSink, start_routers: RouterFactory) -> None:
    routers = start_routers(backend, routers_for(backend))
    count = 20
    starts = datetime.now(UTC) - timedelta(minutes=5)
    firing = am_payload([am_alert(i, starts) for i in range(count)])
    keys = [group_key(i) for i in range(count)]

    post_until_accepted(routers, firing)
    wait_for(lambda: sink.count(FIRING) >= count, 60, "the firing notifications", routers)
    wait_for(lambda: settled(routers), 60, "the engine to settle", routers)

    for r in routers:
        r.stop()
    for r in routers:
        r.start()
    for r in routers:  # the first may have rebalanced when the second joined
        r.wait_ready(60)
    wait_for(lambda: metric_sum(routers, "incident_router_engine_groups") == count, 60,
             f"the {count} groups to be restored", routers)

    # The same firing alerts again, through every router: remembered, so not notified.
    for k in range(len(routers)):
        post_until_accepted(routers, firing, first=k)
    wait_for(lambda: metric_sum(routers, DUPLICATES) >= count * len(routers), 60,
             "the engine to recognise the repeated alerts", routers)
    wait_for(lambda: settled(routers), 60, "the engine to settle", routers)
    assert sink.count(FIRING) == count, "a restart forgot which alerts were already notified"

    # Their resolutions do notify: the restored state knows they were paged.
    ends = datetime.now(UTC)
    post_until_accepted(routers, am_payload([am_alert(i, starts, ends) for i in range(count)]))
    wait_for(lambda: len(sink.ids_by_group(RESOLVED)) >= count, 60,
             "the resolved notifications", routers)
    wait_for(lambda: settled(routers), 60, "the engine to settle", routers)
    assert_each_group_once(sink, keys, FIRING, routers)
    assert_each_group_once(sink, keys, RESOLVED, routers)


# --- 4. the log goes away mid-stream -------------------------------------------------------


def test_kafka_broker_outage_answers_503_and_recovers(
        kafka_backend: BackendUnderTest, kafka_broker: KafkaBroker, sink: WebhookSink,
        start_routers: RouterFactory) -> None:
    (router,) = start_routers(kafka_backend, 1)
    starts = datetime.now(UTC) - timedelta(minutes=1)
    total = 12
    answers: list[tuple[int, float, float, Answer | str]] = []  # (alert, sent, answered, answer)
    accepted: list[int] = []

    def stream() -> None:
        # Like Alertmanager: each alert is retried until accepted; a steady trickle of them.
        for i in range(total):
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                sent = time.monotonic()
                try:
                    answer: Answer | str = router.post_alertmanager(
                        am_payload([am_alert(i, starts)]), timeout=30)
                except OSError as exc:
                    answer = type(exc).__name__
                answers.append((i, sent, time.monotonic(), answer))
                if isinstance(answer, Answer) and 200 <= answer.status < 300:
                    accepted.append(i)
                    break
                time.sleep(0.5)
            time.sleep(0.3)

    poster = threading.Thread(target=stream, daemon=True)
    poster.start()
    wait_for(lambda: len(accepted) >= 4, 60, "alerts accepted before the outage", [router])
    kafka_broker.stop()
    stopped = time.monotonic()

    def refusals() -> int:
        return sum(1 for _, sent, _, a in answers if sent >= stopped and isinstance(a, Answer)
                   and a.status == 503)

    wait_for(lambda: refusals() >= 2, 60, "intake to refuse alerts during the outage",
             [router])
    restarting = time.monotonic()
    kafka_broker.restart()
    restarted = time.monotonic()
    poster.join(180)
    assert not poster.is_alive(), "posting did not finish after the broker came back"

    during = [(i, a) for i, sent, done, a in answers if sent >= stopped and done <= restarting]
    refused = [a for _, a in during if isinstance(a, Answer) and a.status == 503]
    wrongly_ok = [(i, a.status) for i, a in during
                  if isinstance(a, Answer) and 200 <= a.status < 300]
    print(f"during the outage: {len(refused)} x 503 of {len(during)} answers; "
          f"broker down {restarting - stopped:.1f}s")
    assert not wrongly_ok, f"2xx while the broker was down: {wrongly_ok}"
    assert refused, f"no 503 while the broker was down: {during}"
    assert all(a.headers.get("Retry-After") for a in refused), refused
    # A timed-out produce may still land: the answer must not claim the alerts were lost.
    assert all('"stored"' in a.body for a in refused), refused
    assert sorted(accepted) == list(range(total))
    first_tries = {i: min(sent for j, sent, _, _ in answers if j == i) for i in range(total)}
    fresh = [i for i, sent in first_tries.items() if sent >= restarted]
    assert fresh, "no alert was first posted after the broker came back: nothing was tested"

    # Processing resumes on its own: everything accepted is notified, the later alerts too.
    keys = [group_key(i) for i in range(total)]
    wait_for(lambda: set(keys) <= set(sink.ids_by_group(FIRING)), 120,
             "every accepted alert to be notified after the outage", [router])
    wait_for(lambda: settled([router], sink), 60, "the router to settle", [router])
    assert_each_group_once(sink, keys, FIRING, [router])


def test_embedded_kill9_mid_stream_loses_nothing_acknowledged(
        tmp_path_factory: pytest.TempPathFactory, sink: WebhookSink,
        start_routers: RouterFactory) -> None:
    db = tmp_path_factory.mktemp("embedded") / "router.db"
    (router,) = start_routers(BackendUnderTest("embedded", {"type": "embedded",
                                                            "path": str(db)}), 1)
    starts = datetime.now(UTC) - timedelta(minutes=1)
    count, per = 400, 5
    payloads = [am_payload([am_alert(i, starts) for i in range(b, b + per)])
                for b in range(0, count, per)]

    # Paced so that the kill lands mid-stream: 80 batches over a few seconds.
    stream = Stream([router], payloads, pace=0.05).start()
    stream.wait_acked(10, 60)
    router.kill()
    router.start()
    stream.join(120)
    assert stream.failures, "the stream never saw the router down: nothing was tested"

    keys = [group_key(i) for i in range(count)]
    wait_for(lambda: len(sink.ids_by_group(FIRING)) >= count, 120,
             "every acknowledged alert to be notified", [router])
    wait_for(lambda: settled([router], sink), 60, "the router to settle", [router])
    assert_each_group_once(sink, keys, FIRING, [router])
