"""The receivers' HTTP client against real local servers: keep-alive, framing, TLS, errors."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from router.delivery import client as client_module
from router.delivery.client import HttpClient, HttpError, InvalidURL
from router.delivery.http import HttpAnswer, http_call

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def client() -> AsyncIterator[HttpClient]:
    c = HttpClient()
    yield c
    await c.close()


async def serve(handler: Handler, **kwargs: object) -> TestServer:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = TestServer(app, host="127.0.0.1", **kwargs)  # type: ignore[arg-type]
    await server.start_server()
    return server


async def raw_server(answer: bytes) -> tuple[asyncio.Server, int]:
    """A server that reads one request head and writes `answer` as is, then closes."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_a_post_carries_body_headers_and_host_and_reuses_the_connection(
        client: HttpClient) -> None:
    seen: list[tuple[str, str, bytes, str, object]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append((request.method, request.path_qs, await request.read(),
                     request.headers["Host"], request.transport.get_extra_info("peername")))
        return web.json_response({"ok": True}, status=202, headers={"X-Id": "7"})

    server = await serve(handler)
    try:
        url = str(server.make_url("/hook?a=1"))
        first = await client.request("POST", url, body=b'{"x":1}',
                                     headers={"Content-Type": "application/json"})
        second = await client.request("POST", url, body=b"{}")
        assert (first.status, first.headers["x-id"], first.text()) == (202, "7", '{"ok": true}')
        assert second.status == 202
        assert [s[:4] for s in seen] == [
            ("POST", "/hook?a=1", b'{"x":1}', f"127.0.0.1:{server.port}"),
            ("POST", "/hook?a=1", b"{}", f"127.0.0.1:{server.port}"),
        ]
        assert seen[0][4] == seen[1][4]  # one keep-alive connection
    finally:
        await server.close()


async def test_a_chunked_answer_is_read_whole(client: HttpClient) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(status=429, headers={"Retry-After": "3"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for part in (b'{"error":', b'"slow down"}'):
            await resp.write(part)
        await resp.write_eof()
        return resp

    server = await serve(handler)
    try:
        answer = await http_call(client, "POST", str(server.make_url("/")), body=b"{}")
        assert isinstance(answer, HttpAnswer)
        assert (answer.status, answer.text) == (429, '{"error":"slow down"}')
        assert answer.headers.get("retry-after") == "3"
    finally:
        await server.close()


async def test_an_answer_delimited_by_the_end_of_the_connection(client: HttpClient) -> None:
    server, port = await raw_server(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")
    try:
        resp = await client.request("GET", f"http://127.0.0.1:{port}/")
        assert (resp.status, resp.body) == (200, b"all of it")
    finally:
        server.close()


async def test_a_connection_the_server_closed_while_idle_is_not_reused(
        client: HttpClient) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    server = await serve(handler, keepalive_timeout=0.05)
    try:
        url = str(server.make_url("/"))
        assert (await client.request("GET", url)).status == 200
        await asyncio.sleep(0.3)  # the server has closed the idle connection by now
        assert (await client.request("GET", url)).status == 200
    finally:
        await server.close()


async def test_idle_connections_older_than_the_keepalive_are_dropped(
        client: HttpClient, monkeypatch: pytest.MonkeyPatch) -> None:
    peers: list[object] = []

    async def handler(request: web.Request) -> web.Response:
        peers.append(request.transport.get_extra_info("peername"))
        return web.Response(text="ok")

    monkeypatch.setattr(client_module, "KEEPALIVE_SECONDS", 0.0)
    server = await serve(handler)
    try:
        for _ in range(2):
            await client.request("GET", str(server.make_url("/")))
        assert peers[0] != peers[1]
    finally:
        await server.close()


@pytest.mark.parametrize("answer", [b"NOT HTTP AT ALL\r\n\r\n",
                                    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"])
async def test_a_malformed_or_cut_answer_is_a_connection_error_without_the_url(
        client: HttpClient, answer: bytes) -> None:
    server, port = await raw_server(answer)
    try:
        url = f"http://127.0.0.1:{port}/services/T000/B000/secret-token-xyz"
        with pytest.raises(HttpError) as err:
            await client.request("POST", url, body=b"{}")
        assert "secret-token-xyz" not in str(err.value)
        result = await http_call(client, "POST", url, body=b"{}")
        assert (result.reason, result.retryable) == ("connection_error", True)  # type: ignore[union-attr]
    finally:
        server.close()


async def test_a_slow_server_times_out(client: HttpClient) -> None:
    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response()

    server = await serve(handler)
    try:
        result = await http_call(client, "POST", str(server.make_url("/")), body=b"{}",
                                 timeout_seconds=0.2)
        assert (result.reason, result.retryable) == ("timeout", True)  # type: ignore[union-attr]
    finally:
        await server.close()


async def test_refused_connections_and_bad_urls(client: HttpClient) -> None:
    server, port = await raw_server(b"")
    server.close()
    await server.wait_closed()
    refused = await http_call(client, "POST", f"http://127.0.0.1:{port}/x", body=b"{}")
    assert (refused.reason, refused.retryable) == ("connection_error", True)  # type: ignore[union-attr]
    for url in ("ftp://example.com/x", "not a url", "http:///nohost"):
        with pytest.raises(InvalidURL):
            await client.request("GET", url)
        bad = await http_call(client, "GET", url)
        assert (bad.reason, bad.retryable) == ("client_error", False)  # type: ignore[union-attr]


async def test_a_header_value_cannot_smuggle_another_header(client: HttpClient) -> None:
    with pytest.raises(HttpError, match="invalid header"):
        await client.request("POST", "http://127.0.0.1:9/", body=b"",
                             headers={"X-Token": "a\r\nX-Admin: yes"})


async def test_credentials_in_the_url_become_basic_auth(client: HttpClient) -> None:
    got: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        got.append(request.headers.get("Authorization", ""))
        return web.Response()

    server = await serve(handler)
    try:
        await client.request("POST", f"http://user:p%40ss@127.0.0.1:{server.port}/", body=b"")
        assert got == ["Basic dXNlcjpwQHNz"]  # base64("user:p@ss")
    finally:
        await server.close()


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def test_https_is_verified_against_the_trusted_certificates(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)

    async def handler(request: web.Request) -> web.Response:
        return web.Response(text="secure")

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    await site.start()
    port = runner.addresses[0][1]
    trusting = HttpClient(ssl_context=ssl.create_default_context(cafile=str(cert)))
    default = HttpClient()  # the system's CAs do not know this certificate
    try:
        assert (await trusting.request("GET", f"https://127.0.0.1:{port}/")).text() == "secure"
        with pytest.raises(HttpError, match="SSL"):
            await default.request("GET", f"https://127.0.0.1:{port}/")
    finally:
        await trusting.close()
        await default.close()
        await runner.cleanup()
