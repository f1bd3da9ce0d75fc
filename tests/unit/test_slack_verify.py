"""Slack and PagerDuty request signatures (valid, forged, stale, malformed) and the PD v3 envelope.

Expected signatures are computed here with hmac directly, independent of the module's helpers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from router.signatures import (
    SignatureError,
    pagerduty_signature,
    parse_pagerduty_webhook,
    slack_signature,
    verify_pagerduty,
    verify_slack,
)
from router.sources.base import Rejected

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
NOW = 1_767_225_600  # 2026-01-01T00:00:00Z
BODY = b"token=x&command=%2Fincident&text=create+%22DB+down%22+SEV1&user_id=U1"


def slack_sig(secret: str, ts: str, body: bytes) -> str:
    base = b"v0:" + ts.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def slack_headers(ts: int | str = NOW, secret: str = SECRET, body: bytes = BODY) -> dict[str, str]:
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": slack_sig(secret, str(ts),
                                                                                  body)}


@pytest.mark.parametrize(
    ("headers", "now"),
    [
        (slack_headers(), NOW),
        (slack_headers(), NOW + 300),  # exactly 5 minutes old: still accepted
        (slack_headers(), NOW - 300),  # a sender clock 5 minutes ahead
        ({k.lower(): v for k, v in slack_headers().items()}, NOW),  # header case
    ],
)
def test_slack_valid(headers: dict[str, str], now: float) -> None:
    verify_slack(SECRET, headers, BODY, now)


def test_slack_helper_matches_the_spec() -> None:
    assert slack_signature(SECRET, str(NOW), BODY) == slack_sig(SECRET, str(NOW), BODY)


@pytest.mark.parametrize(
    ("headers", "body", "now", "reason"),
    [
        # Forged: another secret, a tampered body, a tampered timestamp.
        (slack_headers(secret="not-the-secret"), BODY, NOW, "bad_signature"),
        (slack_headers(), BODY + b"&text=resolve", NOW, "bad_signature"),
        ({**slack_headers(), "X-Slack-Request-Timestamp": str(NOW + 1)}, BODY, NOW,
         "bad_signature"),
        ({**slack_headers(), "X-Slack-Signature": "v0=" + "0" * 64}, BODY, NOW, "bad_signature"),
        # Stale (a replay) or from the future.
        (slack_headers(), BODY, NOW + 301, "stale_request"),
        (slack_headers(ts=NOW - 3600), BODY, NOW, "stale_request"),
        (slack_headers(), BODY, NOW - 301, "stale_request"),
        # Malformed or missing headers.
        ({}, BODY, NOW, "missing_signature"),
        ({"X-Slack-Signature": slack_sig(SECRET, str(NOW), BODY)}, BODY, NOW,
         "missing_signature"),
        ({"X-Slack-Request-Timestamp": str(NOW)}, BODY, NOW, "missing_signature"),
        ({**slack_headers(), "X-Slack-Signature": ""}, BODY, NOW, "missing_signature"),
        (slack_headers(ts="yesterday"), BODY, NOW, "malformed_signature"),
        (slack_headers(ts="1.7e9"), BODY, NOW, "malformed_signature"),
        (slack_headers(ts="-100"), BODY, NOW, "malformed_signature"),
        ({**slack_headers(), "X-Slack-Signature": slack_sig(SECRET, str(NOW), BODY)[3:]}, BODY,
         NOW, "malformed_signature"),
        ({**slack_headers(), "X-Slack-Signature": "v1=abc"}, BODY, NOW, "malformed_signature"),
    ],
)
def test_slack_refused(headers: dict[str, str], body: bytes, now: float, reason: str) -> None:
    with pytest.raises(SignatureError) as info:
        verify_slack(SECRET, headers, body, now)
    assert (info.value.status, info.value.reason) == (401, reason)
    assert SECRET not in info.value.message
    assert isinstance(info.value, Rejected)  # the API's existing error handling answers it


def test_slack_without_a_secret_fails_closed() -> None:
    with pytest.raises(SignatureError, match="not configured"):
        verify_slack("", slack_headers(secret=""), BODY, NOW)


# --- PagerDuty -------------------------------------------------------------------------------

PD_SECRET = "pd-webhook-secret-1"
PD_OLD = "pd-webhook-secret-0"


def pd_sig(secret: str, body: bytes) -> str:
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def pd_payload(event_type: str = "incident.acknowledged", **data: Any) -> bytes:
    incident = {
        "id": "PGR0VU2", "type": "incident", "self": "https://api.pagerduty.com/incidents/PGR0VU2",
        "html_url": "https://acme.pagerduty.com/incidents/PGR0VU2", "number": 2,
        "status": "acknowledged", "incident_key": "3f1c0a9e6b2d4c58a7e0f1b2c3d4e5f6",
        "created_at": "2026-01-01T10:00:00Z", "title": "DB down",
        "service": {"id": "PF9KMXH", "summary": "Checkout API", "type": "service_reference"},
        "urgency": "high", "resolve_reason": None, **data,
    }
    return json.dumps({"event": {
        "id": "01DEN7Y3W7RU2N1J4VA0V7WNOA", "event_type": event_type,
        "resource_type": "incident", "occurred_at": "2026-01-01T10:05:22.169Z",
        "agent": {"html_url": "https://acme.pagerduty.com/users/PLH1HKV", "id": "PLH1HKV",
                  "summary": "Alice Example", "type": "user_reference"},
        "client": None, "data": incident,
    }}).encode()


PD_BODY = pd_payload()


@pytest.mark.parametrize(
    ("secrets", "header"),
    [
        (PD_SECRET, pd_sig(PD_SECRET, PD_BODY)),
        # PagerDuty rotating its secret: several signatures, one matches ours.
        (PD_SECRET, f"{pd_sig(PD_OLD, PD_BODY)},{pd_sig(PD_SECRET, PD_BODY)}"),
        (PD_SECRET, f"v1={'a' * 64}, {pd_sig(PD_SECRET, PD_BODY)} "),
        # Unknown future versions are ignored as long as a v1 matches.
        (PD_SECRET, f"v2=abc,{pd_sig(PD_SECRET, PD_BODY)}"),
        # We rotate ours: both configured, PagerDuty still signs with the old one.
        ([PD_SECRET, PD_OLD], pd_sig(PD_OLD, PD_BODY)),
    ],
)
def test_pagerduty_valid(secrets: str | list[str], header: str) -> None:
    verify_pagerduty(secrets, {"X-PagerDuty-Signature": header}, PD_BODY)
    verify_pagerduty(secrets, {"x-pagerduty-signature": header}, PD_BODY)


def test_pagerduty_helper_matches_the_spec() -> None:
    assert pagerduty_signature(PD_SECRET, PD_BODY) == pd_sig(PD_SECRET, PD_BODY)


@pytest.mark.parametrize(
    ("headers", "body", "reason"),
    [
        ({"X-PagerDuty-Signature": pd_sig("forged", PD_BODY)}, PD_BODY, "bad_signature"),
        ({"X-PagerDuty-Signature": pd_sig(PD_SECRET, PD_BODY)}, pd_payload("incident.resolved"),
         "bad_signature"),
        ({"X-PagerDuty-Signature": f"{pd_sig('a', PD_BODY)},{pd_sig('b', PD_BODY)}"}, PD_BODY,
         "bad_signature"),
        ({"X-PagerDuty-Signature": pd_sig(PD_SECRET, PD_BODY).upper()}, PD_BODY,
         "malformed_signature"),  # "V1=": not a v1 entry
        ({}, PD_BODY, "missing_signature"),
        ({"X-PagerDuty-Signature": "  "}, PD_BODY, "missing_signature"),
        ({"X-PagerDuty-Signature": pd_sig(PD_SECRET, PD_BODY)[3:]}, PD_BODY,
         "malformed_signature"),
        ({"X-PagerDuty-Signature": "v1="}, PD_BODY, "malformed_signature"),
        ({"X-PagerDuty-Signature": "v0=" + pd_sig(PD_SECRET, PD_BODY)[3:]}, PD_BODY,
         "malformed_signature"),
    ],
)
def test_pagerduty_refused(headers: dict[str, str], body: bytes, reason: str) -> None:
    with pytest.raises(SignatureError) as info:
        verify_pagerduty(PD_SECRET, headers, body)
    assert (info.value.status, info.value.reason) == (401, reason)
    assert PD_SECRET not in info.value.message


def test_pagerduty_without_a_secret_fails_closed() -> None:
    with pytest.raises(SignatureError, match="not configured"):
        verify_pagerduty([], {"X-PagerDuty-Signature": pd_sig("", PD_BODY)}, PD_BODY)


@pytest.mark.parametrize(
    ("body", "action", "status"),
    [
        (pd_payload("incident.acknowledged"), "ack", "acknowledged"),
        (pd_payload("incident.resolved", status="resolved"), "resolve", "resolved"),
        (pd_payload("incident.priority_updated", status="triggered"), None, "triggered"),
        (pd_payload("incident.triggered", status="triggered"), None, "triggered"),
    ],
)
def test_pagerduty_incident_events(body: bytes, action: str | None, status: str) -> None:
    ev = parse_pagerduty_webhook(body)
    assert ev.action == action
    assert ev.incident_status == status
    assert ev.incident_key == "3f1c0a9e6b2d4c58a7e0f1b2c3d4e5f6"  # the dedup_key we sent
    assert (ev.incident_id, ev.incident_number, ev.incident_url) == (
        "PGR0VU2", 2, "https://acme.pagerduty.com/incidents/PGR0VU2")
    assert (ev.agent_id, ev.agent_name) == ("PLH1HKV", "Alice Example")
    assert ev.occurred_at == datetime(2026, 1, 1, 10, 5, 22, 169000, tzinfo=UTC)
    assert (ev.event_id, ev.title, ev.service_name) == (
        "01DEN7Y3W7RU2N1J4VA0V7WNOA", "DB down", "Checkout API")


def test_pagerduty_non_incident_data_and_ping() -> None:
    note = json.dumps({"event": {
        "id": "E1", "event_type": "incident.annotated", "resource_type": "incident",
        "occurred_at": "2026-01-01T10:00:00Z", "agent": None,
        "data": {"type": "incident_note", "id": "P2LA89X", "content": "looking",
                 "incident": {"id": "PGR0VU2", "type": "incident_reference",
                              "summary": "DB down",
                              "html_url": "https://acme.pagerduty.com/incidents/PGR0VU2"}},
    }}).encode()
    ev = parse_pagerduty_webhook(note)
    assert (ev.action, ev.incident_id, ev.incident_key, ev.agent_id) == (
        None, "PGR0VU2", None, None)
    ping = json.dumps({"event": {
        "id": "E2", "event_type": "pagey.ping", "resource_type": "pagey",
        "occurred_at": "2026-01-01T10:00:00Z", "agent": None, "client": None,
        "data": {"message": "Hello from your friend Pagey!", "type": "ping"}}}).encode()
    ev = parse_pagerduty_webhook(ping)
    assert (ev.event_type, ev.action, ev.incident_id) == ("pagey.ping", None, None)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "malformed JSON"),
        (b"[]", 422, "invalid payload"),
        (b'{"messages": []}', 422, "event: Field required"),
        (b'{"event": {"id": "x", "event_type": "incident.resolved"}}', 422,
         "event.occurred_at: Field required"),
        (b'{"event": {"id": "x", "event_type": "incident.resolved", "occurred_at": "soon"}}', 422,
         "event.occurred_at"),
    ],
)
def test_pagerduty_malformed_envelope(body: bytes, status: int, message: str) -> None:
    with pytest.raises(Rejected) as info:
        parse_pagerduty_webhook(body)
    assert info.value.status == status
    assert message in info.value.message
