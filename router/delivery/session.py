"""The process's one outbound HTTP session, and how a receiver's connection settings apply to it.

Every receiver (and the SNS certificate fetch) shares one `aiohttp.ClientSession`, so there is
one connection pool with one global cap. What differs per receiver travels with each request:
its proxy, its TLS context (private CA, client certificate) and its timeouts. aiohttp keys its
pool by (host, port, TLS context, proxy), so receivers with different settings never share a
connection, and receivers without any share the default one.

A request without a receiver `proxy_url` goes through `HTTP_PROXY`/`HTTPS_PROXY` unless
`NO_PROXY` covers its host: `Http.proxy_for` (router/delivery/http.py) applies aiohttp's own
environment lookup once per receiver and origin, where `trust_env=True` would repeat it in a
worker thread on every request (see there). The SNS certificate fetch passes no proxy, so it
goes direct as before. Redirects are never followed (a receiver's 3xx is a
permanent failure: a webhook that moved must be reconfigured, not chased with its secret) and
no cookies are kept (`DummyCookieJar`): one vendor's cookie must not reach another request.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from yarl import URL

USER_AGENT = "incident-router"
# One pool for the whole process: enough for every receiver's default concurrency (32) at once
# on a handful of vendors, and a ceiling that a stuck vendor cannot push past.
CONNECTION_LIMIT = 256
CONNECTION_LIMIT_PER_HOST = 64
# Vendors close idle connections after 60-120 s; reusing one for 30 s saves the TLS handshake
# per notification without racing the vendor's close.
KEEPALIVE_SECONDS = 30.0
DNS_CACHE_SECONDS = 60


class ConnectionSettings(BaseModel):
    """How a receiver connects: proxy, private CA, client certificate, timeouts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Total time for one attempt: connect, send, answer.
    timeout_seconds: float = Field(default=15.0, gt=0)
    # Time to get a connection (DNS, TCP, proxy CONNECT and TLS included).
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    # An HTTP(S) forward proxy for this receiver only; may carry user:password (Basic).
    # Without it, HTTP_PROXY / HTTPS_PROXY / NO_PROXY from the environment apply.
    proxy_url: SecretStr | None = None
    # PEM bundle of the CAs that sign the receiver's certificate (instead of the system's).
    ca_file: Path | None = None
    # PEM client certificate (mutual TLS); key_file when the key is not in cert_file.
    cert_file: Path | None = None
    key_file: Path | None = None

    @field_validator("proxy_url")
    @classmethod
    def _proxy_is_http(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None:
            return v
        try:
            url = URL(v.get_secret_value())
        except ValueError:
            raise ValueError("proxy_url is not a URL") from None
        if url.scheme not in ("http", "https") or not url.host:
            # Never echo the value: it may carry the proxy's password.
            raise ValueError("proxy_url must be an http:// or https:// URL with a host")
        return v

    @model_validator(mode="after")
    def _key_needs_cert(self) -> ConnectionSettings:
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file needs cert_file")
        return self


class TlsFileError(ValueError):
    """A CA bundle or client certificate that cannot be loaded (names the file, not its data)."""


def tls_context(settings: ConnectionSettings) -> ssl.SSLContext | bool:
    """An SSLContext for a private CA or a client certificate; True (aiohttp's default
    verification against the system CAs) when the receiver has neither."""
    if settings.ca_file is None and settings.cert_file is None:
        return True
    try:
        context = ssl.create_default_context(
            cafile=str(settings.ca_file) if settings.ca_file is not None else None)
    except (OSError, ssl.SSLError) as exc:
        raise TlsFileError(f"ca_file {settings.ca_file}: {_why(exc)}") from None
    if settings.cert_file is not None:
        try:
            context.load_cert_chain(
                settings.cert_file,
                settings.key_file if settings.key_file is not None else None)
        except (OSError, ssl.SSLError) as exc:
            raise TlsFileError(f"cert_file {settings.cert_file}: {_why(exc)}") from None
    return context


def _why(exc: OSError | ssl.SSLError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, PermissionError):
        return "not readable"
    return "not a usable PEM file"


def new_session() -> aiohttp.ClientSession:
    """The one ClientSession; call inside the running loop and close it on shutdown."""
    connector = aiohttp.TCPConnector(
        limit=CONNECTION_LIMIT, limit_per_host=CONNECTION_LIMIT_PER_HOST,
        keepalive_timeout=KEEPALIVE_SECONDS, ttl_dns_cache=DNS_CACHE_SECONDS,
    )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,  # the environment's proxies: Http.proxy_for
        headers={"User-Agent": USER_AGENT},
        # Callers pass their own; this bounds anything that forgets.
        timeout=aiohttp.ClientTimeout(total=30, connect=5),
    )
