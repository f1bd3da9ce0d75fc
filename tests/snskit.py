"""Test kit for SNS HTTP delivery: a local signing key + certificate, signed envelopes, fake SNS.

Stands in for AWS with real bytes and a real local server, no mocks:

    key = snskit.default_key()                      # RSA 2048 + self-signed X.509 (cached)
    fake = snskit.FakeSns(key)
    server = await aiohttp_server(fake.app())       # serves the PEM and SubscribeURL
    fake.attach(str(server.make_url("/")))
    cfg = snskit.local_config(topic_arns=[snskit.TOPIC_ARN])   # host pattern = 127.0.0.1
    body = snskit.to_body(fake.notification(message=alarm_json))
    # POST `body` to the router (Content-Type text/plain, like SNS), or call
    # router.sources.cloudwatch.handle_sns(body, snskit.headers_for(env), cfg, verifier, now).

The string-to-sign here is written independently of router.sources.sns so that the tests
cross-check the verifier rather than agree with it by construction.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from router.config import CloudWatchSourceConfig

TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:cloudwatch-alarms"
OTHER_TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:someone-else"
LOCAL_HOST_PATTERN = r"127\.0\.0\.1"
CERT_PATH = "/SimpleNotificationService-0123456789abcdef.pem"
CONFIRM_PATH = "/"

SignatureVersion = Literal["1", "2"]

# AWS's documented string-to-sign keys (sns-verify-signature-of-message), in order.
_NOTIFICATION_KEYS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_CONTROL_KEYS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")


@dataclass(frozen=True)
class SigningKey:
    """An RSA key and a self-signed certificate for it, as SNS's signing cert would be."""

    private_key: rsa.RSAPrivateKey
    cert_pem: bytes

    @classmethod
    def generate(cls, common_name: str = "sns.amazonaws.com") -> SigningKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365))
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert.public_bytes(serialization.Encoding.PEM))


@functools.cache
def default_key() -> SigningKey:
    """One generated key per test process (RSA generation is the slow part)."""
    return SigningKey.generate()


def string_to_sign(envelope: dict[str, Any]) -> bytes:
    keys = _NOTIFICATION_KEYS if envelope["Type"] == "Notification" else _CONTROL_KEYS
    return "".join(
        f"{k}\n{envelope[k]}\n" for k in keys if envelope.get(k) is not None
    ).encode("utf-8")


def sign(
    envelope: dict[str, Any], key: SigningKey, version: SignatureVersion = "1"
) -> dict[str, Any]:
    """A copy of `envelope` with SignatureVersion and Signature set (SHA1 for 1, SHA256 for 2)."""
    signed = dict(envelope)
    signed["SignatureVersion"] = version
    algorithm: hashes.HashAlgorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    raw = key.private_key.sign(string_to_sign(signed), padding.PKCS1v15(), algorithm)
    signed["Signature"] = base64.b64encode(raw).decode("ascii")
    return signed


def _timestamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def notification(
    *,
    message: str,
    cert_url: str,
    key: SigningKey,
    topic_arn: str = TOPIC_ARN,
    subject: str | None = None,
    version: SignatureVersion = "1",
    message_id: str | None = None,
    timestamp: str | None = None,
    unsubscribe_url: str = "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
) -> dict[str, Any]:
    """A signed Notification; `Subject` is omitted entirely when None, as SNS does."""
    env: dict[str, Any] = {
        "Type": "Notification",
        "MessageId": message_id or str(uuid.uuid4()),
        "TopicArn": topic_arn,
        "Message": message,
        "Timestamp": timestamp or _timestamp(),
        "SigningCertURL": cert_url,
        "UnsubscribeURL": unsubscribe_url,
    }
    if subject is not None:
        env["Subject"] = subject
    return sign(env, key, version)


def control_message(
    *,
    type: Literal["SubscriptionConfirmation", "UnsubscribeConfirmation"],
    subscribe_url: str,
    cert_url: str,
    key: SigningKey,
    topic_arn: str = TOPIC_ARN,
    token: str = "2336412f37fb687f5d51e6e2425dacbba3e1d4b1",
    version: SignatureVersion = "1",
) -> dict[str, Any]:
    """A signed SubscriptionConfirmation or UnsubscribeConfirmation."""
    env: dict[str, Any] = {
        "Type": type,
        "MessageId": str(uuid.uuid4()),
        "Token": token,
        "TopicArn": topic_arn,
        "Message": f"You have chosen to subscribe to the topic {topic_arn}.\n"
        "To confirm the subscription, visit the SubscribeURL included in this message.",
        "SubscribeURL": subscribe_url,
        "Timestamp": _timestamp(),
        "SigningCertURL": cert_url,
    }
    return sign(env, key, version)


