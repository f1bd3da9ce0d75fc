"""`limit` and `cursor` of the paginated list endpoints, and the page's JSON answer.

The answer is `{"items": [...], "next_cursor": "..." | null, "total": N}`. It also carries
the earlier shape's `"status": "success"` and `"data"` (the same list), which existing clients
read; `data` is deprecated and goes in a later release.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web

from router.api.webhooks import error_response, json_response
from router.backends.pages import DEFAULT_LIMIT, MAX_LIMIT, InvalidCursor, Page

T = TypeVar("T")


def page_query(request: web.Request) -> tuple[int, str | None] | web.Response:
    """(limit, cursor) from the query string, or the 400 answer naming what is wrong."""
    text = request.query.get("limit")
    try:
        limit = DEFAULT_LIMIT if text is None else int(text)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        return error_response(400, f"limit must be an integer from 1 to {MAX_LIMIT}")
    return limit, request.query.get("cursor") or None


def page_response(page: Page[T], to_json: Callable[[T], object]) -> web.Response:
    items = [to_json(i) for i in page.items]
    return json_response(200, {"items": items, "next_cursor": page.next_cursor,
                               "total": page.total, "status": "success", "data": items})


async def paginated(request: web.Request, fetch: Callable[[int, str | None], Awaitable[Page[T]]],
                    to_json: Callable[[T], object]) -> web.Response:
    """Answer a list request: `fetch(limit, cursor)` one page, or 400 for a bad limit/cursor."""
    query = page_query(request)
    if isinstance(query, web.Response):
        return query
    try:
        page = await fetch(*query)
    except InvalidCursor as exc:
        return error_response(400, str(exc))
    return page_response(page, to_json)
