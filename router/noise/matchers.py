"""Alertmanager's label matchers: `=`, `!=`, `=~`, `!~`, their text syntax and their API form.

Semantics follow Alertmanager's `pkg/labels` (matcher.go, parse.go):

- a label missing from the alert matches as the empty string (`env!="prod"` matches an alert
  without `env`; `env=""` matches it too);
- regexes are fully anchored, `^(?:pattern)$`, and compiled with RE2 (`google-re2`), never with
  Python's backtracking `re`: patterns come from anyone with API access, and RE2 matches in linear
  time, with Go's (Alertmanager's) syntax and semantics (`.` does not match a newline unless
  `(?s)`);
- the text syntax is the one amtool, the v2 API's `filter` parameter and Alertmanager's config
  accept: `{a="b", c=~"d.*"}`, braces optional, values quoted or bare. As in Alertmanager's
  default ("fallback") mode, the classic syntax (`pkg/labels/parse.go`) is tried first and the
  newer UTF-8 one (`utf8_syntax`, quoted label names) only when the classic one fails.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from enum import StrEnum
from typing import Any

import re2
from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator

from router.model import Frozen
from router.noise.utf8_syntax import Utf8SyntaxError, parse_utf8


class MatcherError(ValueError):
    """A matcher that cannot be built or parsed; the message says what is wrong."""


class MatchType(StrEnum):
    EQUAL = "="
    NOT_EQUAL = "!="
    REGEX = "=~"
    NOT_REGEX = "!~"

    @property
    def is_regex(self) -> bool:
        return self in (MatchType.REGEX, MatchType.NOT_REGEX)

    @property
    def is_equal(self) -> bool:
        """True for the positive forms (`=`, `=~`): the API's `isEqual`."""
        return self in (MatchType.EQUAL, MatchType.REGEX)

    @classmethod
    def of(cls, *, is_regex: bool, is_equal: bool) -> MatchType:
        """The type the API's `isRegex`/`isEqual` pair stands for."""
        if is_regex:
            return cls.REGEX if is_equal else cls.NOT_REGEX
        return cls.EQUAL if is_equal else cls.NOT_EQUAL


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # errors are raised to the caller, not printed on stderr


@functools.lru_cache(maxsize=4096)
def compile_anchored(pattern: str) -> Any:
    """`^(?:pattern)$` compiled with RE2; MatcherError if `pattern` is not a valid regex.

    The pattern must also be valid on its own: Alertmanager's silences check that too, and it
    stops `a)|(.*` from escaping the anchoring group.
    """
    for candidate in (pattern, f"^(?:{pattern})$"):
        try:
            compiled = re2.compile(candidate, _RE2_OPTIONS)
        except re2.error as exc:
            reason = exc.args[0] if exc.args else exc
            if isinstance(reason, bytes):
                reason = reason.decode("utf-8", "replace")
            raise MatcherError(f"invalid regular expression {pattern!r}: {reason}") from None
    return compiled


class Matcher(Frozen):
    """One label matcher. Construction compiles a regex value (MatcherError if invalid)."""

    name: str
    value: str
    type: MatchType = MatchType.EQUAL

    @model_validator(mode="after")
    def _regex_compiles(self) -> Matcher:
        if self.type.is_regex:
            compile_anchored(self.value)
        return self

    @classmethod
    def of(cls, name: str, value: str, type: MatchType = MatchType.EQUAL) -> Matcher:
        """A matcher; a bad regex raises MatcherError (not pydantic's ValidationError)."""
        return _build(name, type, value)

    def matches_value(self, value: str) -> bool:
        """Whether a label value (the empty string for a missing label) satisfies this."""
        if self.type is MatchType.EQUAL:
            return value == self.value
        if self.type is MatchType.NOT_EQUAL:
            return value != self.value
        found = compile_anchored(self.value).search(value) is not None
        return found if self.type is MatchType.REGEX else not found

    def matches(self, labels: Mapping[str, str]) -> bool:
        return self.matches_value(labels.get(self.name, ""))

    def __str__(self) -> str:
        """Alertmanager's String(): `name="value"`, or both quoted when the name needs it."""
        if any(_is_reserved(c) for c in self.name):
            return f"{go_quote(self.name)}{self.type}{go_quote(self.value)}"
        return f'{self.name}{self.type}"{_openmetrics_escape(self.value)}"'

    def to_api(self) -> ApiMatcher:
        return ApiMatcher(
            name=self.name,
            value=self.value,
            is_regex=self.type.is_regex,
            is_equal=self.type.is_equal,
        )

    @classmethod
    def from_api(cls, api: ApiMatcher) -> Matcher:
        """The matcher an API matcher describes; MatcherError if its regex is invalid."""
        kind = MatchType.of(is_regex=api.is_regex, is_equal=api.is_equal)
        return _build(api.name, kind, api.value)


