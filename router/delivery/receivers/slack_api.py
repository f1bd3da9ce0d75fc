"""The Slack Web API as the `slack` receiver calls it: one POST per method with the bot token,
HTTP status first, then Slack's `ok` / `error` inside a 200.

Errors: `ratelimited` and Slack's own server errors are retried, anything else is permanent;
HTTP 429 carries Retry-After, which the dispatcher honours. Error texts pass the redactor.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from pydantic import SecretStr

from router.delivery.http import Http, HttpAnswer, Redactor, classify, dumps, http_call
from router.delivery.result import DeliveryResult

RETRYABLE_ERRORS = {"ratelimited", "rate_limited"}
SERVER_ERRORS = {"internal_error", "fatal_error", "service_unavailable", "request_timeout"}


def escape(text: str) -> str:
    """Slack's control characters (`&`, `<`, `>`) as entities, so text from an alert can
    never form a mention (`<!channel>`) or a link (`<url|text>`). For every mrkdwn field,
    the top-level `text` (the notification preview) included."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def classify_web_api(answer: HttpAnswer, redact: Redactor) -> tuple[DeliveryResult, Any]:
    """HTTP status first, then Slack's `ok`/`error` inside a 200."""
    result = classify(answer, redact)
    if not result.ok:
        return result, None
    data = answer.json()
    if not isinstance(data, dict):
        return DeliveryResult.failed("server_error", retryable=True, status=answer.status,
                                     detail="unreadable Slack answer"), None
    if data.get("ok") is True:
        return result, data
    error = redact(str(data.get("error", "unknown_error")))[:100]
    if error in RETRYABLE_ERRORS:
        return DeliveryResult.failed("rate_limited", retryable=True, status=answer.status,
                                     detail=error), None
    if error in SERVER_ERRORS:
        return DeliveryResult.failed("server_error", retryable=True, status=answer.status,
                                     detail=error), None
    return DeliveryResult.failed("vendor_error", retryable=False, status=answer.status,
                                 detail=error), None


async def web_api(http: Http, api_url: str, token: SecretStr, method: str,
                  body: dict[str, Any], redact: Redactor, *,
                  form: bool = False) -> tuple[DeliveryResult, Any]:
    """One Web API call with the bot token: JSON, or form-encoded for the read methods
    (users.lookupByEmail, conversations.history) that take their arguments as a form."""
    data = urlencode({k: str(v) for k, v in body.items()}).encode() if form else dumps(body)
    kind = "application/x-www-form-urlencoded" if form else "application/json; charset=utf-8"
    answer = await http_call(
        http, "POST", f"{api_url.rstrip('/')}/{method}", body=data,
        headers={"Authorization": f"Bearer {token.get_secret_value()}", "Content-Type": kind},
    )
    if isinstance(answer, DeliveryResult):
        return answer, None
    return classify_web_api(answer, redact)
