"""A forward HTTP proxy on 127.0.0.1 that records what passed through it.

It speaks the two forms a client uses (RFC 9110 9.3.6, RFC 9112 3.2.2): `CONNECT host:port`
opens a tunnel (then TLS runs end to end through it), and an absolute-form request
(`POST http://host:port/path`) is forwarded to that origin. Each connection's first request
head is recorded, then bytes are relayed both ways until either side closes, so keep-alive
requests after the first go through the same tunnel or upstream connection unrecorded.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from yarl import URL


@dataclass(frozen=True)
class Passed:
    method: str
    target: str  # `host:port` for CONNECT, the absolute URL otherwise
    headers: dict[str, str]


class ForwardProxy:
    def __init__(self) -> None:
        self.passed: list[Passed] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> ForwardProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        upstream: asyncio.StreamWriter | None = None
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *lines = head.decode("latin-1").split("\r\n")
            method, target, version = request_line.split(" ", 2)
            headers = dict(line.split(": ", 1) for line in lines if ": " in line)
            self.passed.append(Passed(method, target, headers))
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                up_reader, upstream = await asyncio.open_connection(host, int(port))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
            else:
                url = URL(target)
                up_reader, upstream = await asyncio.open_connection(url.host, url.port)
                # The origin gets the origin-form target and no proxy credentials.
                kept = "".join(f"{k}: {v}\r\n" for k, v in headers.items()
                               if k.lower() not in ("proxy-authorization", "proxy-connection"))
                upstream.write(f"{method} {url.raw_path_qs} {version}\r\n{kept}\r\n"
                               .encode("latin-1"))
            await asyncio.gather(_pipe(reader, upstream), _pipe(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            self._tasks.discard(task)
            for w in (upstream, writer):
                if w is not None:
                    w.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            writer.write_eof()
