"""`Overlay`: an immutable mapping whose updated versions share what did not change.

A version is a base dict, shared by every version made from it and never changed, plus a small
dict of its own changes. Updating copies the changes only, not every entry; once they outgrow
the square root of the base they are folded into a new base. A change thus costs O(√n)
amortized instead of the O(n) of copying a dict, and the versions a batch drops free their
changes, not a copy of everything.

The engine keeps its inhibiting incidents by service this way (`router.engine.noise.Noise`):
each batch that opened a SEV1 incident of a new service copied the whole mapping, so that cost
grew with the services held (issue 18: ~15,000 after 15 s of the SEV1 bench row).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

_MISSING = object()
# Changes kept beside the base before they are folded in, besides the square root rule.
_SMALL = 64


class Overlay(Mapping[K, V], Generic[K, V]):
    __slots__ = ("_base", "_changes", "_len")

    def __init__(self, base: Mapping[K, V] | None = None) -> None:
        self._base: dict[K, V] = dict(base) if base is not None else {}
        # Key -> new value, or None: removed (values are never None).
        self._changes: dict[K, V | None] = {}
        self._len = len(self._base)

    def __getitem__(self, key: K) -> V:
        found = self._changes.get(key, _MISSING)
        if found is _MISSING:
            return self._base[key]
        if found is None:
            raise KeyError(key)
        return found  # type: ignore[return-value]

    def get(self, key: K, default: V | None = None) -> V | None:  # type: ignore[override]
        found = self._changes.get(key, _MISSING)
        if found is _MISSING:
            return self._base.get(key, default)
        return default if found is None else found  # type: ignore[return-value]

    def __contains__(self, key: object) -> bool:
        found = self._changes.get(key, _MISSING)  # type: ignore[arg-type]
        return key in self._base if found is _MISSING else found is not None

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[K]:
        """In the order of `{**base, **changes}` without the removed keys (a dict's)."""
        changes = self._changes
        for key in self._base:
            if changes.get(key, _MISSING) is not None:
                yield key
        for key, value in changes.items():
            if value is not None and key not in self._base:
                yield key

    def __repr__(self) -> str:
        return f"Overlay({dict(self.items())!r})"

    def updated(self, changes: Mapping[K, V | None]) -> Overlay[K, V]:
        """A new version with `changes` applied (None: remove the key); this one unchanged."""
        base = self._base
        mine = dict(self._changes)
        length = self._len
        for key, value in changes.items():
            length += (value is not None) - (key in self)
            if value is None and key not in base:
                mine.pop(key, None)
            else:
                mine[key] = value
        out: Overlay[K, V] = Overlay.__new__(Overlay)
        if len(mine) > _SMALL and len(mine) ** 2 > len(base):
            folded = {**base, **mine}
            for key, value in mine.items():
                if value is None:
                    del folded[key]
            out._base, out._changes = folded, {}  # type: ignore[assignment]
        else:
            out._base, out._changes = base, mine
        out._len = length
        return out
