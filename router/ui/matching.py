"""Which current alerts matchers select, asked of the store so that it reads only labels
(`Backend.alerts_matching`): a new silence's preview, and the alert that inhibits another."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence

import re2

from router.backends.base import Backend
from router.backends.filters import LABEL_NAME, AlertQuery, LabelTest
from router.model import Alert, Status
from router.noise.inhibit import InhibitRule, inhibited_by
from router.noise.matchers import Matcher, Matchers, MatchType, compile_anchored
from router.noise.muters import labels_of

# How long RE2 lets a match be when bounding a regex's matches (longer: tighter bounds).
RANGE_LENGTH = 64


def narrowing(matchers: Iterable[Matcher], equal: Iterable[tuple[str, str]] = ()) -> AlertQuery:
    """The firing alerts whose labels have the values of the equality matchers and of the
    `equal` pairs (those on a non-empty value and a plain name), and values within the bounds
    of the regex matchers: every alert the matchers can match is among them, and the store
    finds them by those values."""
    pairs = [*((m.name, m.value) for m in matchers if m.type is MatchType.EQUAL), *equal]
    ranges = [(m.name, *bounds) for m in matchers
              if m.type is MatchType.REGEX and (bounds := match_range(m.value))]
    return AlertQuery(status=Status.FIRING.value,
                      labels=tuple((n, v) for n, v in pairs if v and LABEL_NAME.fullmatch(n)),
                      ranges=tuple(r for r in ranges if LABEL_NAME.fullmatch(r[0])))


def match_range(pattern: str) -> tuple[bytes, bytes] | None:
    """Bounds every value the anchored regex matches lies between as UTF-8, in byte order
    (RE2's PossibleMatchRange: `api-.*` between `api-` and `api-\\xf4...`); None when RE2
    cannot bound it or the bounds exclude next to nothing (`.*`)."""
    try:
        low, high = compile_anchored(pattern).possiblematchrange(RANGE_LENGTH)
    except re2.error:
        return None
    if not low.strip(b"\x00") and high[:1] >= b"\xf4":
        return None
    return low, high


def label_test(matchers: Matchers) -> LabelTest:
    """`matchers.matches`, each regex matcher's answer remembered per value for one scan of
    the alerts: values repeat (services, alert names, severities) and RE2 costs microseconds
    a call from Python."""
    tests = [(m.name, functools.cache(m.matches_value) if m.type.is_regex else m.matches_value)
             for m in matchers]

    def keeps(labels: Mapping[str, str]) -> bool:
        for name, test in tests:  # noqa: SIM110 (a loop, not all(...): once per alert)
            if not test(labels.get(name, "")):
                return False
        return True

    return keeps


async def inhibitor_of(backend: Backend, alert: Alert,
                       rules: Sequence[InhibitRule]) -> Alert | None:
    """The source alert that inhibits firing `alert` under the first rule (in order) that has
    one, the latest of them: the one `inhibited_by` finds among every firing alert (latest
    first). A rule whose source side and `equal` labels give values to narrow by is one read
    of the alerts with them; the rules without share one read of every firing alert's labels."""
    if alert.status is not Status.FIRING:
        return None
    target = labels_of(alert)
    targeting = [r for r in rules if r.target_matchers.matches(target)]
    queries = [narrowing(r.source_matchers, ((n, target.get(n, "")) for n in r.equal))
               for r in targeting]
    broad = [(n, r) for n, (r, q) in enumerate(zip(targeting, queries, strict=True))
             if not (q.labels or q.ranges)]
    best = await _first_source(backend, target, broad, AlertQuery(
        status=Status.FIRING.value)) if broad else None
    for n, (rule, query) in enumerate(zip(targeting, queries, strict=True)):
        if best is not None and n >= best[0]:
            break
        if (query.labels or query.ranges) and (
                found := await _first_source(backend, target, [(n, rule)], query)):
            return found[1]
    return best[1] if best else None


async def _first_source(backend: Backend, target: Mapping[str, str],
                        rules: list[tuple[int, InhibitRule]],
                        query: AlertQuery) -> tuple[int, Alert] | None:
    """The first of `rules` (numbered, in order) with a source inhibiting `target` among the
    alerts `query` keeps, and its latest source: the latest source of any of them, then again
    with only the rules before its rule, until there is none."""
    best = None
    while rules:
        found = await backend.alerts_matching(query, _source_test(target, rules), limit=1)
        if not found.items:
            break
        source = labels_of(found.items[0])
        first = next(k for k, (_, rule) in enumerate(rules)
                     if inhibited_by(target, (source,), (rule,)) is not None)
        best = (rules[first][0], found.items[0])
        rules = rules[:first]
    return best


def _source_test(target: Mapping[str, str], rules: list[tuple[int, InhibitRule]]) -> LabelTest:
    """Whether labels are of an alert inhibiting `target` under one of `rules`, by
    `inhibited_by`; its source matchers first, as `label_test` (remembered regex answers)."""
    tests = [(label_test(rule.source_matchers), rule) for _, rule in rules]

    def inhibits(labels: Mapping[str, str]) -> bool:
        return any(test(labels) and inhibited_by(target, (labels,), (rule,)) is not None
                   for test, rule in tests)

    return inhibits