def to_body(envelope: dict[str, Any]) -> bytes:
    return orjson.dumps(envelope)


def headers_for(envelope: dict[str, Any]) -> dict[str, str]:
    """The headers SNS sends with an envelope (informational only; JSON as text/plain)."""
    headers = {
        "Content-Type": "text/plain; charset=UTF-8",
        "User-Agent": "Amazon Simple Notification Service Agent",
        "x-amz-sns-message-type": str(envelope.get("Type", "")),
        "x-amz-sns-message-id": str(envelope.get("MessageId", "")),
        "x-amz-sns-topic-arn": str(envelope.get("TopicArn", "")),
    }
    if envelope.get("Type") == "Notification":
        headers["x-amz-sns-subscription-arn"] = f"{envelope.get('TopicArn', '')}:sub-0001"
    return headers


def local_config(**overrides: Any) -> CloudWatchSourceConfig:
    """A CloudWatch source config that trusts a FakeSns on 127.0.0.1 over plain http."""
    values: dict[str, Any] = {
        "topic_arns": [TOPIC_ARN],
        "cert_host_pattern": LOCAL_HOST_PATTERN,
        "allow_insecure_urls": True,
    }
    values.update(overrides)
    return CloudWatchSourceConfig(**values)


@dataclass
class FakeSns:
    """Local stand-in for SNS's cert host: serves the PEM and records SubscribeURL GETs.

    `cert_status`/`confirm_status` let a test make either endpoint fail (e.g. 500).
    """

    key: SigningKey = field(default_factory=default_key)
    cert_status: int = 200
    confirm_status: int = 200
    base_url: str = ""
    cert_requests: int = 0
    confirm_requests: list[dict[str, str]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(CERT_PATH, self._cert)
        app.router.add_get(CONFIRM_PATH, self._confirm)
        return app

    def attach(self, base_url: str) -> None:
        """Record where the server listens, e.g. `str(server.make_url("/"))`."""
        self.base_url = base_url.rstrip("/")

    @property
    def cert_url(self) -> str:
        return self.base_url + CERT_PATH

    def subscribe_url(self, topic_arn: str = TOPIC_ARN, token: str = "tok") -> str:
        return (
            f"{self.base_url}{CONFIRM_PATH}?Action=ConfirmSubscription"
            f"&TopicArn={topic_arn}&Token={token}"
        )

    def notification(self, message: str, **kwargs: Any) -> dict[str, Any]:
        kwargs.setdefault("cert_url", self.cert_url)
        return notification(message=message, key=self.key, **kwargs)

    def subscription_confirmation(self, **kwargs: Any) -> dict[str, Any]:
        kwargs.setdefault("cert_url", self.cert_url)
        kwargs.setdefault("token", "tok")
        kwargs.setdefault("subscribe_url", self.subscribe_url(kwargs.get("topic_arn", TOPIC_ARN),
                                                              kwargs["token"]))
        return control_message(type="SubscriptionConfirmation", key=self.key, **kwargs)

    def unsubscribe_confirmation(self, **kwargs: Any) -> dict[str, Any]:
        kwargs.setdefault("cert_url", self.cert_url)
        kwargs.setdefault("token", "tok")
        kwargs.setdefault("subscribe_url", self.subscribe_url(kwargs.get("topic_arn", TOPIC_ARN),
                                                              kwargs["token"]))
        return control_message(type="UnsubscribeConfirmation", key=self.key, **kwargs)

    async def _cert(self, request: web.Request) -> web.Response:
        self.cert_requests += 1
        if self.cert_status != 200:
            return web.Response(status=self.cert_status, text="unavailable")
        return web.Response(body=self.key.cert_pem, content_type="application/x-x509-ca-cert")

    async def _confirm(self, request: web.Request) -> web.Response:
        self.confirm_requests.append(dict(request.query))
        if self.confirm_status != 200:
            return web.Response(status=self.confirm_status, text="error")
        arn = request.query.get("TopicArn", "")
        return web.Response(
            text=(
                '<ConfirmSubscriptionResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">'
                f"<ConfirmSubscriptionResult><SubscriptionArn>{arn}:sub-0001</SubscriptionArn>"
                "</ConfirmSubscriptionResult></ConfirmSubscriptionResponse>"
            ),
            content_type="text/xml",
        )
