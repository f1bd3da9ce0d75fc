"""MemoryOutbox: the reference semantics of Outbox and DeadLetters the backends follow."""

from __future__ import annotations

from router.delivery.outbox import MemoryOutbox
from router.model import NotificationKind
from tests.unit.delivery.conftest import notification


async def test_pending_is_oldest_first_and_respects_after() -> None:
    box = MemoryOutbox()
    a, b, c = (box.add(notification(receiver="r", n=i)) for i in range(3))
    assert [i.id for i in await box.pending(10)] == [a.id, b.id, c.id]
    assert [i.id for i in await box.pending(1, after=a.seq)] == [b.id]
    await box.mark_delivered([a.id])
    assert [i.id for i in await box.pending(10)] == [b.id, c.id]


async def test_replay_by_id_brings_back_the_rest_of_that_incident_in_order() -> None:
    box = MemoryOutbox()
    t1 = box.add(notification(NotificationKind.TRIGGER, group="g1"))
    r1 = box.add(notification(NotificationKind.RESOLVE, group="g1"))
    t2 = box.add(notification(NotificationKind.TRIGGER, group="g2"))
    for item in (t1, r1, t2):
        await box.dead_letter(item, "client_error")
    assert await box.holds("r", "g1") and await box.holds("r", "g2")
    assert await box.replay(id=t1.id) == 2
    assert not await box.holds("r", "g1")
    assert [i.id for i in await box.pending(10)] == [t1.id, r1.id]
    assert [d.id for d in await box.list()] == [t2.id]


async def test_replay_by_receiver_and_all() -> None:
    box = MemoryOutbox()
    a = box.add(notification(receiver="a"))
    b = box.add(notification(receiver="b"))
    await box.dead_letter(a, "x")
    await box.dead_letter(b, "y")
    assert [d.id for d in await box.list("b")] == [b.id]
    assert await box.replay(receiver="b") == 1
    assert await box.replay() == 1
    assert await box.replay(id="missing") == 0
    assert await box.list() == []
    assert len(await box.pending(10)) == 2
