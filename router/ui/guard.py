"""Every /ui/ request passes here: security headers, login, roles, CSRF.

- Headers: a strict Content-Security-Policy (scripts, styles, images and fetches from this
  origin only; no inline script or style), no framing, no sniffing, no caching of pages.
- Login: a valid session cookie, else a trusted proxy header (when configured), else open
  access (when no credential is configured at all), else the login page (401 for non-GETs).
- Writes: every POST must carry the session's CSRF token (form field `csrf` or header
  `X-CSRF-Token`) and come from this origin; a state-changing POST needs the write role.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from urllib.parse import quote, urlsplit

from aiohttp import web

from router.api.auth import Role, open_access, role_of_token_id
from router.api.keys import RUNTIME
from router.config import ApiConfig
from router.ui.keys import CODEC, VISITOR, Visitor
from router.ui.session import COOKIE, Session

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
PREFIX = "/ui"
PUBLIC = (f"{PREFIX}/login", f"{PREFIX}/static/")

# POST handlers that change nothing (they compute, or end the session): CSRF-checked, any role.
READ_ONLY_POSTS: set[Handler] = set()


def read_only(handler: Handler) -> Handler:
    READ_ONLY_POSTS.add(handler)
    return handler


def is_tls(request: web.Request) -> bool:
    return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"


def set_session_cookie(request: web.Request, response: web.StreamResponse,
                       session: Session) -> None:
    codec = request.config_dict[CODEC]
    response.set_cookie(COOKIE, codec.seal(session), path=f"{PREFIX}/", httponly=True,
                        secure=is_tls(request), samesite="Strict",
                        max_age=int(codec.lifetime.total_seconds()))


def current_role(api: ApiConfig, session: Session, request: web.Request) -> Role | None:
    """The role `session` has under the config in effect now (None: it no longer holds)."""
    if session.via == "token":
        return role_of_token_id(api, session.token_id or "")
    if session.via == "header":
        ok = api.trusted_header is not None and \
            request.headers.get(api.trusted_header) == session.user
        return Role(api.trusted_header_role) if ok else None
    return Role.WRITE if open_access(api) else None


def _implicit_session(api: ApiConfig, request: web.Request) -> tuple[Session, Role] | None:
    if api.trusted_header is not None:
        user = request.headers.get(api.trusted_header, "").strip()
        if user:
            return Session.new(user[:200], "header"), Role(api.trusted_header_role)
    if open_access(api):
        return Session.new("anonymous", "open"), Role.WRITE
    return None


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return origin is None  # browsers send Origin on POST; "null" is an opaque origin
    return urlsplit(origin).netloc == request.host


def _csrf_ok(session: Session, sent: str) -> bool:
    return bool(sent) and hmac.compare_digest(sent.encode(), session.csrf.encode())


def refuse(status: int, message: str) -> web.Response:
    from router.ui.html import error_page  # the page module imports this one

    return error_page(status, message)


async def _authorised(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    if request.method == "POST" and not _same_origin(request):
        return refuse(403, "cross-origin form posts are refused")
    if path.startswith(PUBLIC):
        return await handler(request)
    api = request.config_dict[RUNTIME].snapshot.config.api
    session = request.config_dict[CODEC].open(request.cookies.get(COOKIE))
    role = current_role(api, session, request) if session is not None else None
    fresh = False
    if session is None or role is None:
        implicit = _implicit_session(api, request)
        if implicit is None:
            if request.method == "GET":
                raise web.HTTPSeeOther(f"{PREFIX}/login?next={quote(request.path_qs)}")
            return refuse(401, "log in first: your session is missing or has expired")
        (session, role), fresh = implicit, True
    VISITOR.set(Visitor(session, role))
    if request.method == "POST":
        sent = request.headers.get("X-CSRF-Token", "")
        if not sent:
            form = await request.post()
            value = form.get("csrf", "")
            sent = value if isinstance(value, str) else ""
        if fresh or not _csrf_ok(session, sent):
            return refuse(403, "this form has no valid CSRF token: reload the page and retry")
        if request.match_info.handler not in READ_ONLY_POSTS and not role.can_write:
            return refuse(403, "your login is read-only: log in with a read-write token "
                               "to change anything")
    response = await handler(request)
    if fresh:
        set_session_cookie(request, response, session)
    return response


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    response: web.StreamResponse
    try:
        response = await _authorised(request, handler)
    except web.HTTPRedirection as exc:
        response = web.Response(status=exc.status, headers=exc.headers)
    except web.HTTPException as exc:  # 404 of an unknown path, 405, ...
        response = refuse(exc.status, exc.reason)
    response.headers.update(HEADERS)
    if not request.path.startswith(f"{PREFIX}/static/"):
        response.headers["Cache-Control"] = "no-store"
    return response
