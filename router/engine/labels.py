"""Group keys by the values of a few label names: which groups a new silence can concern.

A silence mutes an alert only if every matcher matches its labels (as silences see them,
`router.noise.muters.labels_of`), so a silence with an equality matcher `name="value"` (value
not empty) can concern only the groups with an alert whose `name` is `value`. The engine keeps
this index for the names such matchers use (a name is added on first use, from every group),
and updates it as groups change, so a silence created looks again at the groups it can match
instead of decoding every group (issue 18). A silence with no such matcher (regexes or negations
only) still concerns every group: `lookup` says so with None.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from router.engine.state import GroupState
from router.model import Alert
from router.noise.matchers import Matchers, MatchType
from router.noise.muters import labels_of
from router.noise.silences import Silence


def indexable(matchers: Matchers) -> str | None:
    """A label name whose value the matchers pin (`name="value"`, value not empty)."""
    for m in matchers:
        if m.type is MatchType.EQUAL and m.value:
            return m.name
    return None


class LabelIndex:
    """name -> value -> group keys with an alert of that label value. Only grows wrong in one
    direction: a key listed that no longer has the value (or is gone) costs a look, never a
    miss."""

    __slots__ = ("_by",)

    def __init__(self) -> None:
        self._by: dict[str, dict[str, set[str]]] = {}

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._by)

    def add_name(self, name: str, states: Iterable[tuple[str, GroupState]]) -> None:
        """Index `name` over `states` (every group held)."""
        by_value: dict[str, set[str]] = {}
        for key, state in states:
            for value in _values(state, (name,)).get(name, ()):
                by_value.setdefault(value, set()).add(key)
        self._by[name] = by_value

    def update(self, key: str, old: GroupState | None, new: GroupState | None) -> None:
        """After a group changed from `old` to `new` (None: absent)."""
        if not self._by or (old is not None and new is not None and _same_labels(old, new)):
            return
        names = tuple(self._by)
        was = _values(old, names) if old is not None else {}
        now = _values(new, names) if new is not None else {}
        for name in names:
            before, after = was.get(name, set()), now.get(name, set())
            by_value = self._by[name]
            for value in before - after:
                keys = by_value.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del by_value[value]
            for value in after - before:
                by_value.setdefault(value, set()).add(key)

    def lookup(self, matchers: Matchers) -> set[str] | None:
        """The groups the matchers can match (a superset), or None: every group."""
        best: set[str] | None = None
        for m in matchers:
            if m.type is MatchType.EQUAL and m.value and m.name in self._by:
                hits = self._by[m.name].get(m.value, set())
                if best is None or len(hits) < len(best):
                    best = hits
        return best


def _values(state: GroupState, names: tuple[str, ...]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for st in state.alerts.values():
        labels = labels_of(st.alert)
        for name in names:
            value = labels.get(name)
            if value:
                out.setdefault(name, set()).add(value)
    return out


def _same_labels(old: GroupState, new: GroupState) -> bool:
    """The same alerts with the same labels (most changes of a group: a time, a flag)."""
    a, b = old.alerts, new.alerts
    if a is b:
        return True
    if a.keys() != b.keys():
        return False
    for key, st in b.items():
        x, y = a[key].alert, st.alert
        if x is not y and (x.labels != y.labels or _extras(x) != _extras(y)):
            return False
    return True


def _extras(alert: Alert) -> tuple[object, ...]:
    """What `labels_of` adds to an alert's labels."""
    return alert.name, alert.severity, alert.service, alert.team


def changed_silences(before: Mapping[str, Silence],
                     after: Mapping[str, Silence]) -> list[Silence]:
    """The silences added, removed or changed between two sets of them (both versions)."""
    return ([s for k, s in before.items() if after.get(k) != s]
            + [s for k, s in after.items() if before.get(k) != s])
