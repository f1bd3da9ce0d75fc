"""`GET /api/v1/oncall[?at=<RFC3339>]`: who is on call per schedule, now or at a given time,
and whom each escalation policy's levels would page then."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from router.api.keys import RUNTIME
from router.api.ops import require_api_token
from router.api.webhooks import error_response, json_response
from router.escalation import OnCallConfig, targets_at_level
from router.model import utcnow
from router.oncall import Schedule, shifts, who_is_on_call


def parse_at(value: str) -> datetime:
    """An RFC 3339 time with an offset (`Z` or `+02:00`); ValueError says what is wrong."""
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"at={value!r} is not an RFC 3339 time like 2026-01-05T09:00:00Z") \
            from None
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"at={value!r} has no time zone offset: add Z or +hh:mm")
    return at.astimezone(UTC)


def _until(schedule: Schedule, at: datetime) -> str | None:
    """When the current on-call person hands over (None when not within two shifts)."""
    window = shifts(schedule, at, at + 2 * schedule.shift_length)
    if len(window) < 2:
        return None
    return window[0].end.isoformat().replace("+00:00", "Z")


def on_call_report(oncall: OnCallConfig, at: datetime) -> dict[str, object]:
    schedules = oncall.schedule_map()
    return {
        "at": at.isoformat().replace("+00:00", "Z"),
        "schedules": [
            {"schedule": s.name, "user": who_is_on_call(s, at), "time_zone": s.time_zone,
             "until": _until(s, at)}
            for s in oncall.schedules
        ],
        "escalation_policies": [
            {"policy": p.name, "repeat": p.repeat, "levels": [
                {"level": n + 1, "delay_seconds": int(lv.delay.total_seconds()),
                 "users": list(targets_at_level(p, schedules, n, at))}
                for n, lv in enumerate(p.levels)
            ]}
            for p in oncall.escalation_policies
        ],
    }


async def oncall(request: web.Request) -> web.Response:
    if (denied := require_api_token(request)) is not None:
        return denied
    raw = request.query.get("at")
    try:
        at = utcnow() if raw is None else parse_at(raw)
    except ValueError as exc:
        return error_response(400, str(exc))
    config = request.app[RUNTIME].snapshot.config
    return json_response(200, {"status": "success", "data": on_call_report(config.oncall, at)})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/oncall", oncall)
