"""Alertmanager's newer "UTF-8" matcher syntax (`matcher/parse`), which allows quoted label
names: `{"service.name"="api", 🙂=~"x|y"}`.

A port of Alertmanager's lexer and parser, with their error messages (positions count
characters). It only reads the syntax and returns `(name, operator, value)` triples:
`router.noise.matchers` builds the matchers and decides, as Alertmanager's default "fallback"
mode does, when this syntax applies (only when the classic one fails).

Differences from the classic syntax: label names may be any text, quoted (with Go's escapes,
`\\xf0`, `\\u00e9`, ...) or bare up to a reserved character (space and `{}!=~,\\"'\\``); bare
values stop at the same characters; a `}` without `{` and text after `}` are errors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, auto


class Utf8SyntaxError(ValueError):
    """Input that is not a matcher list in the UTF-8 syntax; the message says where."""


class _EndOfInput(Utf8SyntaxError):
    def __init__(self) -> None:
        super().__init__("end of input")


class _Kind(Enum):
    EOF = auto()
    OPEN_BRACE = auto()
    CLOSE_BRACE = auto()
    COMMA = auto()
    EQUALS = auto()
    NOT_EQUALS = auto()
    MATCHES = auto()
    NOT_MATCHES = auto()
    QUOTED = auto()
    UNQUOTED = auto()


_OPERATORS = {
    _Kind.EQUALS: "=",
    _Kind.NOT_EQUALS: "!=",
    _Kind.MATCHES: "=~",
    _Kind.NOT_MATCHES: "!~",
}


@dataclass(frozen=True, slots=True)
class _Token:
    kind: _Kind
    value: str = ""
    start: int = 0
    end: int = 0


def _is_reserved(c: str) -> bool:
    return c.isspace() or c in "{}!=~,\\\"'`"


class _Lexer:
    """Alertmanager's lexer: `scan` returns the next token; a lexing error sticks."""

    def __init__(self, text: str) -> None:
        self.input = text
        self.start = 0  # where the current token starts
        self.pos = 0  # the cursor
        self.width = 0  # 1 after reading a character, 0 at the end
        self.err: Utf8SyntaxError | None = None

    def scan(self) -> _Token:
        if self.err is not None:
            raise self.err
        try:
            return self._scan()
        except Utf8SyntaxError as exc:
            self.err = exc
            raise

    def peek(self) -> _Token:
        saved = (self.start, self.pos, self.width)
        try:
            return self.scan()
        finally:
            self.start, self.pos, self.width = saved

    def _scan(self) -> _Token:
        while (c := self._next()) is not None:
            if c == "{":
                return self._emit(_Kind.OPEN_BRACE)
            if c == "}":
                return self._emit(_Kind.CLOSE_BRACE)
            if c == ",":
                return self._emit(_Kind.COMMA)
            if c in "=!":
                self._rewind()
                return self._scan_operator()
            if c == '"':
                self._rewind()
                return self._scan_quoted()
            if not _is_reserved(c):
                self._rewind()
                return self._scan_unquoted()
            if c.isspace():
                self.start = self.pos
                continue
            raise Utf8SyntaxError(f"{self._where()}: invalid input")
        return _Token(_Kind.EOF)

    def _scan_operator(self) -> _Token:
        if self._accept("!"):
            if self._accept("="):
                return self._emit(_Kind.NOT_EQUALS)
            if self._accept("~"):
                return self._emit(_Kind.NOT_MATCHES)
            raise self._expected("=~")
        if self._accept("="):
            if self._accept("~"):
                return self._emit(_Kind.MATCHES)
            return self._emit(_Kind.EQUALS)
        raise self._expected("!=")

    def _scan_quoted(self) -> _Token:
        self._accept('"')
        escaped = False
        while (c := self._next()) is not None:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                self._rewind()
                break
        if not self._accept('"'):
            raise Utf8SyntaxError(f'{self._where()}: missing end "')
        return self._emit(_Kind.QUOTED)

    def _scan_unquoted(self) -> _Token:
        while (c := self._next()) is not None:
            if _is_reserved(c):
                self._rewind()
                break
        return self._emit(_Kind.UNQUOTED)

    def _next(self) -> str | None:
        if self.pos >= len(self.input):
            self.width = 0
            return None
        self.width = 1
        self.pos += 1
        return self.input[self.pos - 1]

    def _rewind(self) -> None:
        self.pos -= self.width

    def _accept(self, valid: str) -> bool:
        c = self._next()
        if c is not None and c in valid:
            return True
        self._rewind()
        return False

    def _emit(self, kind: _Kind) -> _Token:
        token = _Token(kind, self.input[self.start : self.pos], self.start, self.pos)
        self.start = self.pos
        return token

    def _where(self) -> str:
        return f"{self.start}:{self.pos}: {self.input[self.start : self.pos]}"

    def _expected(self, valid: str) -> Utf8SyntaxError:
        if self.pos >= len(self.input):
            where = f"{self.start}:{self.pos}: unexpected end of input"
            return Utf8SyntaxError(f"{where}, expected one of '{valid}'")
        return Utf8SyntaxError(f"{self._where()}: expected one of '{valid}'")


_Step = Callable[[], "_Step | None"]


