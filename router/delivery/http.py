"""The one place receivers talk HTTP: a call that never raises and never leaks its URL.

aiohttp exceptions carry the request URL (which for Slack/Teams webhooks *is* the secret), so
every exception is turned into a reason without its text. Vendor answers are classified into
retryable or permanent; any text kept from them passes through a `Redactor` first.
"""

from __future__ import annotations

import email.utils
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from router.delivery.result import DeliveryResult
from router.delivery.session import ConnectionSettings, tls_context

DETAIL_LIMIT = 300


class Redactor:
    """Replaces every known secret in a text with `[redacted]`.

    A secret URL (Slack/Teams webhooks) also contributes its normalised form, its path and
    its long query values, since a vendor or library may echo any of them.
    """

    def __init__(self, secrets: Iterable[str | None]) -> None:
        found: set[str] = set()
        for s in secrets:
            if not s:
                continue
            found.update(_variants(s))
        # Longest first, so a URL is removed whole before its parts.
        self._secrets = sorted((f for f in found if len(f) >= 8), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for s in self._secrets:
            text = text.replace(s, "[redacted]")
        return text


def _variants(secret: str) -> set[str]:
    out = {secret, quote(secret, safe="")}
    if secret.startswith(("http://", "https://")):
        try:
            url = URL(secret)
        except ValueError:
            return out
        out.add(str(url))
        out.add(url.raw_path_qs)
        out.add(url.path_qs)
        if len(url.path) > 1:
            out.add(url.raw_path)
        last = url.raw_parts[-1] if url.raw_parts else ""
        out.add(last)
        for value in url.query.values():
            out.add(value)
            out.add(quote(value, safe=""))
    return out


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: Mapping[str, str]
    text: str

    def json(self) -> Any:
        try:
            return orjson.loads(self.text)
        except orjson.JSONDecodeError:
            return None


def dumps(body: Any) -> bytes:
    return orjson.dumps(body)


MAX_ANSWER_BYTES = 1 << 20  # vendor answers are small; more is cut (the status still counts)


@dataclass(frozen=True)
class Http:
    """One receiver's way out: the shared session plus its own proxy, TLS and timeouts."""

    session: aiohttp.ClientSession
    timeout: aiohttp.ClientTimeout
    ssl: ssl.SSLContext | bool = True
    proxy: str | None = None
    # The environment's proxy per origin, looked up at the first request to it (see proxy_for).
    _env_proxies: dict[str, str | None] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, session: aiohttp.ClientSession, settings: ConnectionSettings) -> Http:
        """Raises `TlsFileError` when the CA bundle or client certificate cannot be loaded."""
        return cls(
            session=session,
            timeout=aiohttp.ClientTimeout(total=settings.timeout_seconds,
                                          connect=settings.connect_timeout_seconds),
            ssl=tls_context(settings),
            proxy=settings.proxy_url.get_secret_value() if settings.proxy_url else None,
        )

    def proxy_for(self, url: str) -> str | None:
        """The receiver's proxy_url, else HTTP_PROXY/HTTPS_PROXY unless NO_PROXY covers the host.

        aiohttp's `trust_env` would do this lookup (and a ~/.netrc read) in a worker thread on
        every request, which doubled delivery's CPU per notification (bench/delivery.py); the
        same lookup, aiohttp's own, is done here once per receiver and origin instead.
        """
        if self.proxy is not None:
            return self.proxy
        origin = "/".join(url.split("/", 3)[:3])
        if origin not in self._env_proxies:
            self._env_proxies[origin] = _env_proxy(origin)
        return self._env_proxies[origin]


def _env_proxy(origin: str) -> str | None:
    try:
        proxy, auth = get_env_proxy_for_url(URL(origin))
    except (LookupError, ValueError):
        return None
    if auth is not None:  # from ~/.netrc: carried in the URL, as a proxy_url's would be
        proxy = proxy.with_user(auth.login).with_password(auth.password)
    return str(proxy)


async def http_call(
    http: Http,
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> HttpAnswer | DeliveryResult:
    """One request. Transport problems come back as a retryable DeliveryResult, never raised."""
    hdrs = {"Content-Type": "application/json", **(headers or {})} if body is not None else dict(
        headers or {}
    )
    try:
        async with http.session.request(
            method, url, data=body, headers=hdrs, timeout=http.timeout, ssl=http.ssl,
            proxy=http.proxy_for(url), allow_redirects=False,
        ) as resp:
            return HttpAnswer(resp.status, resp.headers, _text(resp, await _read_capped(resp)))
    # Never str(exc) below: aiohttp's messages name the URL.
    except TimeoutError:
        return DeliveryResult.failed("timeout", retryable=True)
    except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError):
        return DeliveryResult.failed("client_error", retryable=False, detail="invalid URL")
    except aiohttp.ClientSSLError:
        # Certificate not trusted (no ca_file for a private CA?), wrong host, handshake refused.
        return DeliveryResult.failed("tls_error", retryable=True,
                                     detail="TLS handshake or certificate verification failed")
    except (aiohttp.ClientError, OSError):
        return DeliveryResult.failed("connection_error", retryable=True)
    except ValueError:
        # A header aiohttp refuses to send (CR or LF in a value could start another header).
        return DeliveryResult.failed("client_error", retryable=False, detail="invalid request")


async def _read_capped(resp: aiohttp.ClientResponse) -> bytes:
    parts: list[bytes] = []
    size = 0
    while size < MAX_ANSWER_BYTES and (chunk := await resp.content.readany()):
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)[:MAX_ANSWER_BYTES]


def _text(resp: aiohttp.ClientResponse, raw: bytes) -> str:
    try:
        return raw.decode(resp.charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return raw.decode("utf-8", errors="replace")


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def classify(
    answer: HttpAnswer,
    redact: Redactor,
    *,
    rate_limit_statuses: frozenset[int] = frozenset({429}),
) -> DeliveryResult:
    """Map a vendor's HTTP answer to delivered / retryable / permanent."""
    status = answer.status
    if 200 <= status < 300:
        return DeliveryResult.delivered(status)
    # Redact before cutting, so half a secret can never survive the cut.
    detail = redact(answer.text[:65_536]).strip()[:DETAIL_LIMIT]
    if status in rate_limit_statuses:
        return DeliveryResult.failed(
            "rate_limited", retryable=True, status=status,
            retry_after=parse_retry_after(answer.headers.get("Retry-After")), detail=detail,
        )
    if status >= 500 or status == 408:
        return DeliveryResult.failed(
            "server_error", retryable=True, status=status,
            retry_after=parse_retry_after(answer.headers.get("Retry-After")), detail=detail,
        )
    return DeliveryResult.failed("client_error", retryable=False, status=status, detail=detail)
