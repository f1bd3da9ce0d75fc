"""Delivery records: what was already sent, and the vendor handles to continue a conversation.

After a crash between "vendor accepted" and "outbox marked delivered", the item comes back;
the Dispatcher asks `already_delivered` before sending again (vital for Slack and Teams, which
have no dedup key). Sinks keep vendor references per dedup key here: Slack's (channel, ts) of
the first message, Statuspage's incident id.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar
from typing import Protocol, runtime_checkable

# The group of the notification a sink is sending (the Dispatcher sets it around `send`): a
# store files the refs the sink writes under it, so retention drops them with the group.
sending_group: ContextVar[str | None] = ContextVar("sending_group", default=None)


class DeliveryStore(Protocol):
    async def already_delivered(self, notification_id: str, receiver: str) -> bool: ...

    async def record(self, notification_id: str, receiver: str) -> None: ...

    async def get_ref(self, receiver: str, key: str) -> dict[str, str] | None:
        """The vendor reference stored for (receiver, key), e.g. {"channel":..., "ts":...}."""
        ...

    async def put_ref(self, receiver: str, key: str, ref: dict[str, str]) -> None: ...


@runtime_checkable
class BatchDeliveryStore(DeliveryStore, Protocol):
    """A store that answers `already_delivered` for many items in one read.

    The Dispatcher asks it once per batch taken from the outbox instead of once per item. That
    is as good as asking right before sending because only the Dispatcher writes records, and
    only for an item it holds, which no other lane can hold at the same time.
    """

    async def delivered_among(
        self, keys: Iterable[tuple[str, str]]
    ) -> set[tuple[str, str]]:
        """Those (notification id, receiver) pairs that have a delivery record."""
        ...


class MemoryDeliveryStore:
    def __init__(self) -> None:
        self._delivered: set[tuple[str, str]] = set()
        self._refs: dict[tuple[str, str], dict[str, str]] = {}

    async def already_delivered(self, notification_id: str, receiver: str) -> bool:
        return (notification_id, receiver) in self._delivered

    async def delivered_among(self, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        return {k for k in keys if k in self._delivered}

    async def record(self, notification_id: str, receiver: str) -> None:
        self._delivered.add((notification_id, receiver))

    async def get_ref(self, receiver: str, key: str) -> dict[str, str] | None:
        ref = self._refs.get((receiver, key))
        return dict(ref) if ref is not None else None

    async def put_ref(self, receiver: str, key: str, ref: dict[str, str]) -> None:
        self._refs[(receiver, key)] = dict(ref)
