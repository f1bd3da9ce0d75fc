"""The listener as `serve` runs it: read timeouts against slow clients, and TLS (with mTLS).

The app is served by a real aiohttp runner on 127.0.0.1 with the settings
`router.api.listener` derives from the config; clients are raw sockets (asyncio streams) or
aiohttp's client over real TLS. Assertions are about what the client sees (the server closing
the connection, a 408), never about how long it took; `SAFETY` only stops a broken test.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from router.api.app import build_app
from router.api.listener import listener
from router.config import ConfigError, parse_config
from router.runtime import build_snapshot
from tests.conftest import write_config

SAFETY = 20.0  # seconds; a server that never closes fails the test instead of hanging it
TIMEOUT = {"server": {"read_timeout_seconds": 0.3}}

Serve = Callable[[dict[str, object]], Awaitable[int]]


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Serve]:
    runners: list[web.AppRunner] = []

    async def start(extra: dict[str, object]) -> int:
        path = write_config(tmp_path, extra)
        config = parse_config(path.read_text(), str(path), base_dir=str(tmp_path))
        listen = listener(config)
        runner = web.AppRunner(build_app(build_snapshot(config), config_path=path),
                               keepalive_timeout=listen.keepalive_timeout, access_log=None)
        await runner.setup()
        runners.append(runner)
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=listen.ssl_context).start()
        port: int = runner.addresses[0][1]
        return port

    yield start
    for runner in runners:
        await runner.cleanup()


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    return await asyncio.wait_for(reader.read(), SAFETY)


async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                  data: bytes) -> bytes:
    """Send `data` one byte at a time, a slowloris's way, until the server closes; what the
    server sent back. Fails if all of `data` went out without the server closing."""
    received = b""
    for byte in data:
        try:
            writer.write(bytes([byte]))
            await writer.drain()
        except ConnectionError:
            break
        try:
            chunk = await asyncio.wait_for(reader.read(4096), 0.05)  # paces the trickle
        except TimeoutError:
            continue
        received += chunk
        if not chunk or reader.at_eof():
            return received
    return received + await read_until_closed(reader)


async def test_connections_that_send_nothing_are_closed(serve: Serve) -> None:
    port = await serve(TIMEOUT)
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(50)]
    received = await asyncio.gather(*(read_until_closed(r) for r, _ in conns))
    assert received == [b""] * 50
    for _, writer in conns:
        writer.close()


async def test_headers_sent_byte_by_byte_are_cut_off(serve: Serve) -> None:
    port = await serve(TIMEOUT)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = b"POST /webhooks/generic HTTP/1.1\r\nHost: router\r\nX-Slow: " + b"a" * 2000
    assert await trickle(reader, writer, head) == b""  # closed, no response
    writer.close()


@pytest.mark.parametrize(("path", "slow"), [
    ("/webhooks/generic", True),   # trickles the body byte by byte
    ("/api/v1/incidents", False),  # sends one byte of it and stops
])
async def test_a_late_body_is_answered_408_and_closed(serve: Serve, path: str,
                                                      slow: bool) -> None:
    port = await serve(TIMEOUT)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST %s HTTP/1.1\r\nHost: router\r\nContent-Length: 4000\r\n"
                 b"Content-Type: application/json\r\nX-Request-Id: slow-1\r\n\r\n{"
                 % path.encode())
    body = b'"name": "' + b"a" * 3980 + b'"}'
    received = await (trickle(reader, writer, body) if slow else read_until_closed(reader))
    assert received.startswith(b"HTTP/1.1 408 ")
    assert b"server.read_timeout_seconds" in received
    assert b"X-Request-Id: slow-1" in received
    assert b"Connection: close" in received
    writer.close()


async def test_a_prompt_request_is_served_and_an_idle_keep_alive_is_closed(
    serve: Serve,
) -> None:
    port = await serve(TIMEOUT)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = b'{"name": "DiskFull"}'
    writer.write(b"POST /webhooks/generic HTTP/1.1\r\nHost: router\r\n"
                 b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                 % (len(body), body))
    received = await read_until_closed(reader)  # kept alive, then closed when idle
    assert received.startswith(b"HTTP/1.1 200 ")
    assert b'"accepted":1' in received
    writer.close()


# --- TLS -------------------------------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str,
          issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool = False,
          server: bool = False) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    elif not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    """A CA; a server certificate for 127.0.0.1 and a client certificate, both signed by it."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    _write(tmp_path / "ca", _cert("test CA", ca_key, "test CA", ca_key, ca=True), ca_key)
    for name, server in (("server", True), ("client", False)):
        key = ec.generate_private_key(ec.SECP256R1())
        _write(tmp_path / name, _cert(name, key, "test CA", ca_key, server=server), key)
    return tmp_path


def client_context(pki: Path, with_cert: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=pki / "ca.crt")
    if with_cert:
        context.load_cert_chain(pki / "client.crt", pki / "client.key")
    return context


def tls(pki: Path, mtls: bool = False) -> dict[str, object]:
    server: dict[str, object] = {"tls_cert_file": str(pki / "server.crt"),
                                 "tls_key_file": "server.key"}  # relative: config's directory
    if mtls:
        server["tls_client_ca_file"] = str(pki / "ca.crt")
    return {"server": server}


async def post_alert(port: int, context: ssl.SSLContext) -> int:
    async with aiohttp.ClientSession() as session, session.post(
        f"https://127.0.0.1:{port}/webhooks/generic", json={"name": "DiskFull"}, ssl=context,
    ) as resp:
        return resp.status


async def test_alerts_arrive_over_tls(serve: Serve, pki: Path) -> None:
    port = await serve(tls(pki))
    assert await post_alert(port, client_context(pki, with_cert=False)) == 200
    # Plain HTTP to the TLS port gets no answer.
    with pytest.raises(aiohttp.ClientError):
        async with aiohttp.ClientSession() as session:
            await session.get(f"http://127.0.0.1:{port}/healthz")


async def test_mtls_needs_a_client_certificate_the_ca_signed(serve: Serve, pki: Path) -> None:
    port = await serve(tls(pki, mtls=True))
    assert await post_alert(port, client_context(pki, with_cert=True)) == 200
    with pytest.raises(aiohttp.ClientError):
        await post_alert(port, client_context(pki, with_cert=False))


@pytest.mark.parametrize(("server", "message"), [
    ({"tls_cert_file": "a.crt"}, "tls_cert_file and tls_key_file must be set together"),
    ({"tls_client_ca_file": "ca.crt"}, "tls_client_ca_file needs tls_cert_file"),
])
def test_tls_settings_are_checked(server: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(yaml.safe_dump({"server": server}))
