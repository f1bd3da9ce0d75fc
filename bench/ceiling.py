"""The ceiling: a bare aiohttp app that parses and validates an Alertmanager webhook with the
router's own pydantic models (`WebhookPayload`/`WebhookAlert`) and answers 200. Nothing else:
no auth, no classification, no log, no engine.

    .venv/bin/python bench/ceiling.py --port 18080 [--cpu 0] [--orjson] [--loop asyncio]

By default it validates with `WebhookPayload.model_validate_json` (pydantic's Rust JSON
parser, the fastest way through these models); `--orjson` decodes with orjson first and then
`model_validate`s the dict, which is how the router's intake does it. It runs on the same
event loop as the router (`router.cli.new_event_loop`: uvloop when installed), so the ratio
compares the router with the same stack doing nothing else.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import orjson
from aiohttp import web
from pydantic import ValidationError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from router.cli import new_event_loop
from router.sources.alertmanager import WebhookPayload

OK = orjson.dumps({"status": "success"})


def build_app(via_orjson: bool) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            if via_orjson:
                WebhookPayload.model_validate(orjson.loads(body))
            else:
                WebhookPayload.model_validate_json(body)
        except (ValidationError, orjson.JSONDecodeError) as exc:
            return web.Response(status=422, text=str(exc)[:200])
        return web.Response(body=OK, content_type="application/json")

    app = web.Application(client_max_size=1_048_577)
    app.router.add_post("/webhooks/alertmanager", handle)
    app.router.add_get("/readyz", lambda _: _ready())
    return app


async def _ready() -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cpu", type=int)
    parser.add_argument("--orjson", action="store_true")
    parser.add_argument("--loop", choices=("auto", "uvloop", "asyncio"), default="auto")
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    web.run_app(build_app(args.orjson), host="127.0.0.1", port=args.port, access_log=None,
                print=lambda _: None, loop=new_event_loop(args.loop))


if __name__ == "__main__":
    main()
