"""Logging in to the console with an API token, and out again."""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from router.api.auth import token_id, token_role
from router.api.keys import RUNTIME
from router.ui.guard import PREFIX, set_session_cookie
from router.ui.html import html
from router.ui.session import COOKIE, Session


def _next(value: object) -> str:
    """Only a path inside the console: never an open redirect to another site."""
    text = value if isinstance(value, str) else ""
    parts = urlsplit(text)
    if parts.scheme or parts.netloc or not text.startswith(f"{PREFIX}/") or "\\" in text:
        return f"{PREFIX}/alerts"
    return text


async def login_form(request: web.Request) -> web.Response:
    api = request.config_dict[RUNTIME].snapshot.config.api
    return html("login.html", next=_next(request.query.get("next")), problem=None,
                header=api.trusted_header)


async def login(request: web.Request) -> web.Response:
    form = await request.post()
    token = form.get("token")
    name = form.get("name")
    api = request.config_dict[RUNTIME].snapshot.config.api
    role = token_role(api, token.strip()) if isinstance(token, str) and token.strip() else None
    if role is None or not isinstance(token, str):
        return html("login.html", status=401, next=_next(form.get("next")),
                    problem="that token is not one of the configured API tokens",
                    header=api.trusted_header)
    user = name.strip()[:100] if isinstance(name, str) and name.strip() else f"{role.value}-token"
    redirect = web.Response(status=303, headers={"Location": _next(form.get("next"))})
    set_session_cookie(request, redirect, Session.new(user, "token", token_id(token.strip())))
    return redirect


async def logout(request: web.Request) -> web.Response:
    response = web.Response(status=303, headers={"Location": f"{PREFIX}/login"})
    response.del_cookie(COOKIE, path=f"{PREFIX}/")
    return response
