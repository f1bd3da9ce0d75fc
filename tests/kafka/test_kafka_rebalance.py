"""Ownership handoff of the delivery partitions on a rebalance, on real processes (issue 13).

What was seen: two Kafka replicas, one killed and restarted. When it rejoined, 30
notifications were delivered twice within ~100 ms, right after `Revoking previously assigned
partitions` on the other replica: that replica kept sending what it had already taken from the
revoked partitions while the new owner, which had not seen their delivery records, sent them
too.

Here real `incident-router serve` replicas share a real broker and deliver to a receiver that
answers each post after 50 ms, so sends are in flight whenever the group rebalances. Counted
per `webhook-id` (the notification id): a rebalance itself (a replica joining, leaving with
SIGTERM, or returning after a crash) posts nothing twice. Only a kill -9 may: a send the
killed replica had made but not recorded goes out again from the new owner, at most once per
such send, and a replica has at most `concurrency` sends of the receiver open at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.contract.conftest import kafka_settings
from tests.contract.harness import (
    RouterProcess,
    Stream,
    am_alert,
    am_payload,
    group_key,
    logs_of,
    router_config,
    settled,
    wait_for,
)
from tests.contract.test_contract import FIRING, assert_each_group_once
from tests.contract.test_drain import SlowSink, at_least

pytestmark = pytest.mark.kafka

Replicas = Callable[[int], list[RouterProcess]]
OWNED = "incident_router_engine_owned_partitions"
PARTITIONS = 4  # kafka_settings
HANDOFF = re.compile(r"handed over (?P<partitions>\d+) outbox partitions?: (?P<finished>\d+) "
                     r"sends? finished, (?P<cut>\d+) cut off")


@pytest.fixture
def sink() -> Iterator[SlowSink]:
    receiver = SlowSink(delay=0.05)
    receiver.start()
    yield receiver
    receiver.release()
    receiver.close()


@pytest.fixture
def replicas(tmp_path: Path, sink: SlowSink, kafka_bootstrap: str,
             kafka_topic_prefix: str) -> Iterator[Replicas]:
    """`replicas(concurrency)`: three router processes on one broker and topic prefix, none
    started yet, delivering to `sink` with at most `concurrency` sends open at once each."""
    rules = tmp_path / "rules"
    rules.mkdir()
    made: list[RouterProcess] = []

    def make(concurrency: int) -> list[RouterProcess]:
        config = router_config(kafka_settings(kafka_bootstrap, kafka_topic_prefix), sink.url,
                               rules)
        receivers = config["receivers"]
        assert isinstance(receivers, list)
        receivers[0]["concurrency"] = concurrency
        made.extend(RouterProcess(f"replica-{i}", tmp_path / "routers", config)
                    for i in range(3))
        return made

    yield make
    print(logs_of(made))  # shown when the test failed
    for r in made:
        r.kill()


def payloads(count: int, per: int = 5) -> list[dict[str, object]]:
    starts = datetime.now(UTC) - timedelta(minutes=1)
    return [am_payload([am_alert(i, starts) for i in range(b, b + per)])
            for b in range(0, count, per)]


def repeated(sink: SlowSink) -> dict[str, int]:
    """Ids delivered more than once -> the arrival index of their first delivery."""
    first: dict[str, int] = {}
    again: set[str] = set()
    for i, d in enumerate(sink.deliveries()):
        if d.webhook_id in first:
            again.add(d.webhook_id)
        else:
            first[d.webhook_id] = i
    return {k: first[k] for k in again}


def handoffs(router: RouterProcess) -> list[re.Match[str]]:
    return list(HANDOFF.finditer(router.log_path.read_text(errors="replace")))


def streaming(routers: list[RouterProcess], sink: SlowSink, count: int) -> Stream:
    """Start `routers`, then a stream of `count` groups posted to them; returns once
    deliveries are under way. ~25 s of stream at this pace."""
    for r in routers:
        r.start()
    for r in routers:  # an earlier one may be rebalancing since a later one joined
        r.wait_ready(60)
    stream = Stream(routers, payloads(count), pace=0.04).start()
    wait_for(at_least(sink, 200), 60, "deliveries under way", routers)
    return stream


def finish(routers: list[RouterProcess], sink: SlowSink, stream: Stream, count: int) -> None:
    stream.join(240)
    wait_for(lambda: len(sink.ids_by_group(FIRING)) >= count, 180,
             f"all {count} groups to be notified", routers)
    wait_for(lambda: settled(routers, sink), 90, "the replicas to settle", routers)


# --- 1. a replica killed -9 and restarted ----------------------------------------------------


def test_replica_killed_and_restarted_resends_only_what_it_had_in_flight(
        replicas: Replicas, sink: SlowSink) -> None:
    concurrency = 4  # `a` has at most this many sends open when it is killed
    a, b, _ = replicas(concurrency)
    count = 4000  # the stream outlasts the kill, the takeover (the 10 s session timeout)
    stream = streaming([a, b], sink, count)  # and the restart

    a.kill()
    killed_at = sink.count()  # deliveries before this index may come from `a`
    # `b` takes over once `a`'s session times out, with `a`'s partitions' backlog to deliver.
    wait_for(lambda: b.metrics().get(OWNED) == PARTITIONS, 60, "`b` to take over", [b])
    wait_for(at_least(sink, sink.count() + 50), 60, "`b` delivering after the takeover", [b])
    a.start()  # rejoins while `b` works through that backlog: `b` revokes mid-stream
    b.wait_ready(60)
    finish([a, b], sink, stream, count)

    again = repeated(sink)
    after_kill = sorted(k for k, at in again.items() if at >= killed_at)
    print(f"{sink.count()} deliveries; {len(again)} ids twice, {len(after_kill)} of them first "
          f"sent after the kill; handoffs on b: {[m.group(0) for m in handoffs(b)]}")
    # Twice and first sent after the kill: a rebalance resent it (the takeover or the rejoin).
    assert after_kill == [], (
        f"{len(after_kill)} notifications first sent after the kill were delivered twice "
        f"(e.g. {after_kill[:5]})")
    # The rest were sent by `a` before it died: at most one resend per send it had open.
    assert len(again) <= concurrency, f"{len(again)} resends, more than `a` had in flight"
    assert sink.redeliveries() == len(again), "a notification delivered three times"
    assert_each_group_once(sink, [group_key(i) for i in range(count)], FIRING, [a, b])
    # `b` handed over at the takeover and, last, to the returning `a`: with sends in flight,
    # all finished in time.
    handed = handoffs(b)
    assert handed and int(handed[-1]["finished"]) > 0, (
        "no send was in flight at the rejoin rebalance: nothing was tested")
    assert all(m["cut"] == "0" for m in handed)


# --- 2. a third replica joins, then leaves with SIGTERM ------------------------------------------


def test_replica_joining_and_leaving_mid_stream_sends_nothing_twice(
        replicas: Replicas, sink: SlowSink) -> None:
    # Few sends at once: deliveries queue up behind the 50 ms receiver, so each rebalance
    # finds lanes with a backlog as well as sends in flight.
    a, b, c = routers = replicas(4)
    count = 3000
    stream = streaming([a, b], sink, count)

    c.start()  # joins: `a` and `b` hand partitions over mid-stream
    for r in (a, b):
        r.wait_ready(60)
    wait_for(at_least(sink, sink.count() + 300), 90, "deliveries with three replicas", routers)
    c.stop()  # SIGTERM: `c` drains, leaves the group, `a` and `b` take its partitions back
    finish([a, b], sink, stream, count)

    handed = [m for r in (a, b) for m in handoffs(r)]
    print(f"{sink.count()} deliveries, {sink.redeliveries()} redelivered; handoffs: "
          f"{[m.group(0) for m in handed]}")
    assert sink.redeliveries() == 0, f"{sink.redeliveries()} notifications delivered twice"
    assert_each_group_once(sink, [group_key(i) for i in range(count)], FIRING, routers)
    assert sum(int(m["finished"]) for m in handed) > 0, (
        "no send was in flight at any rebalance: nothing was tested")
    assert all(m["cut"] == "0" for m in handed)
