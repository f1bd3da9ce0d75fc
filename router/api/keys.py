"""Typed application keys: what the app factory puts in the app for handlers to use."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from router.backends.base import Backend
from router.delivery.dispatcher import Dispatcher
from router.runtime import Runtime
from router.sources.sns import SnsVerifier

RUNTIME = web.AppKey("runtime", Runtime)
BACKEND = web.AppKey("backend", Backend)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
HTTP = web.AppKey("http", aiohttp.ClientSession)
SNS_VERIFIER = web.AppKey("sns_verifier", SnsVerifier)
