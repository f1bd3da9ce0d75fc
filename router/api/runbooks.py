"""GET /runbooks/ (the list) and GET /runbooks/<name> (one runbook as HTML).

Read from `runbooks_dir` of the config in effect at each request, so a runbook edited on disk
(or a ConfigMap update) shows without a reload. No login, like /status: the links go out in
pages and chat messages, so keep secrets out of runbooks. The page runs no script at all, and
the Content-Security-Policy says so; styles come from the console's stylesheet.
"""

from __future__ import annotations

from html import escape

from aiohttp import web

from router import runbooks
from router.api.keys import RUNTIME

CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'none'; "
       "frame-ancestors 'none'; base-uri 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",
}


def _page(title: str, body: str, status: int = 200) -> web.Response:
    html = ('<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            '<meta name="color-scheme" content="light dark">\n'
            f"<title>{escape(title)} · runbooks</title>\n"
            '<link rel="stylesheet" href="/ui/static/console.css">\n</head>\n<body>\n'
            f'<main id="main" class="runbook">\n{body}\n</main>\n</body>\n</html>\n')
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8",
                        headers=HEADERS)


async def runbook_list(request: web.Request) -> web.Response:
    config = request.app[RUNTIME].snapshot.config
    where = config.resolve(config.runbooks_dir)
    items = []
    for name in runbooks.names(where):
        text = runbooks.read(where, name) or ""
        items.append(f'<li><a href="/runbooks/{escape(name)}">'
                     f"{escape(runbooks.title(text, name))}</a> <code>{escape(name)}</code></li>")
    listing = f"<ul>\n{chr(10).join(items)}\n</ul>" if items else \
        '<p class="empty">No runbooks: add Markdown files to runbooks_dir.</p>'
    return _page("Runbooks", f"<h1>Runbooks</h1>\n{listing}")


async def runbook(request: web.Request) -> web.Response:
    config = request.app[RUNTIME].snapshot.config
    name = request.match_info["name"]
    text = runbooks.read(config.resolve(config.runbooks_dir), name)
    if text is None:
        # The name is not echoed: it is whatever the client sent.
        return _page("Not found", '<h1>No such runbook</h1>\n'
                     '<p><a href="/runbooks/">All runbooks</a></p>', status=404)
    body = (f"{runbooks.render(text)}\n"
            '<p class="muted"><a href="/runbooks/">All runbooks</a></p>')
    return _page(runbooks.title(text, name), body)


async def to_list(_: web.Request) -> web.Response:
    raise web.HTTPMovedPermanently("/runbooks/")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/runbooks", to_list)
    app.router.add_get("/runbooks/", runbook_list)
    app.router.add_get("/runbooks/{name}", runbook)
