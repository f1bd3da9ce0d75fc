"""Label matchers: matching, text syntax, string and API forms.

The cases are Alertmanager's own, ported as data from prometheus/alertmanager (main, 2026):
`pkg/labels/parse_test.go` (TestMatchers -> PARSE_CASES) and `pkg/labels/matcher_test.go`
(TestMatcher -> MATCH_CASES, TestMatcherString -> STRING_CASES, TestMatcherJSONMarshal and
TestMatcherJSONUnmarshal -> API_CASES). Where our message differs from Go's, the difference is
the regex engine's wording only (RE2 C++ vs Go's regexp/syntax); the case says so.
"""

from __future__ import annotations

import time

import pytest
from pydantic import ValidationError

from router.noise.matchers import (
    ApiMatcher,
    Matcher,
    MatcherError,
    Matchers,
    MatchType,
    parse_classic_matchers,
    parse_matcher,
    parse_matchers,
)
from tests.unit.noise.conftest import assert_parses

EQ, NE, RE, NRE = MatchType.EQUAL, MatchType.NOT_EQUAL, MatchType.REGEX, MatchType.NOT_REGEX

# (input, expected matchers as (name, type, value), expected error or None)
PARSE_CASES: list[tuple[str, list[tuple[str, MatchType, str]], str | None]] = [
    ("{}", [], None),
    (",", [], "bad matcher format: "),
    ("{,}", [], "bad matcher format: "),
    ("{foo='}", [("foo", EQ, "'")], None),
    ("{foo=`}", [("foo", EQ, "`")], None),
    ('{foo=\\"}', [("foo", EQ, '"')], None),
    ("{foo=bar}", [("foo", EQ, "bar")], None),
    ('{foo="bar"}', [("foo", EQ, "bar")], None),
    ("{foo=~bar.*}", [("foo", RE, "bar.*")], None),
    ('{foo=~"bar.*"}', [("foo", RE, "bar.*")], None),
    ("{foo!=bar}", [("foo", NE, "bar")], None),
    ('{foo!="bar"}', [("foo", NE, "bar")], None),
    ("{foo!~bar.*}", [("foo", NRE, "bar.*")], None),
    ('{foo!~"bar.*"}', [("foo", NRE, "bar.*")], None),
    ('{foo="bar", baz!="quux"}', [("foo", EQ, "bar"), ("baz", NE, "quux")], None),
    ('{foo="bar", baz!~"quux.*"}', [("foo", EQ, "bar"), ("baz", NRE, "quux.*")], None),
    (
        '{foo="bar",baz!~".*quux", derp="wat"}',
        [("foo", EQ, "bar"), ("baz", NRE, ".*quux"), ("derp", EQ, "wat")],
        None,
    ),
    (
        '{foo="bar", baz!="quux", derp="wat"}',
        [("foo", EQ, "bar"), ("baz", NE, "quux"), ("derp", EQ, "wat")],
        None,
    ),
    (
        '{foo="bar", baz!~".*quux.*", derp="wat"}',
        [("foo", EQ, "bar"), ("baz", NRE, ".*quux.*"), ("derp", EQ, "wat")],
        None,
    ),
    (
        '{foo="bar", instance=~"some-api.*"}',
        [("foo", EQ, "bar"), ("instance", RE, "some-api.*")],
        None,
    ),
    ('{foo=""}', [("foo", EQ, "")], None),
    ('{foo="bar,quux", job="job1"}', [("foo", EQ, "bar,quux"), ("job", EQ, "job1")], None),
    ('{foo = "bar", dings != "bums", }', [("foo", EQ, "bar"), ("dings", NE, "bums")], None),
    ("foo=bar,dings!=bums", [("foo", EQ, "bar"), ("dings", NE, "bums")], None),
    (
        '{quote="She said: \\"Hi, ladies! That\'s gender-neutral…\\""}',
        [("quote", EQ, 'She said: "Hi, ladies! That\'s gender-neutral…"')],
        None,
    ),
    ('statuscode=~"5.."', [("statuscode", RE, "5..")], None),
    ("tricky=~~~", [("tricky", RE, "~~")], None),
    ('trickier==\\\\=\\=\\"', [("trickier", EQ, '=\\=\\="')], None),
    (
        'contains_quote != "\\"" , contains_comma !~ "foo,bar" , ',
        [("contains_quote", NE, '"'), ("contains_comma", NRE, "foo,bar")],
        None,
    ),
    ("{foo=bar}}", [("foo", EQ, "bar}")], None),
    ("{foo=bar}},}", [("foo", EQ, "bar}}")], None),
    ("{foo=,bar=}}", [("foo", EQ, ""), ("bar", EQ, "}")], None),
    ("{foo=bar\\t}", [("foo", EQ, "bar\\t")], None),
    ("{foo=bar\\n}", [("foo", EQ, "bar\n")], None),
    ("{foo=bar\\}", [("foo", EQ, "bar\\")], None),
    ("{foo=bar\\\\}", [("foo", EQ, "bar\\")], None),
    ('{foo=bar\\"}', [("foo", EQ, 'bar"')], None),
    ("job=", [("job", EQ, "")], None),
    ('job="value', [], 'matcher value contains unescaped double quote: "value'),
    ('job=value"', [], 'matcher value contains unescaped double quote: value"'),
    ('trickier==\\\\=\\=\\""', [], 'matcher value contains unescaped double quote: =\\\\=\\=\\""'),
    (
        'contains_unescaped_quote = foo"bar',
        [],
        'matcher value contains unescaped double quote: foo"bar',
    ),
    ('{invalid-name = "valid label"}', [], 'bad matcher format: invalid-name = "valid label"'),
    # Go: "error parsing regexp: missing closing ]: `[regexp)$`" (RE2 C++ words it so).
    (
        '{foo=~"invalid[regexp"}',
        [],
        "invalid regular expression 'invalid[regexp': missing ]: [regexp",
    ),
    # Double escaped strings.
    ('"{foo=\\"bar"}', [], 'bad matcher format: "{foo=\\"bar"'),
    ('"foo=\\"bar"', [], 'bad matcher format: "foo=\\"bar"'),
    ('"foo=\\"bar\\""', [], 'bad matcher format: "foo=\\"bar\\""'),
    ('"foo=\\"bar\\"', [], 'bad matcher format: "foo=\\"bar\\"'),
    ('"{foo=\\"bar\\"}"', [], 'bad matcher format: "{foo=\\"bar\\"}"'),
    ('"foo="bar""', [], 'bad matcher format: "foo="bar""'),
    ("{{foo=", [], "bad matcher format: {foo="),
    ("{foo=", [("foo", EQ, "")], None),
    ("{foo=}b", [("foo", EQ, "}b")], None),
    # Beyond Alertmanager's table: UTF-8 values, a newline inside quotes.
    (
        '{team="plateforme-données", svc=~"café|thé"}',
        [("team", EQ, "plateforme-données"), ("svc", RE, "café|thé")],
        None,
    ),
    ('msg="a\nb"', [("msg", EQ, "a\nb")], None),
]


