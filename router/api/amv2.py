"""Alertmanager's v2 API where operators' habits need it: silences, alerts with their
silenced/inhibited status, and status, so that the real `amtool --alertmanager.url=<router>`
adds, queries, updates and expires silences and queries alerts against the router.

A silence change is a noise command on the log (`router.engine.noise`): every engine (every
Kafka partition) applies it, in order, durably; the answer waits briefly until the engine holds
it, so that a query right after sees it. Reads come from the engines' silences. The router's
own REST API serves the same handlers under `/api/v1/silences`. With `api.tokens` set, every
call needs a token (amtool: `--http.config.file` with `authorization.credentials`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from pydantic import ValidationError

from router import __version__
from router.api.keys import BACKEND, RUNTIME
from router.api.ops import require_api_token
from router.api.quiet import open_incidents, quiet_reasons
from router.api.webhooks import read_body
from router.backends.base import Backend, LogUnavailable
from router.engine.noise import NOISE_KEY, SILENCE
from router.model import CommandEvent, Status, utcnow
from router.noise.heartbeats import HEARTBEAT
from router.noise.matchers import Matcher, MatcherError, parse_matcher
from router.noise.muters import labels_of
from router.noise.silences import (
    GettableSilence,
    PostableSilence,
    PostSilenceResponse,
    Silence,
    SilenceDraft,
    SilenceError,
    SilenceNotFound,
    check_post,
    expire,
    gettable_silences,
    matches_filter,
    set_silence,
)
from router.sources.base import Rejected

# How long a silence change waits for the engine to hold it before answering anyway.
APPLY_WAIT_SECONDS = 2.0
_POLL_SECONDS = 0.02
_STARTED = time.time()


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    # Alertmanager answers errors as a JSON string; amtool prints it.
    return _json(message, status)


async def _silences(backend: Backend) -> dict[str, Silence]:
    return {s.id: s for s in await backend.silences()}


async def _apply(backend: Backend, silences: Sequence[Silence], actor: str) -> None:
    """Append the silences as noise commands, then wait (briefly) until the engine has them."""
    now = utcnow()
    events = [CommandEvent(command=SILENCE, group_key=NOISE_KEY, actor=actor, at=now,
                           args={"silence": s.model_dump(mode="json")}) for s in silences]
    await backend.log.append(events)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + APPLY_WAIT_SECONDS
    want = {s.id: s.updated_at for s in silences}
    while loop.time() < deadline:
        held = await _silences(backend)
        if all(i in held and held[i].updated_at >= at for i, at in want.items()):
            return
        await asyncio.sleep(_POLL_SECONDS)


async def store_silence(backend: Backend, draft: SilenceDraft, now: datetime,
                        actor: str) -> Silence:
    """Create or edit a silence as AM's API does (`check_post`, then `set_silence`) and append
    the change; the silence stored. Raises SilenceError or ValueError (bad draft: 400),
    SilenceNotFound (an edit of an unknown id: 404), LogUnavailable (503). The console's
    silence form calls this too."""
    check_post(draft, now)
    existing = (await _silences(backend)).get(draft.id) if draft.id else None
    out = set_silence(draft, existing, now, lambda: str(uuid.uuid4()))
    await _apply(backend, [s for s in (out.expired, out.silence) if s is not None], actor)
    return out.silence


async def expire_silence(backend: Backend, ident: str, now: datetime,
                         actor: str) -> Silence | None:
    """Expire silence `ident` now (None: there is no such silence); LogUnavailable (503)."""
    silence = (await _silences(backend)).get(ident)
    if silence is None:
        return None
    ended = expire(silence, now)
    await _apply(backend, [ended], actor)
    return ended


def _filters(request: web.Request) -> list[Matcher] | web.Response:
    """The `filter` matchers of a read, or the answer that refuses it (token, bad matcher)."""
    if (denied := require_api_token(request)) is not None:
        return denied
    try:
        return [parse_matcher(f) for f in request.query.getall("filter", [])]
    except MatcherError as exc:
        return _error(400, str(exc))


async def list_silences(request: web.Request) -> web.Response:
    filters = _filters(request)
    if isinstance(filters, web.Response):
        return filters
    found = [s for s in (await _silences(request.app[BACKEND])).values()
             if matches_filter(s, filters)]
    return _json(gettable_silences(found, utcnow()))


async def get_silence(request: web.Request) -> web.Response:
    if (denied := require_api_token(request)) is not None:
        return denied
    silence = (await _silences(request.app[BACKEND])).get(request.match_info["id"])
    if silence is None:
        return _error(404, "silence not found")
    return _json(GettableSilence.of(silence, utcnow()).to_json())


async def post_silence(request: web.Request) -> web.Response:
    if (denied := require_api_token(request)) is not None:
        return denied
    limit = request.app[RUNTIME].snapshot.config.server.max_body_bytes
    try:
        body = await read_body(request, limit)
        draft = PostableSilence.model_validate_json(body).to_draft()
        stored = await store_silence(request.app[BACKEND], draft, utcnow(),
                                     f"api:{draft.created_by}")
    except Rejected as exc:
        return _error(exc.status, exc.message)
    except SilenceNotFound as exc:
        return _error(404, str(exc))
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                    for e in exc.errors(include_url=False, include_input=False)]
        return _error(400, "; ".join(problems))
    except (ValueError, SilenceError) as exc:
        return _error(400, str(exc))
    except LogUnavailable:
        return _error(503, "the log cannot take the silence now, retry later")
    return _json(PostSilenceResponse(silence_id=stored.id).to_json())


async def delete_silence(request: web.Request) -> web.Response:
    if (denied := require_api_token(request)) is not None:
        return denied
    try:
        ended = await expire_silence(request.app[BACKEND], request.match_info["id"], utcnow(),
                                     "api")
    except LogUnavailable:
        return _error(503, "the log cannot take the change now, retry later")
    if ended is None:
        return _error(404, "silence not found")
    return web.Response(status=200)


# --- alerts ---------------------------------------------------------------------------------


def _bool(request: web.Request, name: str, default: bool) -> bool:
    raw = request.query.get(name)
    return default if raw is None else raw.lower() == "true"


async def list_alerts(request: web.Request) -> web.Response:
    """`GET /api/v2/alerts` (gettableAlerts): the firing alerts, with `active`, `silenced`,
    `inhibited`, `unprocessed` and `filter` as in Alertmanager."""
    filters = _filters(request)
    if isinstance(filters, web.Response):
        return filters
    backend = request.app[BACKEND]
    now = utcnow()
    alerts = await backend.current_alerts(status=Status.FIRING.value, limit=10_000)
    reasons = quiet_reasons(alerts, await backend.silences(), request, now,
                            await open_incidents(backend, request))
    show_active, show_silenced = _bool(request, "active", True), _bool(request, "silenced", True)
    show_inhibited = _bool(request, "inhibited", True)
    receiver = request.query.get("receiver")
    out = []
    for a in alerts:
        labels = labels_of(a)
        if not all(m.matches(labels) for m in filters):
            continue
        why = reasons.get(a.key, {})
        silenced, inhibited = why.get("silenced_by") or [], why.get("inhibited_by") or []
        suppressed = bool(why.get("reason"))
        if (suppressed and not ((silenced and show_silenced) or (inhibited and show_inhibited)
                                or (not silenced and not inhibited and show_silenced))):
            continue
        if not suppressed and not show_active:
            continue
        if receiver and receiver not in a.receivers:
            continue
        out.append({
            "annotations": a.annotations,
            "endsAt": _time(a.ends_at or a.starts_at),
            "fingerprint": a.fingerprint,
            "receivers": [{"name": r} for r in a.receivers],
            "startsAt": _time(a.starts_at),
            "status": {"inhibitedBy": inhibited, "silencedBy": silenced,
                       "state": "suppressed" if suppressed else "active"},
            "updatedAt": _time(a.received_at),
            **({"generatorURL": a.generator_url} if a.generator_url else {}),
            "labels": dict(labels),
        })
    return _json(out)


def _time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def status(request: web.Request) -> web.Response:
    if (denied := require_api_token(request)) is not None:
        return denied
    return _json({
        "cluster": {"name": "incident-router", "peers": [], "status": "disabled"},
        "config": {"original": "# incident-router: see its own configuration\n"},
        "uptime": datetime.fromtimestamp(_STARTED, UTC).isoformat(),
        "versionInfo": {"version": __version__, "branch": "", "buildDate": "",
                        "buildUser": "", "goVersion": "", "revision": ""},
    })


async def heartbeat(request: web.Request) -> web.Response:
    """`POST /api/v1/heartbeats/{name}`: one beat of a configured heartbeat."""
    if (denied := require_api_token(request)) is not None:
        return denied
    name = request.match_info["name"]
    beats = {h.name: h for h in request.app[RUNTIME].snapshot.config.heartbeats}
    hb = beats.get(name)
    if hb is None:
        return _json({"status": "error", "error": f"no heartbeat {name!r} is configured"}, 404)
    event = CommandEvent(command=HEARTBEAT, group_key=hb.group_key, actor="api", at=utcnow())
    try:
        await request.app[BACKEND].log.append([event])
    except LogUnavailable:
        return _json({"status": "error", "error": "the log cannot take the beat now"}, 503)
    return _json({"status": "success", "heartbeat": name})


def add_routes(app: web.Application) -> None:
    for prefix in ("/api/v2", "/api/v1"):
        app.router.add_get(f"{prefix}/silences", list_silences)
        app.router.add_post(f"{prefix}/silences", post_silence)
        app.router.add_get(f"{prefix}/silence/{{id}}", get_silence)
        app.router.add_delete(f"{prefix}/silence/{{id}}", delete_silence)
    app.router.add_get("/api/v2/alerts", list_alerts)
    app.router.add_get("/api/v2/status", status)
    app.router.add_post("/api/v1/heartbeats/{name}", heartbeat)