class ApiMatcher(BaseModel):
    """The v2 API's `matcher`: `{"isEqual","isRegex","name","value"}` (the order Alertmanager
    writes), isEqual defaulting to true as in its openapi spec. Strict types: `"true"` is not a
    boolean."""

    model_config = ConfigDict(frozen=True, strict=True, populate_by_name=True)

    is_equal: bool = Field(default=True, alias="isEqual")
    is_regex: bool = Field(alias="isRegex")
    name: str
    value: str

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True)


class Matchers(RootModel[tuple[Matcher, ...]]):
    """A matcher list that matches a label set when every matcher does (an empty one always
    matches). Serialises as a JSON list of matchers."""

    model_config = ConfigDict(frozen=True)

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.root)

    def __iter__(self) -> Iterator[Matcher]:  # type: ignore[override]
        return iter(self.root)

    def __len__(self) -> int:
        return len(self.root)

    def __getitem__(self, index: int) -> Matcher:
        return self.root[index]

    def __str__(self) -> str:
        return "{" + ",".join(str(m) for m in self.root) + "}"

    def to_api(self) -> list[dict[str, Any]]:
        return [m.to_api().to_json() for m in self.root]

    @classmethod
    def of(cls, *matchers: Matcher) -> Matchers:
        return cls(tuple(matchers))

    @classmethod
    def from_api(cls, items: list[ApiMatcher]) -> Matchers:
        return cls(tuple(Matcher.from_api(m) for m in items))


# -- text syntax (Alertmanager's pkg/labels/parse.go) ---------------------------------------

# '=~' before '=' so that `a=~b` is not `a` `=` `~b`. RE2 as well: this runs on user input too.
_MATCHER_RE = re2.compile(
    r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(=~|=|!=|!~)\s*((?s).*?)\s*$", _RE2_OPTIONS
)


def parse_matchers(text: str) -> Matchers:
    """Parse a comma-separated matcher list as amtool and Alertmanager's config do.

    A leading `{` and a trailing `}` are optional; commas inside double quotes do not separate;
    a trailing comma is allowed. Values may be quoted (`\\"`, `\\n`, `\\\\` escapes) or bare.
    Input the classic syntax refuses is read with the UTF-8 syntax (`{"service.name"="api"}`);
    when both refuse it, MatcherError gives the classic reason, e.g.
    `bad matcher format: invalid-name="x"`.
    """
    try:
        return parse_classic_matchers(text)
    except MatcherError as classic:
        try:
            parsed = parse_utf8(text)
            return Matchers(tuple(_build(n, MatchType(op), v) for n, op, v in parsed))
        except (Utf8SyntaxError, MatcherError):
            raise classic from None


def parse_utf8_matchers(text: str) -> Matchers:
    """Parse with the UTF-8 syntax only (Alertmanager's `utf8-strict-mode`); MatcherError with
    its message, e.g. `0:8: }: expected opening brace`."""
    try:
        parsed = parse_utf8(text)
    except Utf8SyntaxError as exc:
        raise MatcherError(str(exc)) from None
    return Matchers(tuple(_build(n, MatchType(op), v) for n, op, v in parsed))


