"""Typed keys of the console sub-application and of its requests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from aiohttp import web

from router.ui.session import Session, SessionCodec

Clock = Callable[[], datetime]

CLOCK: web.AppKey[Clock] = web.AppKey("ui_clock")
CODEC = web.AppKey("ui_codec", SessionCodec)
SESSION = "ui_session"  # request key: the Session of a logged-in request


def session_of(request: web.Request) -> Session:
    session: Session = request[SESSION]
    return session
