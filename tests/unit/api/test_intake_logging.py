"""One concise log line per refused request, with structured fields and a request id."""

from __future__ import annotations

import logging
import re

import pytest

from tests.conftest import RouterClient

SECRET = "am-secret-token-123"
AM_AUTH = {"sources": {"alertmanager": {"auth": {"type": "bearer", "tokens": [SECRET]}}},
           "api": {"tokens": ["api-token-456"]}}


def refusals(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "router.api.requests"]


async def test_a_bad_token_is_one_warning_with_fields_and_no_secret(
    router_client: RouterClient, caplog: pytest.LogCaptureFixture,
) -> None:
    client = await router_client(AM_AUTH)
    caplog.set_level(logging.INFO)
    resp = await client.post("/webhooks/alertmanager", data=b"{}",
                             headers={"Authorization": "Bearer wrong-" + SECRET,
                                      "X-Request-Id": "am-req-42"})
    assert resp.status == 401
    assert resp.headers["X-Request-Id"] == "am-req-42"
    [record] = refusals(caplog)
    assert record.levelno == logging.WARNING
    assert record.exc_info is None
    fields = {k: getattr(record, k) for k in ("source", "status", "reason", "request_id",
                                               "remote")}
    assert fields == {"source": "alertmanager", "status": 401, "reason": "unauthorized",
                      "request_id": "am-req-42", "remote": "127.0.0.1"}
    assert record.getMessage() == ("request refused: source=alertmanager status=401 "
                                   "reason=unauthorized request_id=am-req-42 remote=127.0.0.1")
    assert SECRET not in caplog.text


async def test_bad_input_is_one_info_line_without_the_body(
    router_client: RouterClient, caplog: pytest.LogCaptureFixture,
) -> None:
    client = await router_client()
    caplog.set_level(logging.INFO)
    resp = await client.post("/webhooks/generic",
                             data=b'{"name": "x", "url": "https://hooks.example/T0/B0/XXXX", ')
    assert resp.status == 400
    [record] = refusals(caplog)
    assert record.levelno == logging.INFO
    assert (record.source, record.status, record.reason) == ("generic", 400, "malformed_json")
    assert "hooks.example" not in caplog.text
    assert not any(r.exc_info for r in caplog.records)


async def test_an_api_call_without_a_token_is_logged_once(
    router_client: RouterClient, caplog: pytest.LogCaptureFixture,
) -> None:
    client = await router_client(AM_AUTH)
    caplog.set_level(logging.INFO)
    resp = await client.get("/api/v1/incidents")
    assert resp.status == 401
    [record] = refusals(caplog)
    assert (record.source, record.status, record.reason) == ("api", 401, "unauthorized")
    assert record.request_id == resp.headers["X-Request-Id"]


@pytest.mark.parametrize("given", [None, "", "has space", "x" * 129, "a\tb"])
async def test_a_missing_or_unfit_request_id_is_replaced(
    router_client: RouterClient, given: str | None,
) -> None:
    client = await router_client()
    headers = {} if given is None else {"X-Request-Id": given}
    resp = await client.post("/webhooks/generic", json={"name": "DiskFull"}, headers=headers)
    assert resp.status == 200
    assert re.fullmatch(r"[0-9a-f]{32}", resp.headers["X-Request-Id"])


async def test_accepted_requests_log_no_refusal(
    router_client: RouterClient, caplog: pytest.LogCaptureFixture,
) -> None:
    client = await router_client()
    caplog.set_level(logging.INFO)
    resp = await client.post("/webhooks/generic", json={"name": "DiskFull"},
                             headers={"X-Request-Id": "ok-1"})
    assert resp.status == 200
    assert resp.headers["X-Request-Id"] == "ok-1"
    assert refusals(caplog) == []
    # Not-found and other routes carry the id too.
    assert (await client.get("/nowhere")).headers["X-Request-Id"]


async def test_generated_request_ids_differ_from_request_to_request(
    router_client: RouterClient,
) -> None:
    client = await router_client()
    ids = set()
    for _ in range(3):
        resp = await client.post("/webhooks/generic", json={"name": "DiskFull"})
        assert resp.status == 200
        ids.add(resp.headers["X-Request-Id"])
    assert len(ids) == 3