@pytest.mark.parametrize(("text", "want", "error"), PARSE_CASES, ids=[c[0] for c in PARSE_CASES])
def test_parse_classic_matchers(
    text: str, want: list[tuple[str, MatchType, str]], error: str | None
) -> None:
    assert_parses(parse_classic_matchers, text, want, error)


# Alertmanager's default ("fallback") mode, `matcher/compat/parse_test.go`: the classic syntax
# first, the UTF-8 one when the classic one refuses; the classic error when both refuse.
# (input, expected matchers, expected error or None)
FALLBACK_CASES: list[tuple[str, list[tuple[str, MatchType, str]], str | None]] = [
    ("{foo=bar,bar=baz}", [("foo", EQ, "bar"), ("bar", EQ, "baz")], None),
    ("{foo!bar}", [], "bad matcher format: foo!bar"),
    ("{foo🙂=bar,bar=baz🙂}", [("foo🙂", EQ, "bar"), ("bar", EQ, "baz🙂")], None),
    ("{foo=!bar,bar=$baz\\n}", [("foo", EQ, "!bar"), ("bar", EQ, "$baz\n")], None),
    # Disagreement: the classic reading wins (the escapes stay literal).
    ('{foo="\\xf0\\x9f\\x99\\x82"}', [("foo", EQ, "\\xf0\\x9f\\x99\\x82")], None),
    # Beyond AM's table: quoted label names, and names the classic syntax refuses.
    (
        '{"service.name"="api", env=~"prod|stage"}',
        [("service.name", EQ, "api"), ("env", RE, "prod|stage")],
        None,
    ),
    ('{invalid-name = "valid label"}', [("invalid-name", EQ, "valid label")], None),
    ('{"a"=~"("}', [], 'bad matcher format: "a"=~"("'),  # a bad regex in the UTF-8 reading
]


@pytest.mark.parametrize(("text", "want", "error"), FALLBACK_CASES)
def test_parse_matchers_falls_back_like_alertmanager(
    text: str, want: list[tuple[str, MatchType, str]], error: str | None
) -> None:
    assert_parses(parse_matchers, text, want, error)


