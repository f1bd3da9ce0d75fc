"""How receivers reach vendors: aiohttp's client against real local servers, proxies and TLS.

What the old hand-written client promised still holds (no URL in errors, timeouts, TLS
verification, no redirects followed, no cookies kept) and what it lacked now works: an
interim `100 Continue`, forward proxies from the environment or per receiver, a private CA
and a client certificate.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web

from router.config import ConfigError, parse_config
from router.delivery.http import Http, HttpAnswer, http_call
from router.delivery.receivers import build_receiver
from router.delivery.records import MemoryDeliveryStore
from router.delivery.result import DeliveryResult
from router.delivery.session import ConnectionSettings, TlsFileError
from router.delivery.sink import SinkContext
from tests.fakes.proxy import ForwardProxy
from tests.fakes.tls import PrivateCA, make_private_ca
from tests.fakes.webhook import PATH, FakeWebhookConsumer
from tests.unit.delivery.conftest import Build, Serve, notification, receiver_config

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def http(session: ClientSession, **settings: Any) -> Http:
    return Http.of(session, ConnectionSettings(**settings))


def app_of(handler: Handler) -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


async def raw_server(answer: bytes) -> tuple[asyncio.Server, int]:
    """Reads one request (head and Content-Length body), writes `answer` as is, closes."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        for line in head.decode("latin-1").split("\r\n"):
            if line.lower().startswith("content-length:"):
                await reader.readexactly(int(line.split(":", 1)[1]))
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.fixture
async def proxy() -> AsyncIterator[ForwardProxy]:
    p = await ForwardProxy().start()
    yield p
    await p.close()


@pytest.fixture
def ca(tmp_path: Path) -> PrivateCA:
    return make_private_ca(tmp_path)


@pytest.fixture(autouse=True)
def no_proxy_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


async def webhook(serve: Serve, session: ClientSession, ssl: Any = None,
                  **settings: Any) -> tuple[FakeWebhookConsumer, Any]:
    fake = FakeWebhookConsumer(SECRET)
    base = await serve(fake.app(), ssl=ssl)
    config = receiver_config(type="webhook", name="hook", url=base + PATH, secrets=[SECRET],
                             **settings)
    return fake, build_receiver(config, SinkContext(session, MemoryDeliveryStore())).sink


# --- the basics ----------------------------------------------------------------------------

async def test_a_post_carries_body_and_headers_and_reuses_the_connection(
        serve: Serve, session: ClientSession) -> None:
    seen: list[tuple[str, str, bytes, str, object]] = []

    async def handler(request: web.Request) -> web.Response:
        assert request.transport is not None
        seen.append((request.method, request.path_qs, await request.read(),
                     request.headers["User-Agent"], request.transport.get_extra_info("peername")))
        return web.json_response({"ok": True}, status=202, headers={"X-Id": "7"})

    url = await serve(app_of(handler)) + "/hook?a=1"
    first = await http_call(http(session), "POST", url, body=b'{"x":1}')
    second = await http_call(http(session), "POST", url, body=b"{}")
    assert isinstance(first, HttpAnswer) and isinstance(second, HttpAnswer)
    assert (first.status, first.headers["x-id"], first.json()) == (202, "7", {"ok": True})
    assert [s[:4] for s in seen] == [("POST", "/hook?a=1", b'{"x":1}', "incident-router"),
                                     ("POST", "/hook?a=1", b"{}", "incident-router")]
    assert seen[0][4] == seen[1][4]  # one keep-alive connection


