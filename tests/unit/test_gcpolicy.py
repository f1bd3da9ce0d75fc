"""The serve process's collector settings: fewer young collections, cycles still collected."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from router.gcpolicy import YOUNG_THRESHOLD, tune


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_young_collections_every_10000_allocations_older_ratios_kept(restored_gc: None) -> None:
    _, middle, old = gc.get_threshold()
    tune()
    assert gc.get_threshold() == (YOUNG_THRESHOLD, middle, old)


def test_what_the_process_holds_at_start_is_frozen(restored_gc: None) -> None:
    held = [Node() for _ in range(100)]
    tune()
    assert gc.get_freeze_count() >= len(held)


def test_a_cycle_made_after_start_is_still_collected_without_an_explicit_collect(
        restored_gc: None) -> None:
    tune()
    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    assert gone() is not None  # a cycle: reference counting alone cannot free it
    # Enough new containers for a young collection and the next middle one to run on their own.
    keep: list[list[int]] = [[] for _ in range(YOUNG_THRESHOLD * 12)]
    assert gone() is None
    del keep