# (matcher type, matcher value, label value, matches)
MATCH_CASES: list[tuple[MatchType, str, str, bool]] = [
    (EQ, "bar", "bar", True),
    (EQ, "bar", "foo-bar", False),
    (NE, "bar", "bar", False),
    (NE, "bar", "foo-bar", True),
    (RE, "bar", "bar", True),
    (RE, "bar", "foo-bar", False),
    (RE, ".*bar", "foo-bar", True),
    (NRE, "bar", "bar", False),
    (NRE, "bar", "foo-bar", True),
    (NRE, ".*bar", "foo-bar", False),
    (RE, "foo.bar", "foo-bar", True),
    (RE, "foo\\.bar", "foo-bar", False),
    (RE, "foo\\.bar", "foo.bar", True),
    (EQ, "foo\nbar", "foo\nbar", True),
    (RE, "foo.bar", "foo\nbar", False),
    (RE, "(?s)foo.bar", "foo\nbar", True),
    (EQ, '~!="', '~!="', True),
    # Beyond Alertmanager's table: anchoring, alternation inside the anchors, the trailing
    # newline Python's `$` would accept, UTF-8.
    (RE, "a|b", "ab", False),
    (RE, "a|b", "b", True),
    (RE, "bar", "bar\n", False),
    (RE, "caf.", "café", True),
]


@pytest.mark.parametrize(("kind", "pattern", "value", "want"), MATCH_CASES)
def test_matcher_matches_value(kind: MatchType, pattern: str, value: str, want: bool) -> None:
    assert Matcher(name="", value=pattern, type=kind).matches_value(value) is want


# (type, value, labels, matches): a missing label is the empty string.
MISSING_LABEL_CASES: list[tuple[MatchType, str, bool]] = [
    (EQ, "", True),
    (EQ, "prod", False),
    (NE, "prod", True),
    (NE, "", False),
    (RE, ".*", True),
    (RE, ".+", False),
    (NRE, "prod", True),
    (NRE, ".*", False),
]


@pytest.mark.parametrize(("kind", "pattern", "want"), MISSING_LABEL_CASES)
def test_missing_label_is_the_empty_string(kind: MatchType, pattern: str, want: bool) -> None:
    matcher = Matcher(name="env", value=pattern, type=kind)
    assert matcher.matches({"service": "api"}) is want
    assert matcher.matches({"env": ""}) is want


# (name, type, value, String())
STRING_CASES: list[tuple[str, MatchType, str, str]] = [
    ("foo", EQ, "bar", 'foo="bar"'),
    ("foo", NE, "bar", 'foo!="bar"'),
    ("foo", RE, "bar", 'foo=~"bar"'),
    ("foo", NRE, "bar", 'foo!~"bar"'),
    ("foo", EQ, "back\\slash", 'foo="back\\\\slash"'),
    ("foo", EQ, 'double"quote', 'foo="double\\"quote"'),
    ("foo", EQ, "new\nline", 'foo="new\\nline"'),
    ("foo", EQ, "tab\tstop", 'foo="tab\tstop"'),
    ("foo", EQ, "🙂", 'foo="🙂"'),
    ("foo!", NE, "bar", '"foo!"!="bar"'),
    ("foo🙂", EQ, "bar", 'foo🙂="bar"'),
    ("foo bar", EQ, "baz", '"foo bar"="baz"'),
]


@pytest.mark.parametrize(("name", "kind", "value", "want"), STRING_CASES)
def test_matcher_string(name: str, kind: MatchType, value: str, want: str) -> None:
    assert str(Matcher(name=name, value=value, type=kind)) == want


def test_matchers_string_is_what_parse_reads_back() -> None:
    matchers = parse_matchers('{a="x,y", b!~"\\"q\\"", c=~"new\\nline"}')
    assert str(matchers) == '{a="x,y",b!~"\\"q\\"",c=~"new\\nline"}'
    assert parse_matchers(str(matchers)) == matchers


# (type, API JSON)
API_CASES: list[tuple[MatchType, dict[str, object]]] = [
    (EQ, {"name": "foo", "value": "bar", "isRegex": False, "isEqual": True}),
    (NE, {"name": "foo", "value": "bar", "isRegex": False, "isEqual": False}),
    (RE, {"name": "foo", "value": "bar", "isRegex": True, "isEqual": True}),
    (NRE, {"name": "foo", "value": "bar", "isRegex": True, "isEqual": False}),
]


@pytest.mark.parametrize(("kind", "json"), API_CASES)
def test_api_form_round_trip(kind: MatchType, json: dict[str, object]) -> None:
    matcher = Matcher(name="foo", value="bar", type=kind)
    assert matcher.to_api().to_json() == json
    assert list(matcher.to_api().to_json()) == ["isEqual", "isRegex", "name", "value"]  # AM v2
    assert Matcher.from_api(ApiMatcher.model_validate(json)) == matcher


def test_api_is_equal_defaults_to_true() -> None:
    api = ApiMatcher.model_validate({"name": "foo", "value": "bar", "isRegex": False})
    assert Matcher.from_api(api) == Matcher(name="foo", value="bar", type=EQ)


