"""The UTF-8 matcher syntax on its own (Alertmanager's `utf8-strict-mode`).

Cases ported as data from prometheus/alertmanager (main, 2026) `matcher/parse/parse_test.go`
(TestMatchers), with its exact error messages; then a few of ours.
"""

from __future__ import annotations

import pytest

from router.noise.matchers import MatchType, parse_utf8_matchers
from tests.unit.noise.conftest import assert_parses

EQ, NE, RE, NRE = MatchType.EQUAL, MatchType.NOT_EQUAL, MatchType.REGEX, MatchType.NOT_REGEX

# (name, input, expected matchers as (name, type, value), expected error or None)
CASES: list[tuple[str, str, list[tuple[str, MatchType, str]], str | None]] = [
    ("no braces", "", [], None),
    ("open and closing braces", "{}", [], None),
    ("equals", "{foo=bar}", [("foo", EQ, "bar")], None),
    ("equals with trailing comma", "{foo=bar,}", [("foo", EQ, "bar")], None),
    ("not equals", "{foo!=bar}", [("foo", NE, "bar")], None),
    ("match regex", "{foo=~[a-z]+}", [("foo", RE, "[a-z]+")], None),
    ("doesn't match regex", "{foo!~[a-z]+}", [("foo", NRE, "[a-z]+")], None),
    ("equals unicode emoji", "{foo=🙂}", [("foo", EQ, "🙂")], None),
    ("equals unicode sentence", "{foo=🙂bar}", [("foo", EQ, "🙂bar")], None),
    ("equals without braces", "foo=bar", [("foo", EQ, "bar")], None),
    ("equals without braces but with trailing comma", "foo=bar,", [("foo", EQ, "bar")], None),
    ("not equals without braces", "foo!=bar", [("foo", NE, "bar")], None),
    ("match regex without braces", "foo=~[a-z]+", [("foo", RE, "[a-z]+")], None),
    ("doesn't match regex without braces", "foo!~[a-z]+", [("foo", NRE, "[a-z]+")], None),
    ("equals in quotes", '{"foo"="bar"}', [("foo", EQ, "bar")], None),
    ("equals in quotes and with trailing comma", '{"foo"="bar",}', [("foo", EQ, "bar")], None),
    ("not equals in quotes", '{"foo"!="bar"}', [("foo", NE, "bar")], None),
    ("match regex in quotes", '{"foo"=~"[a-z]+"}', [("foo", RE, "[a-z]+")], None),
    ("match regex digit in quotes", '{"foo"=~"\\\\d+"}', [("foo", RE, "\\d+")], None),
    ("doesn't match regex in quotes", '{"foo"!~"[a-z]+"}', [("foo", NRE, "[a-z]+")], None),
    ("equals unicode emoji in quotes", '{"foo"="🙂"}', [("foo", EQ, "🙂")], None),
    (
        "equals unicode emoji as bytes in quotes",
        '{"foo"="\\xf0\\x9f\\x99\\x82"}',
        [("foo", EQ, "🙂")],
        None,
    ),
    (
        "equals unicode emoji as code points in quotes",
        '{"foo"="\\U0001f642"}',
        [("foo", EQ, "🙂")],
        None,
    ),
    ("equals unicode sentence in quotes", '{"foo"="🙂bar"}', [("foo", EQ, "🙂bar")], None),
    ("equals with newline in quotes", '{"foo"="bar\\n"}', [("foo", EQ, "bar\n")], None),
    ("equals with tab in quotes", '{"foo"="bar\\t"}', [("foo", EQ, "bar\t")], None),
    (
        "equals with escaped quotes in quotes",
        '{"foo"="\\"bar\\""}',
        [("foo", EQ, '"bar"')],
        None,
    ),
    (
        "equals with escaped backslash in quotes",
        '{"foo"="bar\\\\"}',
        [("foo", EQ, "bar\\")],
        None,
    ),
    ("equals without braces in quotes", '"foo"="bar"', [("foo", EQ, "bar")], None),
    (
        "equals without braces in quotes with trailing comma",
        '"foo"="bar",',
        [("foo", EQ, "bar")],
        None,
    ),
    ("complex", "{foo=bar,bar!=baz}", [("foo", EQ, "bar"), ("bar", NE, "baz")], None),
    (
        "complex in quotes",
        '{foo="bar",bar!="baz"}',
        [("foo", EQ, "bar"), ("bar", NE, "baz")],
        None,
    ),
    ("complex without braces", "foo=bar,bar!=baz", [("foo", EQ, "bar"), ("bar", NE, "baz")], None),
    (
        "complex without braces in quotes",
        'foo="bar",bar!="baz"',
        [("foo", EQ, "bar"), ("bar", NE, "baz")],
        None,
    ),
    ("comma", ",", [], "0:1: unexpected ,: expected label name"),
    ("comma in braces", "{,}", [], "1:2: unexpected ,: expected label name"),
    ("open brace", "{", [], "0:1: end of input: expected close brace"),
    ("close brace", "}", [], "0:1: }: expected opening brace"),
    ("no open brace", "foo=bar}", [], "0:8: }: expected opening brace"),
    ("no close brace", "{foo=bar", [], "0:8: end of input: expected close brace"),
    (
        "invalid input after operator and before quotes",
        '{foo=:"bar"}',
        [],
        '6:11: unexpected "bar": expected a comma or close brace',
    ),
    ("invalid escape sequence", '{foo="bar\\w"}', [], '5:12: "bar\\w": invalid input'),
    (
        "invalid escape sequence regex digits",
        '{"foo"=~"\\d+"}',
        [],
        '8:13: "\\d+": invalid input',
    ),
    (
        "no unquoted escape sequences",
        "{foo=bar\\n}",
        [],
        "8:9: \\: invalid input: expected a comma or close brace",
    ),
    ("invalid unicode", '{"foo"="\\xf0\\x9f"}', [], '7:17: "\\xf0\\x9f": invalid input'),
    # Beyond AM's table.
    ("dotted name", '{"service.name"=~"api|web"}', [("service.name", RE, "api|web")], None),
    ("spaces around", ' { a = b , c != "d" } ', [("a", EQ, "b"), ("c", NE, "d")], None),
    (
        "lone bang",
        "{foo!bar}",
        [],
        "4:5: !: expected one of '=~': expected an operator such as '=', '!=', '=~' or '!~'",
    ),
    ("unterminated quote", '{foo="bar}', [], '5:10: "bar}: missing end ": expected label value'),
    ("text after the close brace", "{a=b} c", [], "6:7: c: expected end of input"),
    (
        "no operator",
        "{a b}",
        [],
        "3:4: unexpected b: expected an operator such as '=', '!=', '=~' or '!~'",
    ),
    ("no value", "{a=}", [], "3:4: unexpected }: expected label value"),
    ("octal escape", '{"a"="\\101"}', [("a", EQ, "A")], None),
    ("surrogate escape", '{"a"="\\ud800"}', [], '5:13: "\\ud800": invalid input'),
]


@pytest.mark.parametrize(
    ("text", "want", "error"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_parse_utf8_matchers(
    text: str, want: list[tuple[str, MatchType, str]], error: str | None
) -> None:
    assert_parses(parse_utf8_matchers, text, want, error)
