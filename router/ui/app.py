"""The console sub-application, mounted at /ui/ of the router's app."""

from __future__ import annotations

from aiohttp import web

from router.config import ApiConfig
from router.model import utcnow
from router.ui import actions, pages, silences
from router.ui.guard import PREFIX, guard, read_only
from router.ui.html import STATIC
from router.ui.keys import CLOCK, CODEC, Clock
from router.ui.login import login, login_form, logout
from router.ui.session import SessionCodec


def console_app(api: ApiConfig, clock: Clock = utcnow) -> web.Application:
    ui = web.Application(middlewares=[guard])
    ui[CLOCK] = clock
    ui[CODEC] = SessionCodec(api)
    r = ui.router
    r.add_get("/", pages.index)
    r.add_get("/login", login_form)
    r.add_post("/login", login)
    r.add_post("/logout", read_only(logout))
    r.add_get("/alerts", pages.alerts)
    r.add_get("/alerts/rows", pages.alert_rows)
    r.add_get("/alerts/{key}", pages.alert)
    r.add_get("/incidents", pages.incidents)
    r.add_get("/incidents/rows", pages.incident_list_rows)
    r.add_get("/incidents/new", pages.declare_form)
    r.add_post("/incidents", actions.declare)
    r.add_get("/incidents/{id}", pages.incident)
    r.add_get("/incidents/{id}/live", pages.incident_live)
    r.add_get("/incidents/{id}/postmortem", pages.postmortem)
    r.add_get("/incidents/{id}/postmortem.md", pages.postmortem_download)
    r.add_post("/incidents/{id}/ack", actions.ack)
    r.add_post("/incidents/{id}/update", actions.update)
    r.add_post("/incidents/{id}/resolve", actions.resolve)
    r.add_post("/incidents/{id}/page", actions.page_someone)
    r.add_post("/incidents/{id}/preview", read_only(actions.preview))
    r.add_get("/oncall", pages.oncall)
    r.add_get("/dead-letters", pages.dead_letters)
    r.add_post("/dead-letters/replay", actions.replay)
    r.add_get("/silences", silences.silences)
    r.add_get("/silences/new", silences.new_form)
    r.add_post("/silences", silences.create)
    r.add_post("/silences/preview", read_only(silences.preview))
    r.add_post("/silences/{id}/expire", silences.expire)
    r.add_get("/rules", pages.rules)
    r.add_post("/rules/classify", read_only(actions.classify))
    r.add_static("/static", STATIC, append_version=True)
    return ui


def add_routes(app: web.Application, api: ApiConfig, clock: Clock = utcnow) -> None:
    async def to_console(_: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently(f"{PREFIX}/")

    # Before the sub-app: its prefix resource would take `/ui` itself and answer 404.
    app.router.add_get(PREFIX, to_console)
    app.add_subapp(PREFIX, console_app(api, clock))