@pytest.mark.parametrize(
    "json",
    [
        {"name": "foo", "value": "bar"},  # isRegex is required by the openapi spec
        {"name": "foo", "value": "bar", "isRegex": "true"},
        {"name": "foo", "isRegex": False},
    ],
)
def test_api_form_rejects_malformed_matchers(json: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ApiMatcher.model_validate(json)


def test_api_form_with_a_bad_regex_is_refused_with_the_reason() -> None:
    api = ApiMatcher.model_validate({"name": "foo", "value": "(", "isRegex": True})
    with pytest.raises(MatcherError, match=r"invalid regular expression '\(': missing \)"):
        Matcher.from_api(api)


def test_invalid_regex_is_a_value_error_naming_the_pattern() -> None:
    with pytest.raises(ValueError, match=r"invalid regular expression 'a\(b'"):
        Matcher(name="x", value="a(b", type=RE)


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("(a)\\1", "invalid escape sequence: \\\\1"),  # backreferences: not in RE2 (nor in Go)
        ("(?=a)", "invalid perl operator: \\(\\?="),  # lookahead: likewise
        ("a)|(.*", "unexpected \\)"),  # would escape the ^(?:...)$ anchoring
    ],
)
def test_regexes_outside_re2_are_refused(pattern: str, why: str) -> None:
    with pytest.raises(MatcherError, match=why):
        parse_matcher(f'x=~"{pattern}"')
    with pytest.raises(ValueError, match=why):
        Matcher(name="x", value=pattern, type=RE)


def test_pathological_regex_matches_in_linear_time() -> None:
    # (a+)+$ on "aaaa...!" takes exponential time with a backtracking engine (Python's re
    # needs minutes at this length); RE2 answers at once. The bound is generous on purpose:
    # it fails only if matching backtracks.
    matcher = Matcher(name="x", value="(a+)+", type=RE)
    value = "a" * 5000 + "!"
    started = time.process_time()
    assert not matcher.matches({"x": value})
    assert time.process_time() - started < 1.0


def test_matchers_all_must_match() -> None:
    matchers = parse_matchers('{alertname="HighErrorRate", env!="dev", cluster=~"eu-.*"}')
    assert matchers.matches({"alertname": "HighErrorRate", "cluster": "eu-1"})
    assert not matchers.matches({"alertname": "HighErrorRate", "cluster": "us-1"})
    assert not matchers.matches({"alertname": "HighErrorRate", "cluster": "eu-1", "env": "dev"})
    assert Matchers.of().matches({"any": "thing"})  # an empty list matches everything


def test_matchers_json_is_a_list() -> None:
    matchers = Matchers.of(Matcher(name="a", value="b"))
    assert matchers.model_dump_json() == '[{"name":"a","value":"b","type":"="}]'
    assert Matchers.model_validate_json(matchers.model_dump_json()) == matchers
    assert matchers.to_api() == [{"name": "a", "value": "b", "isRegex": False, "isEqual": True}]


# (filter value, expected matcher or error): the v2 API's `filter`, one matcher per value
# (TestFallbackMatcherParser's cases, then ours).
FILTER_CASES: list[tuple[str, tuple[str, MatchType, str] | None, str | None]] = [
    ("foo=bar", ("foo", EQ, "bar"), None),
    ("foo!bar", None, "bad matcher format: foo!bar"),
    ("foo🙂=bar", ("foo🙂", EQ, "bar"), None),
    ("foo=!bar\\n", ("foo", EQ, "!bar\n"), None),
    ('foo="\\xf0\\x9f\\x99\\x82"', ("foo", EQ, "\\xf0\\x9f\\x99\\x82"), None),
    ('alertname="Foo"', ("alertname", EQ, "Foo"), None),
    ('"service.name"="api"', ("service.name", EQ, "api"), None),
    ('"a"="b","c"="d"', None, 'bad matcher format: "a"="b","c"="d"'),  # one matcher only
    ("severity=~crit.*", ("severity", RE, "crit.*"), None),
    ('{alertname="Foo"}', None, 'unexpected open or close brace: {alertname="Foo"}'),
    ("alertname=Foo}", None, "unexpected open or close brace: alertname=Foo}"),
    ("alertname", None, "bad matcher format: alertname"),
]


@pytest.mark.parametrize(("text", "want", "error"), FILTER_CASES)
def test_parse_one_filter_matcher(
    text: str, want: tuple[str, MatchType, str] | None, error: str | None
) -> None:
    if error is not None:
        with pytest.raises(MatcherError) as info:
            parse_matcher(text)
        assert str(info.value) == error
        return
    got = parse_matcher(text)
    assert (got.name, got.type, got.value) == want
