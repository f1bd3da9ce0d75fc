"""A small keep-alive HTTP/1.1 client for the receivers: one request, one answer, no surprises.

Why not aiohttp's client: it costs ~150-250 us of CPU per request, and delivery makes one
request per notification, so in an alert storm it was the router's largest single cost. This
client does only what the receivers need: POST/GET/PATCH/PUT/DELETE with a byte body, a total
timeout, keep-alive pooling per origin, TLS with the system's CA store, and response parsing by
llhttp (`httptools`, the parser uvicorn uses). It never follows redirects, keeps no cookies and
reads no proxy settings (the aiohttp session it replaces did not either).

Errors are `HttpError`s whose text never holds the URL (a Slack or Teams webhook URL *is* the
secret). A pooled connection the server has closed in the meantime fails like any connection
error: the retry policy decides, as it did with aiohttp.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass

import httptools
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

MAX_BODY = 1 << 20  # vendor answers are small; more than this is cut (the status still counts)
KEEPALIVE_SECONDS = 15.0  # an idle connection older than this is closed, not reused
MAX_IDLE_PER_ORIGIN = 100


class HttpError(Exception):
    """Transport trouble: connect, TLS, reset, malformed answer. Its text never has the URL."""


class InvalidURL(HttpError):
    pass


@dataclass(frozen=True)
class Response:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    def text(self) -> str:
        charset = "utf-8"
        ctype = self.headers.get("Content-Type", "")
        for part in ctype.split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                charset = value.strip('"')
        try:
            return self.body.decode(charset, errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")


Origin = tuple[str, str, int]


class _Connection(asyncio.Protocol):
    """One connection; `exchange` writes a request and resolves with the parsed answer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = time.monotonic()
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Response] | None = None
        self._headers: CIMultiDict[str] = CIMultiDict()
        self._body: list[bytes] = []
        self._size = 0
        self._headers_done = False
        self._complete = False
        self._keep_alive = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        length = self._headers.get("Content-Length")
        chunked = "chunked" in self._headers.get("Transfer-Encoding", "").lower()
        if self._headers_done and length is None and not chunked:
            self._finish(keep_alive=False)  # a body delimited by the end of the connection
        else:
            waiter.set_exception(HttpError("connection closed before the answer was complete"))

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_exception(HttpError("malformed HTTP answer"))
            self.close()

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.add(name.decode("latin-1"), value.decode("latin-1"))

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        if self._size < MAX_BODY:
            self._body.append(body[: MAX_BODY - self._size])
        self._size += len(body)

    def on_message_complete(self) -> None:
        self._finish(keep_alive=self._parser.should_keep_alive())

    # the client's side
    def exchange(self, data: bytes) -> asyncio.Future[Response]:
        assert self.transport is not None
        self._headers = CIMultiDict()
        self._body, self._size = [], 0
        self._headers_done = self._complete = False
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self._waiter

    def _finish(self, keep_alive: bool) -> None:
        self._complete = True
        self._keep_alive = keep_alive
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(Response(self._parser.get_status_code(),
                                       CIMultiDictProxy(self._headers), b"".join(self._body)))

    @property
    def reusable(self) -> bool:
        return self._complete and self._keep_alive and not self.closed

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class HttpClient:
    """Keep-alive connections per origin (scheme, host, port); safe for concurrent use."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None,
                 user_agent: str = "incident-router") -> None:
        self._ssl = ssl_context
        self._user_agent = user_agent
        self._idle: dict[Origin, list[_Connection]] = {}
        self._closed = False

    async def request(self, method: str, url: str, *, body: bytes | None = None,
                      headers: Mapping[str, str] | None = None,
                      timeout_seconds: float = 15.0) -> Response:
        """One request within `timeout_seconds` in all (connect, send, answer)."""
        if self._closed:
            raise HttpError("client is closed")
        origin, target, auth = _split(url)
        data = _encode(method, target, _host_header(origin), body, headers, auth,
                       self._user_agent)
        conn: _Connection | None = None
        try:
            async with asyncio.timeout(timeout_seconds):
                conn = self._pooled(origin) or await self._connect(origin)
                response = await conn.exchange(data)
        except TimeoutError:
            if conn is not None:
                conn.close()  # the answer may still come: this connection is out of step
            raise
        except HttpError:
            if conn is not None:
                conn.close()
            raise
        except (OSError, ssl.SSLError) as exc:
            if conn is not None:
                conn.close()
            raise HttpError(f"connection failed: {type(exc).__name__}") from None
        self._release(origin, conn)
        return response

    async def close(self) -> None:
        self._closed = True
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()

    def _pooled(self, origin: Origin) -> _Connection | None:
        conns = self._idle.get(origin)
        now = time.monotonic()
        while conns:
            conn = conns.pop()
            if not conn.closed and now - conn.idle_since < KEEPALIVE_SECONDS:
                return conn
            conn.close()
        return None

    async def _connect(self, origin: Origin) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        context: ssl.SSLContext | None = None
        if scheme == "https":
            context = self._ssl or _default_context()
        _, conn = await loop.create_connection(
            _Connection, host, port, ssl=context, server_hostname=host if context else None)
        return conn

    def _release(self, origin: Origin, conn: _Connection) -> None:
        if not conn.reusable or self._closed:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        conns = self._idle.setdefault(origin, [])
        if len(conns) >= MAX_IDLE_PER_ORIGIN:
            conn.close()
        else:
            conns.append(conn)


_CONTEXT: list[ssl.SSLContext] = []


def _default_context() -> ssl.SSLContext:
    if not _CONTEXT:
        _CONTEXT.append(ssl.create_default_context())
    return _CONTEXT[0]


def _split(url: str) -> tuple[Origin, str, str | None]:
    """(origin, request target, Authorization from user:password in the URL)."""
    try:
        u = URL(url)
    except (ValueError, TypeError):
        raise InvalidURL("invalid URL") from None
    host = u.raw_host
    if u.scheme not in ("http", "https") or not host or u.port is None:
        raise InvalidURL("invalid URL")
    auth = None
    if u.user is not None:
        pair = f"{u.user}:{u.password or ''}".encode()
        auth = "Basic " + base64.b64encode(pair).decode()
    return (u.scheme, host, u.port), u.raw_path_qs or "/", auth


def _host_header(origin: Origin) -> str:
    scheme, host, port = origin
    if ":" in host:
        host = f"[{host}]"
    default = 443 if scheme == "https" else 80
    return host if port == default else f"{host}:{port}"


def _encode(method: str, target: str, host: str, body: bytes | None,
            headers: Mapping[str, str] | None, auth: str | None, user_agent: str) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", f"User-Agent: {user_agent}",
             "Accept: */*"]
    if auth is not None:
        lines.append(f"Authorization: {auth}")
    for name, value in (headers or {}).items():
        if any(c in name or c in value for c in "\r\n\0") or not name:
            raise HttpError("invalid header")  # never let a value start a new header
        lines.append(f"{name}: {value}")
    payload = body or b""
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(payload)}")
    try:
        head = "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n"
    except UnicodeEncodeError:
        raise HttpError("invalid header: not latin-1") from None
    return head + payload
