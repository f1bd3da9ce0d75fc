"""The console's silences and maintenance windows.

Silences are read from the engines (`backend.silences()`) and created or expired through the
same functions as Alertmanager's v2 API (router.api.amv2 `store_silence`, `expire_silence`), so
a silence made here is the silence `amtool` sees, with the actor `console:<user>`. Maintenance
windows are config: listed read-only, with whether each is open now and when that changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from router.api.amv2 import expire_silence, store_silence
from router.api.keys import BACKEND, RUNTIME
from router.backends.base import LogUnavailable
from router.model import Alert
from router.noise.matchers import Matcher, MatcherError, Matchers, parse_matcher
from router.noise.silences import Silence, SilenceDraft, SilenceError, SilenceState
from router.noise.windows import MaintenanceWindow, current_span, next_change
from router.ui import pages
from router.ui.actions import actor_of, form_of, problem_of
from router.ui.guard import PREFIX
from router.ui.keys import CLOCK
from router.ui.matching import label_test, narrowing

# Expired silences listed (the most recently ended first); the engine prunes older ones anyway.
EXPIRED_SHOWN = 50
# Current alerts a preview lists by name; the rest are counted.
PREVIEW_SHOWN = 50
DEFAULT_HOURS = 2


class SilenceForm(BaseModel):
    """The new-silence form: matchers one per line, how long from now, and why."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    matchers: str = Field(min_length=1, max_length=10_000)
    hours: float = Field(gt=0, le=24 * 366)
    comment: str = Field(min_length=1, max_length=5_000)


def parse_lines(text: str) -> Matchers:
    """One matcher per line (`name="value"`, `=~`, `!=`, `!~`); MatcherError naming the line."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                found.append(parse_matcher(line.strip()))
            except MatcherError as exc:
                raise MatcherError(f"matcher on line {number}: {exc}") from None
    return Matchers(tuple(found))


def prefill(alert: Alert) -> str:
    """An alert's own labels as matchers, one per line (as Alertmanager's UI prefills): not the
    severity, service or team a rule gave it, which a rule change would alter."""
    labels = {"alertname": alert.name, **alert.labels}
    return "\n".join(str(Matcher.of(k, v)) for k, v in sorted(labels.items()))


def by_state(silences: Sequence[Silence], now: datetime) -> dict[SilenceState, list[Silence]]:
    """Active (ending soonest first), pending (starting soonest first), expired (latest first,
    at most EXPIRED_SHOWN)."""
    out: dict[SilenceState, list[Silence]] = {s: [] for s in SilenceState}
    for s in silences:
        out[s.state(now)].append(s)
    out[SilenceState.ACTIVE].sort(key=lambda s: s.ends_at)
    out[SilenceState.PENDING].sort(key=lambda s: s.starts_at)
    out[SilenceState.EXPIRED].sort(key=lambda s: s.ends_at, reverse=True)
    del out[SilenceState.EXPIRED][EXPIRED_SHOWN:]
    return out


def window_rows(windows: Sequence[MaintenanceWindow], now: datetime) -> list[dict[str, Any]]:
    """Each configured window: open now (with the span) or not, and its next open/close."""
    rows = []
    for w in windows:
        span = current_span(w, now)
        rows.append({"window": w, "open": span is not None, "span": span,
                     "next": next_change(w, now)})
    return rows


async def silences(request: web.Request) -> web.Response:
    now = request.config_dict[CLOCK]()
    held = await request.config_dict[BACKEND].silences()
    windows = request.config_dict[RUNTIME].snapshot.config.maintenance_windows
    return pages.page(request, "silences.html", states=by_state(held, now),
                      windows=window_rows(windows, now), now=now,
                      done=request.query.get("done"), ref=request.query.get("id"))


async def new_form(request: web.Request, status: int = 200, **extra: Any) -> web.Response:
    """The form, prefilled from `?alert=<source>:<fingerprint>` when given."""
    form: dict[str, str] = {"hours": str(DEFAULT_HOURS)}
    key = request.query.get("alert")
    if key:
        alert = await pages.find_alert(request, key)
        if alert is None:
            raise web.HTTPNotFound(reason=f"no current alert {key}")
        form.update(matchers=prefill(alert), comment=f"Silenced from alert {alert.name}")
    context: dict[str, Any] = {"form": form, "problem": None, "preview": None}
    context.update(extra)
    return pages.page(request, "silence_new.html", status=status, **context)


async def _parsed(request: web.Request) -> tuple[dict[str, str], SilenceForm, Matchers] | str:
    form = await form_of(request)
    try:
        body = SilenceForm.model_validate(form)
        return form, body, parse_lines(body.matchers)
    except ValidationError as exc:
        return problem_of(exc)
    except MatcherError as exc:
        return str(exc)


async def preview(request: web.Request) -> web.Response:
    """Which current alerts the silence would mute; changes nothing."""
    parsed = await _parsed(request)
    if isinstance(parsed, str):
        return await new_form(request, 400, problem=parsed, form=dict(await form_of(request)))
    form, _, matchers = parsed
    # The store finds the alerts the equality matchers allow and tests the rest on their
    # labels alone, decoding only the alerts listed.
    found = await request.config_dict[BACKEND].alerts_matching(
        narrowing(matchers), label_test(matchers), limit=PREVIEW_SHOWN)
    return await new_form(request, form=form, preview={
        "alerts": found.items, "count": found.total, "matchers": str(matchers)})


async def create(request: web.Request) -> web.Response:
    parsed = await _parsed(request)
    if isinstance(parsed, str):
        return await new_form(request, 400, problem=parsed, form=dict(await form_of(request)))
    form, body, matchers = parsed
    now = request.config_dict[CLOCK]()
    draft = SilenceDraft(matchers=matchers, starts_at=now,
                         ends_at=now + timedelta(hours=body.hours),
                         created_by=actor_of(request), comment=body.comment)
    try:
        stored = await store_silence(request.config_dict[BACKEND], draft, now,
                                     actor_of(request))
    except (SilenceError, ValueError) as exc:
        return await new_form(request, 400, problem=str(exc), form=form)
    except LogUnavailable:
        return await new_form(request, 503, form=form, problem="the log cannot take the "
                                                               "silence now, retry in a moment")
    raise web.HTTPSeeOther(f"{PREFIX}/silences?done=created&id={stored.id}")


async def expire(request: web.Request) -> web.Response:
    ident = request.match_info["id"]
    try:
        ended = await expire_silence(request.config_dict[BACKEND], ident,
                                     request.config_dict[CLOCK](), actor_of(request))
    except LogUnavailable:
        raise web.HTTPServiceUnavailable(reason="the log cannot take the change now, "
                                                "retry in a moment") from None
    if ended is None:
        raise web.HTTPNotFound(reason=f"no silence {ident}")
    raise web.HTTPSeeOther(f"{PREFIX}/silences?done=expired&id={ident}")
