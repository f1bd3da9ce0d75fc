"""SNS envelope verification against a local fake SNS (real key, real cert, real HTTP)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.config import CloudWatchSourceConfig
from router.sources.base import Rejected
from router.sources.cloudwatch import handle_sns
from router.sources.sns import (
    CertUnavailable,
    ConfirmationFailed,
    SnsUnavailable,
    SnsVerifier,
    parse_envelope,
)
from tests import snskit
from tests.snskit import FakeSns

DATA = Path(__file__).parents[2] / "testdata"
NOW = datetime(2026, 11, 27, 10, 1, tzinfo=UTC)


def template(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DATA / "sns" / name).read_text())
    return loaded


@pytest.fixture
async def fake_sns(aiohttp_server: Any) -> FakeSns:
    fake = FakeSns()
    server = await aiohttp_server(fake.app())
    fake.attach(str(server.make_url("/")))
    return fake


@pytest.fixture
async def verifier() -> AsyncIterator[SnsVerifier]:
    async with aiohttp.ClientSession() as session:
        yield SnsVerifier(session, timeout_seconds=5.0)


@pytest.fixture
def cfg() -> CloudWatchSourceConfig:
    return snskit.local_config()


def signed_notification(fake: FakeSns, version: snskit.SignatureVersion = "1",
                        **changes: Any) -> dict[str, Any]:
    """The documented notification fixture, pointed at the fake and signed with its key."""
    env = template("notification.json")
    env["SigningCertURL"] = fake.cert_url
    env.update(changes)
    env = {k: v for k, v in env.items() if v is not None}
    return snskit.sign(env, fake.key, version)


async def reject(verifier: SnsVerifier, env: dict[str, Any], cfg: CloudWatchSourceConfig,
                 headers: dict[str, str] | None = None) -> Rejected:
    with pytest.raises(Rejected) as info:
        await handle_sns(snskit.to_body(env), headers or {}, cfg, verifier, NOW)
    return info.value


# --- valid messages --------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1", "2"])
async def test_signed_notification_is_accepted(
    fake_sns: FakeSns, verifier: SnsVerifier, cfg: CloudWatchSourceConfig, version: str
) -> None:
    env = signed_notification(fake_sns, version)  # type: ignore[arg-type]
    alerts = await handle_sns(
        snskit.to_body(env), snskit.headers_for(env), cfg, verifier, NOW
    )
    assert [a.name for a in alerts] == ["web-alb-5xx-high"]
    assert alerts[0].value == 12.5


async def test_notification_without_subject_is_accepted(
    fake_sns: FakeSns, verifier: SnsVerifier, cfg: CloudWatchSourceConfig
) -> None:
    env = signed_notification(fake_sns, Subject=None)
    assert "Subject" not in env
    assert len(await handle_sns(snskit.to_body(env), {}, cfg, verifier, NOW)) == 1


async def test_message_with_newlines_and_unicode_verifies(
    fake_sns: FakeSns, verifier: SnsVerifier, cfg: CloudWatchSourceConfig
) -> None:
    # Signed over the decoded text: real newlines and characters, not JSON escapes.
    env = fake_sns.notification("line1\nline2 \u00e9\u2603", subject="caf\u00e9")
    got = await verifier.receive(snskit.to_body(env), {}, cfg)
    assert got is not None and got.message == "line1\nline2 \u00e9\u2603"


async def test_content_type_and_other_headers_do_not_matter(
    fake_sns: FakeSns, verifier: SnsVerifier, cfg: CloudWatchSourceConfig
) -> None:
    env = signed_notification(fake_sns)
    body = snskit.to_body(env)
    as_sns = await handle_sns(body, {"Content-Type": "text/plain; charset=UTF-8"}, cfg,
                              verifier, NOW)
    as_json = await handle_sns(body, {"Content-Type": "application/json"}, cfg, verifier, NOW)
    # A lying message-type header changes nothing: the signed body Type is what counts.
    lying = await handle_sns(body, {"x-amz-sns-message-type": "SubscriptionConfirmation"}, cfg,
                             verifier, NOW)
    assert as_sns == as_json == lying
    assert fake_sns.confirm_requests == []


async def test_lambda_spelling_of_cert_url_is_accepted(
    fake_sns: FakeSns, verifier: SnsVerifier, cfg: CloudWatchSourceConfig
) -> None:
    env = signed_notification(fake_sns)
    env["SigningCertUrl"] = env.pop("SigningCertURL")
    assert len(await handle_sns(snskit.to_body(env), {}, cfg, verifier, NOW)) == 1


# --- forged or off-policy messages: 403 ------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("Message", '{"AlarmName":"forged"}'),
        ("Subject", 'OK: "web-alb-5xx-high" in EU (Ireland)'),
        ("MessageId", "00000000-0000-0000-0000-000000000000"),
        ("Timestamp", "2030-01-01T00:00:00.000Z"),
        ("TopicArn", "arn:aws:sns:us-east-1:123456789012:also-allowed"),
    ],
)
@pytest.mark.parametrize("version", ["1", "2"])
async def test_tampered_field_is_403_bad_signature(
    fake_sns: FakeSns, verifier: SnsVerifier, field: str, value: str, version: str
) -> None:
    cfg = snskit.local_config(topic_arns=[snskit.TOPIC_ARN, value])
    env = signed_notification(fake_sns, version)  # type: ignore[arg-type]
    env[field] = value
    err = await reject(verifier, env, cfg)
    assert (err.status, err.reason) == (403, "bad_signature")


async def test_adding_a_subject_after_signing_is_403(
    fake_sns: FakeSns, verifier: SnsVerifier, cfg: CloudWatchSourceConfig
) -> None:
    env = signed_notification(fake_sns, Subject=None)
    env["Subject"] = "injected"
    assert (await reject(verifier, env, cfg)).reason == "bad_signature"


async def test_sha1_signature_claimed_as_version_2_is_403(
    fake_sns: FakeSns, verifier: SnsVerifier, cfg: CloudWatchSourceConfig
) -> None:
    env = signed_notification(fake_sns, "1")
    env["SignatureVersion"] = "2"
    assert (await reject(verifier, env, cfg)).reason == "bad_signature"


@pytest.mark.parametrize("signature", ["", "not base64!!", "QUJD"])
async def test_garbage_signature_is_403(
    fake_sns: FakeSns, verifier: SnsVerifier, cfg: CloudWatchSourceConfig, signature: str
) -> None:
    env = signed_notification(fake_sns)
    env["Signature"] = signature
    err = await reject(verifier, env, cfg)
    assert (err.status, err.reason) == (403, "bad_signature")


@pytest.mark.parametrize("version", ["3", "0", "", "1.0", "SHA256"])
async def test_unsupported_signature_version_is_403(
    fake_sns: FakeSns, verifier: SnsVerifier, cfg: CloudWatchSourceConfig, version: str
) -> None:
    env = signed_notification(fake_sns)
    env["SignatureVersion"] = version
    err = await reject(verifier, env, cfg)
    assert (err.status, err.reason) == (403, "bad_signature_version")
    assert fake_sns.cert_requests == 0


LOCAL_BAD_CERT_URLS = [
    "http://localhost:{port}/SimpleNotificationService-0123456789abcdef.pem",  # other host
    "http://user:pw@127.0.0.1:{port}/SimpleNotificationService-0123456789abcdef.pem",  # userinfo
    "http://127.0.0.1.evil.tld:{port}/SimpleNotificationService-0123456789abcdef.pem",
    "http://evil.tld/127.0.0.1/SimpleNotificationService-0123456789abcdef.pem",
    "http://127.0.0.1:{port}/SimpleNotificationService-0123456789abcdef.txt",  # not .pem
    "ftp://127.0.0.1:{port}/SimpleNotificationService-0123456789abcdef.pem",
    "/SimpleNotificationService-0123456789abcdef.pem",  # relative
    "http://[::1/x.pem",  # unparseable
]


@pytest.mark.parametrize("url", LOCAL_BAD_CERT_URLS)
async def test_cert_url_off_the_local_pattern_is_403_and_not_fetched(
    fake_sns: FakeSns, verifier: SnsVerifier, cfg: CloudWatchSourceConfig, url: str
) -> None:
    port = fake_sns.base_url.rsplit(":", 1)[1]
    env = signed_notification(fake_sns)
    env["SigningCertURL"] = url.format(port=port)
    err = await reject(verifier, env, cfg)
    assert (err.status, err.reason) == (403, "bad_cert_url")
    assert fake_sns.cert_requests == 0
    assert port not in err.message  # the URL is not echoed back


@pytest.mark.parametrize(
    "url",
    [
        "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",  # http
        "https://sns.us-east-1.amazonaws.com.evil.tld/SimpleNotificationService-abc.pem",
        "https://evil.tld/sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://evil.tld/?sns.us-east-1.amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com@evil.tld/SimpleNotificationService-abc.pem",
        "https://x:y@sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-abc.pem",
        "https://sns.us-east-1.amazonaws.com./SimpleNotificationService-abc.pem",
        "https://sns.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://s3.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem.txt",
    ],
)
async def test_cert_url_off_the_aws_pattern_is_403(
    fake_sns: FakeSns, verifier: SnsVerifier, url: str
) -> None:
    cfg = CloudWatchSourceConfig(topic_arns=[snskit.TOPIC_ARN])  # production defaults
    env = signed_notification(fake_sns)
    env["SigningCertURL"] = url
    err = await reject(verifier, env, cfg)
    assert (err.status, err.reason) == (403, "bad_cert_url")


async def test_unknown_topic_is_403(fake_sns: FakeSns, verifier: SnsVerifier,
                                    cfg: CloudWatchSourceConfig) -> None:
    env = signed_notification(fake_sns, TopicArn=snskit.OTHER_TOPIC_ARN)
    err = await reject(verifier, env, cfg)
    assert (err.status, err.reason) == (403, "topic_not_allowed")


async def test_empty_allow_list_accepts_no_topic(fake_sns: FakeSns,
                                                 verifier: SnsVerifier) -> None:
    env = signed_notification(fake_sns)
    err = await reject(verifier, env, snskit.local_config(topic_arns=[]))
    assert err.reason == "topic_not_allowed"


async def test_other_key_with_valid_looking_signature_is_403(
    fake_sns: FakeSns, verifier: SnsVerifier, cfg: CloudWatchSourceConfig
) -> None:
    env = template("notification.json")
    env["SigningCertURL"] = fake_sns.cert_url
    forged = snskit.sign(env, snskit.SigningKey.generate(), "2")
    assert (await reject(verifier, forged, cfg)).reason == "bad_signature"


# --- raw delivery and shape --------------------------------------------------------------------


async def test_raw_delivery_header_is_403(fake_sns: FakeSns, verifier: SnsVerifier,
                                          cfg: CloudWatchSourceConfig) -> None:
    body = (DATA / "cloudwatch" / "alarm-single-metric.json").read_bytes()
    with pytest.raises(Rejected) as info:
        await handle_sns(body, {"x-amz-sns-rawdelivery": "true"}, cfg, verifier, NOW)
    assert (info.value.status, info.value.reason) == (403, "raw_delivery")
    assert "raw message delivery is not supported" in info.value.message


async def test_body_without_signature_fields_is_raw_delivery(
    verifier: SnsVerifier, cfg: CloudWatchSourceConfig
) -> None:
    body = (DATA / "cloudwatch" / "alarm-single-metric.json").read_bytes()
    with pytest.raises(Rejected) as info:
        await handle_sns(body, {}, cfg, verifier, NOW)
    assert (info.value.status, info.value.reason) == (403, "raw_delivery")


@pytest.mark.parametrize(
    ("body", "status", "in_message"),
    [
        (b"{not json", 400, "malformed JSON"),
        (b"", 400, "malformed JSON"),
        (b"[1, 2]", 422, "(body)"),
        (b'"Notification"', 422, "(body)"),
        (b'{"Type": "Notification", "Signature": "x"}', 422, "MessageId"),
    ],
)
def test_bad_envelopes(body: bytes, status: int, in_message: str) -> None:
    with pytest.raises(Rejected) as info:
        parse_envelope(body, {})
    assert info.value.status == status
    assert in_message in info.value.message


@pytest.mark.parametrize("name", ["subscription-confirmation.json",
                                  "unsubscribe-confirmation.json"])
def test_control_message_needs_subscribe_url_and_token(name: str) -> None:
    env = template(name)
    del env["SubscribeURL"], env["Token"]
    with pytest.raises(Rejected) as info:
        parse_envelope(snskit.to_body(env), {})
    assert info.value.status == 422
    assert "SubscribeURL" in info.value.message and "Token" in info.value.message


@pytest.mark.parametrize("name", ["notification.json", "subscription-confirmation.json",
                                  "unsubscribe-confirmation.json"])
def test_documented_envelopes_parse(name: str) -> None:
    env = parse_envelope((DATA / "sns" / name).read_bytes(), {})
    assert env.topic_arn == snskit.TOPIC_ARN


def test_wrong_type_is_422_naming_the_field() -> None:
    env = template("notification.json")
    env["Type"] = "Surprise"
    with pytest.raises(Rejected) as info:
        parse_envelope(snskit.to_body(env), {})
    assert info.value.status == 422 and "Type" in info.value.message


# --- subscription confirmation ---------------------------------------------------------------


@pytest.mark.parametrize("version", ["1", "2"])
async def test_subscription_is_confirmed_by_one_get(
    fake_sns: FakeSns, verifier: SnsVerifier, cfg: CloudWatchSourceConfig, version: str
) -> None:
    env = fake_sns.subscription_confirmation(version=version, token="secret-token")
    alerts = await handle_sns(snskit.to_body(env), snskit.headers_for(env), cfg, verifier, NOW)
    assert alerts == []
    assert fake_sns.confirm_requests == [
        {"Action": "ConfirmSubscription", "TopicArn": snskit.TOPIC_ARN, "Token": "secret-token"}
    ]


async def test_confirmation_not_fetched_when_disabled(
    fake_sns: FakeSns, verifier: SnsVerifier
) -> None:
    env = fake_sns.subscription_confirmation()
    cfg = snskit.local_config(confirm_subscriptions=False)
    assert await handle_sns(snskit.to_body(env), {}, cfg, verifier, NOW) == []
    assert fake_sns.confirm_requests == []


async def test_confirmation_for_unknown_topic_is_403_and_not_fetched(
    fake_sns: FakeSns, verifier: SnsVerifier, cfg: CloudWatchSourceConfig
) -> None:
    env = fake_sns.subscription_confirmation(topic_arn=snskit.OTHER_TOPIC_ARN)
    assert (await reject(verifier, env, cfg)).reason == "topic_not_allowed"
    assert fake_sns.confirm_requests == []


@pytest.mark.parametrize(
    "subscribe_url",
    [
        "http://localhost:{port}/?Action=ConfirmSubscription&Token=t",
        "http://127.0.0.1.evil.tld:{port}/?Action=ConfirmSubscription&Token=t",
        "http://u:p@127.0.0.1:{port}/?Action=ConfirmSubscription&Token=t",
        "file:///etc/passwd",
    ],
)
async def test_signed_subscribe_url_off_pattern_is_403_and_not_fetched(
    fake_sns: FakeSns, verifier: SnsVerifier, cfg: CloudWatchSourceConfig, subscribe_url: str
) -> None:
    port = fake_sns.base_url.rsplit(":", 1)[1]
    env = fake_sns.subscription_confirmation(subscribe_url=subscribe_url.format(port=port))
    err = await reject(verifier, env, cfg)
    assert (err.status, err.reason) == (403, "bad_subscribe_url")
    assert fake_sns.confirm_requests == []
    assert "Token" not in err.message


async def test_subscribe_url_swapped_after_signing_is_403_and_not_fetched(
    fake_sns: FakeSns, verifier: SnsVerifier, cfg: CloudWatchSourceConfig
) -> None:
    env = fake_sns.subscription_confirmation()
    env["SubscribeURL"] = fake_sns.subscribe_url(token="attacker")
    assert (await reject(verifier, env, cfg)).reason == "bad_signature"
    assert fake_sns.confirm_requests == []


async def test_unsubscribe_confirmation_is_logged_and_nothing_fetched(
    fake_sns: FakeSns, verifier: SnsVerifier, cfg: CloudWatchSourceConfig,
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = fake_sns.unsubscribe_confirmation(token="tok-unsub")
    with caplog.at_level(logging.WARNING, logger="router.sources.sns"):
        assert await handle_sns(snskit.to_body(env), {}, cfg, verifier, NOW) == []
    assert fake_sns.confirm_requests == []
    assert snskit.TOPIC_ARN in caplog.text
    assert "tok-unsub" not in caplog.text and "SubscribeURL" not in caplog.text


async def test_failed_confirmation_get_is_transient(
    fake_sns: FakeSns, verifier: SnsVerifier, cfg: CloudWatchSourceConfig
) -> None:
    fake_sns.confirm_status = 500
    env = fake_sns.subscription_confirmation()
    with pytest.raises(ConfirmationFailed):
        await handle_sns(snskit.to_body(env), {}, cfg, verifier, NOW)
    assert len(fake_sns.confirm_requests) == 1


# --- certificate fetching and cache ---------------------------------------------------------


async def test_certificate_is_fetched_once_and_cached(
    fake_sns: FakeSns, verifier: SnsVerifier, cfg: CloudWatchSourceConfig
) -> None:
    versions: list[snskit.SignatureVersion] = ["1", "2", "1"]
    bodies = [snskit.to_body(signed_notification(fake_sns, v)) for v in versions]
    for body in bodies:
        await handle_sns(body, {}, cfg, verifier, NOW)
    await asyncio.gather(*(handle_sns(b, {}, cfg, verifier, NOW) for b in bodies * 3))
    assert fake_sns.cert_requests == 1


async def test_concurrent_first_requests_share_one_fetch(
    fake_sns: FakeSns, verifier: SnsVerifier, cfg: CloudWatchSourceConfig
) -> None:
    body = snskit.to_body(signed_notification(fake_sns))
    results = await asyncio.gather(*(handle_sns(body, {}, cfg, verifier, NOW) for _ in range(8)))
    assert all(len(r) == 1 for r in results)
    assert fake_sns.cert_requests == 1


async def test_unavailable_certificate_is_transient_and_not_cached(
    fake_sns: FakeSns, verifier: SnsVerifier, cfg: CloudWatchSourceConfig
) -> None:
    body = snskit.to_body(signed_notification(fake_sns))
    fake_sns.cert_status = 503
    with pytest.raises(CertUnavailable):
        await handle_sns(body, {}, cfg, verifier, NOW)
    fake_sns.cert_status = 200
    assert len(await handle_sns(body, {}, cfg, verifier, NOW)) == 1
    assert fake_sns.cert_requests == 2


async def test_unreachable_cert_host_is_transient(
    verifier: SnsVerifier, cfg: CloudWatchSourceConfig, unused_tcp_port: int
) -> None:
    fake = FakeSns()
    fake.attach(f"http://127.0.0.1:{unused_tcp_port}")  # nothing listens there
    with pytest.raises(SnsUnavailable):
        await handle_sns(snskit.to_body(signed_notification(fake)), {}, cfg, verifier, NOW)


async def test_oversized_certificate_is_refused(
    aiohttp_server: Any, verifier: SnsVerifier, cfg: CloudWatchSourceConfig
) -> None:
    key = snskit.default_key()
    fake = FakeSns(key=snskit.SigningKey(key.private_key, key.cert_pem + b"\n" * 70_000))
    fake.attach(str((await aiohttp_server(fake.app())).make_url("/")))
    with pytest.raises(CertUnavailable):
        await handle_sns(snskit.to_body(signed_notification(fake)), {}, cfg, verifier, NOW)


async def test_cert_url_that_is_not_a_certificate_is_transient(
    aiohttp_server: Any, verifier: SnsVerifier, cfg: CloudWatchSourceConfig
) -> None:
    key = snskit.default_key()
    fake = FakeSns(key=snskit.SigningKey(key.private_key, b"<html>maintenance</html>"))
    fake.attach(str((await aiohttp_server(fake.app())).make_url("/")))
    with pytest.raises(CertUnavailable):
        await handle_sns(snskit.to_body(signed_notification(fake)), {}, cfg, verifier, NOW)


def test_transient_errors_are_not_rejections() -> None:
    # The HTTP layer maps Rejected to 4xx and SnsUnavailable to 503; they must not overlap.
    assert not issubclass(SnsUnavailable, Rejected)
    assert issubclass(CertUnavailable, SnsUnavailable)
    assert issubclass(ConfirmationFailed, SnsUnavailable)


# --- property: envelope validation only ever rejects ------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                               max_size=4),
    max_leaves=10,
)
_KEYS = [*template("subscription-confirmation.json"), "Subject", "UnsubscribeURL"]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["notification.json", "subscription-confirmation.json",
                     "unsubscribe-confirmation.json"]),
    st.dictionaries(st.sampled_from(_KEYS), _json, max_size=4),
    st.sets(st.sampled_from(_KEYS), max_size=3),
)
def test_mutated_envelopes_only_ever_reject(name: str, changes: dict[str, Any],
                                            dropped: set[str]) -> None:
    env = {k: v for k, v in template(name).items() if k not in dropped}
    env.update(changes)
    try:
        parse_envelope(json.dumps(env).encode(), {})
    except Rejected as exc:
        assert 400 <= exc.status < 500


@settings(max_examples=200)
@given(st.binary(max_size=200) | _json.map(lambda v: json.dumps(v).encode()))
def test_random_bodies_only_ever_reject(body: bytes) -> None:
    try:
        parse_envelope(body, {})
    except Rejected as exc:
        assert 400 <= exc.status < 500


async def test_certificate_cache_is_bounded(aiohttp_server: Any,
                                            cfg: CloudWatchSourceConfig) -> None:
    # Two cert hosts (two local servers, same key) and room for one: the oldest is evicted.
    fakes = [FakeSns(), FakeSns()]
    for fake in fakes:
        fake.attach(str((await aiohttp_server(fake.app())).make_url("/")))
    async with aiohttp.ClientSession() as session:
        small = SnsVerifier(session, cache_size=1)
        for fake in (fakes[0], fakes[1], fakes[0]):
            body = snskit.to_body(signed_notification(fake))
            assert len(await handle_sns(body, {}, cfg, small, NOW)) == 1
    assert [f.cert_requests for f in fakes] == [2, 1]


async def test_a_query_string_does_not_force_a_certificate_fetch(
    fake_sns: FakeSns, verifier: SnsVerifier, cfg: CloudWatchSourceConfig
) -> None:
    # The cache is keyed by scheme, host and path: a sender varying the query (or fragment)
    # cannot make the router fetch the certificate again for every message.
    for suffix in ("", "?v=a", "?v=b", "?Action=x&v=c", "#frag"):
        env = signed_notification(fake_sns, SigningCertURL=fake_sns.cert_url + suffix)
        assert len(await handle_sns(snskit.to_body(env), {}, cfg, verifier, NOW)) == 1
    assert fake_sns.cert_requests == 1


async def test_a_query_string_cannot_poison_the_certificate_cache(
    aiohttp_server: Any, verifier: SnsVerifier, cfg: CloudWatchSourceConfig
) -> None:
    # A cert host that answers a different certificate when a query string is present: what
    # is fetched is the path alone, so the forger's certificate is never fetched nor cached.
    real, forger = FakeSns(), FakeSns(key=snskit.SigningKey.generate())
    queries: list[str] = []

    async def cert(request: web.Request) -> web.Response:
        queries.append(request.query_string)
        pem = forger.key.cert_pem if request.query_string else real.key.cert_pem
        return web.Response(body=pem, content_type="application/x-x509-ca-cert")

    app = web.Application()
    app.router.add_get(snskit.CERT_PATH, cert)
    base = str((await aiohttp_server(app)).make_url("/"))
    real.attach(base)
    forger.attach(base)

    forged = signed_notification(forger, SigningCertURL=forger.cert_url + "?evil=1")
    assert (await reject(verifier, forged, cfg)).reason == "bad_signature"
    genuine = signed_notification(real)
    assert len(await handle_sns(snskit.to_body(genuine), {}, cfg, verifier, NOW)) == 1
    assert (await reject(verifier, forged, cfg)).reason == "bad_signature"
    assert queries == [""]