def parse_classic_matchers(text: str) -> Matchers:
    """Parse with the classic syntax only (`pkg/labels/parse.go`, Alertmanager's
    `classic-mode`)."""
    s = text.removeprefix("{").removesuffix("}")
    tokens: list[str] = []
    token: list[str] = []
    inside_quotes = escaped = False
    for c in s:
        if c == ",":
            if not inside_quotes:
                tokens.append("".join(token))
                token = []
                continue
        elif c == '"':
            if escaped:
                escaped = False
            else:
                inside_quotes = not inside_quotes
        elif c == "\\":
            escaped = not escaped
        else:
            escaped = False
        token.append(c)
    last = "".join(token).strip()
    if last:
        tokens.append(last)
    return Matchers(tuple(_parse_one(t) for t in tokens))


def parse_matcher(text: str) -> Matcher:
    """Parse one matcher, as the v2 API parses each `filter` value: braces are refused."""
    if text.startswith("{") or text.endswith("}"):
        raise MatcherError(f"unexpected open or close brace: {text}")
    try:
        return _parse_one(text)
    except MatcherError as classic:
        try:
            parsed = parse_utf8(text)
            if len(parsed) == 1:
                name, op, value = parsed[0]
                return _build(name, MatchType(op), value)
        except (Utf8SyntaxError, MatcherError):
            pass
        raise classic from None


def _parse_one(s: str) -> Matcher:
    found = _MATCHER_RE.search(s)
    if found is None:
        raise MatcherError(f"bad matcher format: {s}")
    name, op, raw_value = found.groups()
    raw = raw_value
    expect_trailing_quote = raw.startswith('"')
    if expect_trailing_quote:
        raw = raw[1:]
    value: list[str] = []
    escaped = False
    last = len(raw) - 1
    for i, c in enumerate(raw):
        if escaped:
            escaped = False
            if c == "n":
                value.append("\n")
            elif c in '"\\':
                value.append(c)
            else:  # a spurious escape: the backslash is literal
                value.append("\\" + c)
            continue
        if c == "\\":
            if i < last:
                escaped = True
                continue
            value.append("\\")  # a backslash as the last character is literal
        elif c == '"':
            if not expect_trailing_quote or i < last:
                raise MatcherError(f"matcher value contains unescaped double quote: {raw_value}")
            expect_trailing_quote = False
        else:
            value.append(c)
    if expect_trailing_quote:
        raise MatcherError(f"matcher value contains unescaped double quote: {raw_value}")
    return _build(name, MatchType(op), "".join(value))


def _build(name: str, kind: MatchType, value: str) -> Matcher:
    """A Matcher, with a bad regex reported as MatcherError (not pydantic's ValidationError)."""
    if kind.is_regex:
        compile_anchored(value)
    return Matcher.build(name=name, value=value, type=kind)


# -- text output -----------------------------------------------------------------------------


def _is_reserved(c: str) -> bool:
    """Characters that make Alertmanager quote a label name when printing a matcher."""
    return c.isspace() or c in "{}!=~,\\\"'`"


def _openmetrics_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
               "\v": "\\v", '"': '\\"', "\\": "\\\\"}  # fmt: skip


def go_quote(s: str) -> str:
    """Go's strconv.Quote (`%q`), which Alertmanager uses for names and in its messages."""
    out = ['"']
    for c in s:
        if c in _GO_ESCAPES:
            out.append(_GO_ESCAPES[c])
        elif c.isprintable():
            out.append(c)
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\x{ord(c):02x}")
        elif ord(c) < 0x10000:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(f"\\U{ord(c):08x}")
    out.append('"')
    return "".join(out)


def parsable(lines: tuple[str, ...]) -> tuple[str, ...]:
    """A config field of matcher strings, checked at load (MatcherError names the problem);
    kept as strings, parsed where they are applied."""
    for line in lines:
        parse_matchers(line)
    return lines
