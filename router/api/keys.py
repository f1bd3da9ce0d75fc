"""Typed application keys: what the app factory puts in the app for handlers to use."""

from __future__ import annotations

from aiohttp import web

from router.backends.base import Backend
from router.delivery.client import HttpClient
from router.delivery.dispatcher import Dispatcher
from router.runtime import Runtime
from router.sources.sns import SnsVerifier

RUNTIME = web.AppKey("runtime", Runtime)
BACKEND = web.AppKey("backend", Backend)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
HTTP = web.AppKey("http", HttpClient)
SNS_VERIFIER = web.AppKey("sns_verifier", SnsVerifier)
