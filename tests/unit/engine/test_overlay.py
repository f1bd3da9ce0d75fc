"""`Overlay`: every version reads like the dict its updates would have made, and stays so."""

from __future__ import annotations

import random

import pytest

from router.engine.overlay import Overlay


def test_reads_like_the_dict_it_was_built_from() -> None:
    o = Overlay({"a": 1, "b": 2})
    assert o == {"a": 1, "b": 2}
    assert o["a"] == 1 and o.get("c") is None and o.get("c", 3) == 3
    assert "a" in o and "c" not in o and len(o) == 2
    with pytest.raises(KeyError):
        o["c"]


def test_an_update_leaves_the_version_it_came_from_as_it_was() -> None:
    first = Overlay({"a": 1, "b": 2})
    second = first.updated({"a": None, "c": 3, "b": 4})
    assert first == {"a": 1, "b": 2}
    assert second == {"b": 4, "c": 3}
    assert list(second) == ["b", "c"]  # the order of {**base, **changes}, removed left out
    assert "a" not in second and second.get("a") is None and len(second) == 2
    with pytest.raises(KeyError):
        second["a"]
    # Removing what is not there, or adding back what was removed.
    third = second.updated({"zz": None, "a": 5})
    assert third == {"b": 4, "c": 3, "a": 5} and len(third) == 3
    assert second == {"b": 4, "c": 3}


@pytest.mark.parametrize("seed", range(5))
def test_many_versions_match_dicts_through_folding(seed: int) -> None:
    """Random updates over a few thousand versions (the changes are folded into a new base
    many times): each version equals the dict made by the same updates."""
    rng = random.Random(seed)
    model: dict[str, int] = {f"k{i}": i for i in range(300)}
    o: Overlay[str, int] = Overlay(model)
    kept: list[tuple[Overlay[str, int], dict[str, int]]] = []
    for step in range(3000):
        changes: dict[str, int | None] = {}
        for _ in range(rng.randint(1, 4)):
            key = f"k{rng.randrange(600)}"
            changes[key] = None if rng.random() < 0.4 else step
        expected = {**model, **{k: v for k, v in changes.items() if v is not None}}
        for key, value in changes.items():
            if value is None:
                expected.pop(key, None)
        o, model = o.updated(changes), expected
        assert len(o) == len(model)
        if step % 250 == 0:
            kept.append((o, dict(model)))
    assert o == model and sorted(o.items()) == sorted(model.items())
    for version, snapshot in kept:
        assert version == snapshot and len(version) == len(snapshot)
        assert all(version.get(k) == snapshot.get(k) for k in (f"k{i}" for i in range(600)))