async def test_a_chunked_answer_is_read_whole(serve: Serve, session: ClientSession) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(status=429, headers={"Retry-After": "3"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for part in (b'{"error":', b'"slow down"}'):
            await resp.write(part)
        await resp.write_eof()
        return resp

    answer = await http_call(http(session), "POST", await serve(app_of(handler)), body=b"{}")
    assert isinstance(answer, HttpAnswer)
    assert (answer.status, answer.text) == (429, '{"error":"slow down"}')
    assert answer.headers.get("retry-after") == "3"


async def test_an_interim_100_continue_is_skipped_and_the_notification_delivered(
        harness: Build) -> None:
    server, port = await raw_server(
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    try:
        h = await harness(receiver_config(type="webhook", name="r",
                                          url=f"http://127.0.0.1:{port}/hook",
                                          retry={"max_attempts": 1}))
        n = notification()
        h.add(n)
        await h.dispatcher.wait_idle()
        assert h.outbox.delivered == [n.id]
        assert await h.outbox.list() == []
    finally:
        server.close()


@pytest.mark.parametrize("answer", [b"NOT HTTP AT ALL\r\n\r\n",
                                    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"])
async def test_a_malformed_or_cut_answer_is_a_connection_error_without_the_url(
        session: ClientSession, answer: bytes) -> None:
    server, port = await raw_server(answer)
    try:
        url = f"http://127.0.0.1:{port}/services/T000/B000/secret-token-xyz"
        result = await http_call(http(session), "POST", url, body=b"{}")
        assert isinstance(result, DeliveryResult)
        assert (result.reason, result.retryable) == ("connection_error", True)
        assert "secret-token-xyz" not in result.model_dump_json()
    finally:
        server.close()


async def test_a_slow_server_times_out(serve: Serve, session: ClientSession) -> None:
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response()

    url = await serve(app_of(handler))
    result = await http_call(http(session, timeout_seconds=0.2), "POST", url, body=b"{}")
    release.set()
    assert isinstance(result, DeliveryResult)
    assert (result.reason, result.retryable) == ("timeout", True)


async def test_refused_connections_and_bad_urls(session: ClientSession) -> None:
    server, port = await raw_server(b"")
    server.close()
    await server.wait_closed()
    refused = await http_call(http(session), "POST", f"http://127.0.0.1:{port}/x", body=b"{}")
    assert isinstance(refused, DeliveryResult)
    assert (refused.reason, refused.retryable) == ("connection_error", True)
    for url in ("ftp://example.com/x", "not a url", "http:///nohost"):
        bad = await http_call(http(session), "GET", url)
        assert isinstance(bad, DeliveryResult)
        assert (bad.reason, bad.retryable, bad.detail) == ("client_error", False, "invalid URL")


async def test_a_header_value_cannot_smuggle_another_header(
        serve: Serve, session: ClientSession) -> None:
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers.get("X-Admin", ""))
        return web.Response()

    url = await serve(app_of(handler))
    result = await http_call(http(session), "POST", url, body=b"",
                             headers={"X-Token": "a\r\nX-Admin: yes"})
    assert isinstance(result, DeliveryResult)
    assert (result.reason, result.retryable) == ("client_error", False)
    assert seen == []


async def test_redirects_are_not_followed(serve: Serve, session: ClientSession) -> None:
    paths: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        paths.append(request.path)
        if request.path == "/hook":
            raise web.HTTPFound("/elsewhere")
        return web.Response()

    result = await http_call(http(session), "POST", await serve(app_of(handler)) + "/hook",
                             body=b"{}")
    assert isinstance(result, HttpAnswer)
    assert result.status == 302
    assert paths == ["/hook"]


async def test_no_cookies_are_kept(serve: Serve, session: ClientSession) -> None:
    cookies: list[str | None] = []

    async def handler(request: web.Request) -> web.Response:
        cookies.append(request.headers.get("Cookie"))
        resp = web.Response()
        resp.set_cookie("session", "vendor-a")
        return resp

    url = await serve(app_of(handler))
    for _ in range(2):
        await http_call(http(session), "POST", url, body=b"{}")
    assert cookies == [None, None]


# --- TLS -----------------------------------------------------------------------------------

async def test_a_private_ca_in_ca_file_is_trusted(
        serve: Serve, session: ClientSession, ca: PrivateCA) -> None:
    fake, sink = await webhook(serve, session, ssl=ca.server_context(), ca_file=str(ca.ca_file))
    result = await sink.send(notification())
    assert result.ok, result
    assert len(fake.events) == 1


async def test_without_ca_file_the_certificate_fails_and_is_dead_lettered_as_tls_error(
        serve: Serve, harness: Build, ca: PrivateCA) -> None:
    fake = FakeWebhookConsumer(SECRET)
    url = await serve(fake.app(), ssl=ca.server_context()) + PATH + "?token=hush-secret-123"
    h = await harness(receiver_config(type="webhook", name="r", url=url,
                                      retry={"max_attempts": 1}))
    h.add(notification())
    await h.dispatcher.wait_idle()
    (dead,) = await h.outbox.list()
    assert dead.reason.startswith("tls_error")
    assert "127.0.0.1" not in dead.reason and "hush-secret" not in dead.reason
    assert fake.requests == []


async def test_a_client_certificate_is_presented(
        serve: Serve, session: ClientSession, ca: PrivateCA) -> None:
    server_ctx = ca.server_context(require_client_cert=True)
    fake, with_cert = await webhook(serve, session, ssl=server_ctx, ca_file=str(ca.ca_file),
                                    cert_file=str(ca.client_cert), key_file=str(ca.client_key))
    assert (await with_cert.send(notification())).ok
    _, without = await webhook(serve, session, ssl=server_ctx, ca_file=str(ca.ca_file))
    refused = await without.send(notification(n=1))
    # TLS 1.3 servers refuse a missing client certificate after the handshake, by a reset.
    assert not refused.ok and refused.reason in ("tls_error", "connection_error")
    assert len(fake.events) == 1


async def test_an_unreadable_ca_file_names_the_receiver_and_the_file(
        session: ClientSession, tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    config = receiver_config(type="webhook", name="hook", url="https://example.net/h",
                             ca_file=str(missing))
    with pytest.raises(TlsFileError) as err:
        build_receiver(config, SinkContext(session, MemoryDeliveryStore()))
    assert str(err.value) == f"receiver 'hook': ca_file {missing}: no such file"


# --- proxies -------------------------------------------------------------------------------

async def test_http_proxy_from_the_environment_carries_deliveries(
        serve: Serve, session: ClientSession, proxy: ForwardProxy,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    fake, sink = await webhook(serve, session)
    assert (await sink.send(notification())).ok
    assert len(fake.events) == 1
    (passed,) = proxy.passed
    assert passed.method == "POST"
    assert passed.target.startswith("http://127.0.0.1:") and passed.target.endswith(PATH)


async def test_https_proxy_from_the_environment_tunnels_tls(
        serve: Serve, session: ClientSession, proxy: ForwardProxy, ca: PrivateCA,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    fake, sink = await webhook(serve, session, ssl=ca.server_context(),
                               ca_file=str(ca.ca_file))
    assert (await sink.send(notification())).ok
    assert len(fake.events) == 1
    (passed,) = proxy.passed
    assert passed.method == "CONNECT" and passed.target.startswith("127.0.0.1:")


async def test_no_proxy_covering_the_host_goes_direct(
        serve: Serve, session: ClientSession, proxy: ForwardProxy,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    fake, sink = await webhook(serve, session)
    assert (await sink.send(notification())).ok
    assert len(fake.events) == 1
    assert proxy.passed == []


async def test_a_receivers_own_proxy_url_is_used_with_its_credentials(
        serve: Serve, session: ClientSession, proxy: ForwardProxy,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # the receiver's setting wins over the env
    fake, sink = await webhook(serve, session,
                               proxy_url=f"http://router:s3cret@127.0.0.1:{proxy.port}")
    assert (await sink.send(notification())).ok
    assert len(fake.events) == 1
    (passed,) = proxy.passed
    assert passed.headers["Proxy-Authorization"] == (
        "Basic " + base64.b64encode(b"router:s3cret").decode())


async def test_an_unreachable_proxy_is_a_connection_error_without_its_password(
        serve: Serve, session: ClientSession) -> None:
    server, port = await raw_server(b"")
    server.close()
    await server.wait_closed()
    _, sink = await webhook(serve, session, proxy_url=f"http://u:pw-xyz-123@127.0.0.1:{port}")
    result = await sink.send(notification())
    assert (result.reason, result.retryable) == ("connection_error", True)
    assert "pw-xyz-123" not in result.model_dump_json()


def test_a_proxy_url_must_be_http_and_is_not_echoed() -> None:
    yaml = """
receivers:
  - {name: hook, type: webhook, url: "https://example.net/h",
     proxy_url: "socks5://u:pw-abc-999@proxy:1080"}
"""
    with pytest.raises(ConfigError) as err:
        parse_config(yaml)
    assert str(err.value) == ("router.yaml: receivers.0.webhook.proxy_url: Value error, "
                              "proxy_url must be an http:// or https:// URL with a host")
