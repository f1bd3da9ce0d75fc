"""Typed keys of the console sub-application and of its requests."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

from router.api.auth import Role
from router.ui.session import Session, SessionCodec

Clock = Callable[[], datetime]

CLOCK: web.AppKey[Clock] = web.AppKey("ui_clock")
CODEC = web.AppKey("ui_codec", SessionCodec)


@dataclass(frozen=True)
class Visitor:
    session: Session
    role: Role


# Who is making the current request: set by router.ui.guard for the handler it calls (each
# request runs in its own task, so its own context).
VISITOR: ContextVar[Visitor] = ContextVar("ui_visitor")


def session_of(_: web.Request) -> Session:
    return VISITOR.get().session


def role_of(_: web.Request) -> Role:
    return VISITOR.get().role
