"""Which current alerts matchers select, asked of the store so that it reads only labels
(`Backend.alerts_matching`): a new silence's preview, and the alert that inhibits another."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence

from router.backends.base import Backend
from router.backends.filters import LABEL_NAME, AlertQuery, LabelTest
from router.model import Alert, Status
from router.noise.inhibit import InhibitRule, inhibited_by
from router.noise.matchers import Matcher, Matchers, MatchType
from router.noise.muters import labels_of


def narrowing(matchers: Iterable[Matcher], equal: Iterable[tuple[str, str]] = ()) -> AlertQuery:
    """The firing alerts whose labels have the values of the equality matchers and of the
    `equal` pairs (those on a non-empty value and a plain name): every alert the matchers can
    match is among them, and the store finds them by those values."""
    pairs = [*((m.name, m.value) for m in matchers if m.type is MatchType.EQUAL), *equal]
    return AlertQuery(status=Status.FIRING.value,
                      labels=tuple((n, v) for n, v in pairs if v and LABEL_NAME.fullmatch(n)))


def label_test(matchers: Matchers) -> LabelTest:
    """`matchers.matches`, each regex matcher's answer remembered per value for one scan of
    the alerts: values repeat (services, alert names, severities) and RE2 costs microseconds
    a call from Python."""
    tests = [(m.name, functools.cache(m.matches_value) if m.type.is_regex else m.matches_value)
             for m in matchers]

    def keeps(labels: Mapping[str, str]) -> bool:
        return all(test(labels.get(name, "")) for name, test in tests)

    return keeps


async def inhibitor_of(backend: Backend, alert: Alert,
                       rules: Sequence[InhibitRule]) -> Alert | None:
    """The source alert that inhibits firing `alert` under the first rule (in order) that has
    one, the latest of them: the one `inhibited_by` finds among every firing alert (latest
    first). Each rule targeting it asks the store for the alerts its source side's equality
    matchers and `equal` labels allow, tested on their labels with `inhibited_by` itself."""
    if alert.status is not Status.FIRING:
        return None
    target = labels_of(alert)
    for rule in rules:
        if not rule.target_matchers.matches(target):
            continue
        narrow = narrowing(rule.source_matchers, ((n, target.get(n, "")) for n in rule.equal))

        def inhibits(labels: Mapping[str, str], rule: InhibitRule = rule) -> bool:
            return inhibited_by(target, (labels,), (rule,)) is not None

        found = await backend.alerts_matching(narrow, inhibits, limit=1)
        if found.items:
            return found.items[0]
    return None
