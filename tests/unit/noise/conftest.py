"""Helpers shared by the noise tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from router.noise.matchers import MatcherError, Matchers, MatchType

Expected = list[tuple[str, MatchType, str]]


def assert_parses(
    parse: Callable[[str], Matchers], text: str, want: Expected, error: str | None
) -> None:
    """`parse(text)` gives the matchers `want` as (name, type, value), or fails with exactly
    the message `error`."""
    if error is not None:
        with pytest.raises(MatcherError) as info:
            parse(text)
        assert str(info.value) == error
        return
    assert [(m.name, m.type, m.value) for m in parse(text)] == want