class _Parser:
    """Alertmanager's parser: a chain of steps, each returning the next (None at the end)."""

    def __init__(self, text: str) -> None:
        self.lexer = _Lexer(text)
        self.has_open_brace = False
        self.matchers: list[tuple[str, str, str]] = []

    def parse(self) -> list[tuple[str, str, str]]:
        step: _Step | None = self._open_brace
        while step is not None:
            step = step()
        return self.matchers

    def _open_brace(self) -> _Step | None:
        try:
            self.has_open_brace = self._accept(_Kind.OPEN_BRACE)
        except _EndOfInput:
            return self._eof
        try:
            has_close_brace = self._accept_peek(_Kind.CLOSE_BRACE)
        except _EndOfInput:
            return self._close_brace
        return self._close_brace if has_close_brace else self._matcher

    def _close_brace(self) -> _Step | None:
        if self.has_open_brace:
            try:
                self._expect(_Kind.CLOSE_BRACE)
            except Utf8SyntaxError as exc:
                raise Utf8SyntaxError(f"0:{self.lexer.pos}: {exc}: expected close brace") from None
        else:
            try:
                self._expect(_Kind.CLOSE_BRACE)
            except Utf8SyntaxError:
                pass
            else:
                raise Utf8SyntaxError(f"0:{self.lexer.pos}: }}: expected opening brace")
        return self._eof

    def _matcher(self) -> _Step | None:
        token = self._expect(_Kind.QUOTED, _Kind.UNQUOTED, what="expected label name")
        name = _unquote(token)
        operators = tuple(_OPERATORS)
        op = self._expect(
            *operators, what="expected an operator such as '=', '!=', '=~' or '!~'"
        ).kind
        value = _unquote(self._expect(_Kind.UNQUOTED, _Kind.QUOTED, what="expected label value"))
        self.matchers.append((name, _OPERATORS[op], value))
        return self._end_of_matcher

    def _end_of_matcher(self) -> _Step | None:
        try:
            token = self._expect_peek(_Kind.COMMA, _Kind.CLOSE_BRACE)
        except _EndOfInput:
            return self._close_brace
        except Utf8SyntaxError as exc:
            raise Utf8SyntaxError(f"{exc}: expected a comma or close brace") from None
        return self._comma if token.kind is _Kind.COMMA else self._close_brace

    def _comma(self) -> _Step | None:
        self._expect(_Kind.COMMA, what="expected a comma")
        try:
            token = self._expect_peek(_Kind.CLOSE_BRACE, _Kind.UNQUOTED, _Kind.QUOTED)
        except _EndOfInput:
            return self._close_brace
        except Utf8SyntaxError as exc:
            raise Utf8SyntaxError(f"{exc}: expected a matcher or close brace after comma") from None
        return self._close_brace if token.kind is _Kind.CLOSE_BRACE else self._matcher

    def _eof(self) -> _Step | None:
        try:
            token = self.lexer.scan()
        except Utf8SyntaxError as exc:
            raise Utf8SyntaxError(f"{exc}: expected end of input") from None
        if token.kind is not _Kind.EOF:
            where = f"{token.start}:{token.end}: {token.value}"
            raise Utf8SyntaxError(f"{where}: expected end of input")
        return None

    def _accept(self, kind: _Kind) -> bool:
        ok = self._accept_peek(kind)
        if ok:
            self.lexer.scan()
        return ok

    def _accept_peek(self, kind: _Kind) -> bool:
        token = self.lexer.peek()
        if token.kind is _Kind.EOF:
            raise _EndOfInput()
        return token.kind is kind

    def _expect(self, *kinds: _Kind, what: str = "") -> _Token:
        try:
            token = self._expect_peek(*kinds)
        except Utf8SyntaxError as exc:
            if not what:
                raise
            raise Utf8SyntaxError(f"{exc}: {what}") from None
        self.lexer.scan()
        return token

    def _expect_peek(self, *kinds: _Kind) -> _Token:
        token = self.lexer.peek()
        if token.kind is _Kind.EOF:
            raise _EndOfInput()
        if token.kind not in kinds:
            raise Utf8SyntaxError(f"{token.start}:{token.end}: unexpected {token.value}")
        return token


def parse_utf8(text: str) -> list[tuple[str, str, str]]:
    """`(name, operator, value)` for each matcher of `text`; Utf8SyntaxError if not valid."""
    return _Parser(text).parse()


# -- Go's strconv.Unquote for double-quoted strings --------------------------------------------

_SIMPLE_ESCAPES = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, '"': 34}
_HEX_DIGITS = {"x": 2, "u": 4, "U": 8}


def _unquote(token: _Token) -> str:
    if token.kind is not _Kind.QUOTED:
        return token.value
    try:
        return _go_unquote(token.value[1:-1])
    except ValueError:
        raise Utf8SyntaxError(f"{token.start}:{token.end}: {token.value}: invalid input") from None


def _go_unquote(body: str) -> str:
    """The text of a Go double-quoted string literal (without its quotes); ValueError if it
    is not one, or is not valid UTF-8 once `\\x` and octal bytes are put together."""
    if "\n" in body:
        raise ValueError("newline in string")
    out = bytearray()
    i = 0
    while i < len(body):
        c = body[i]
        i += 1
        if c != "\\":
            out += c.encode()
            continue
        if i >= len(body):
            raise ValueError("trailing backslash")
        e = body[i]
        i += 1
        if e in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[e])
        elif e in _HEX_DIGITS:
            digits = body[i : i + _HEX_DIGITS[e]]
            i += _HEX_DIGITS[e]
            if len(digits) != _HEX_DIGITS[e] or not all(
                d in "0123456789abcdefABCDEF" for d in digits
            ):
                raise ValueError("bad hex escape")
            code = int(digits, 16)
            if e == "x":
                out.append(code)
            elif code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise ValueError("invalid code point")
            else:
                out += chr(code).encode()
        elif e in "01234567":
            digits = body[i - 1 : i + 2]
            i += 2
            if len(digits) != 3 or not all(d in "01234567" for d in digits) or int(digits, 8) > 255:
                raise ValueError("bad octal escape")
            out.append(int(digits, 8))
        else:
            raise ValueError(f"unknown escape \\{e}")
    return out.decode("utf-8")  # strict: invalid UTF-8 raises UnicodeDecodeError, a ValueError
