"""What every fake vendor shares: a request log and a script of forced answers.

A test scripts trouble (`fail(500, times=3)`, `fail_for(seconds)`, `answer_with(...)`);
when nothing is scripted the fake behaves like the healthy vendor.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    raw_path: str = ""
    at: float = field(default_factory=time.monotonic)

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass(frozen=True)
class Forced:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    content_type: str = "application/json"


class FakeVendor:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._script: deque[Forced] = deque()
        self._failing_until = 0.0
        self._failing_answer = Forced(500, body='{"error":"internal"}')

    # --- scripting --------------------------------------------------------------------------

    def fail(self, status: int, times: int = 1, headers: dict[str, str] | None = None,
             body: str = "", content_type: str = "application/json") -> None:
        for _ in range(times):
            self._script.append(Forced(status, headers or {}, body, content_type))

    def answer_with(self, forced: Forced, times: int = 1) -> None:
        for _ in range(times):
            self._script.append(forced)

    def fail_for(self, seconds: float, status: int = 500) -> None:
        self._failing_until = time.monotonic() + seconds
        self._failing_answer = Forced(status, body='{"error":"internal"}')

    def heal(self) -> None:
        self._script.clear()
        self._failing_until = 0.0

    # --- serving ----------------------------------------------------------------------------

    def wrap(self, handler: Handler) -> Handler:
        async def recorded(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            self.requests.append(Recorded(request.method, request.path, dict(request.query),
                                          dict(request.headers), body,
                                          request.raw_path))
            forced = self._next_forced()
            if forced is not None:
                return web.Response(status=forced.status, text=forced.body,
                                    headers=forced.headers, content_type=forced.content_type)
            return await handler(request)

        return recorded

    def _next_forced(self) -> Forced | None:
        if self._script:
            return self._script.popleft()
        if time.monotonic() < self._failing_until:
            return self._failing_answer
        return None

    def app(self) -> web.Application:
        raise NotImplementedError


def json_response(status: int, data: Any) -> web.Response:
    return web.json_response(data, status=status)
