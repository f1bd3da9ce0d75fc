"""AWS SNS HTTP(S) delivery: envelope shape, signature verification, subscription confirmation.

Flow for one request (PROTOCOLS.md section 2):

1. `parse_envelope` turns the body into an `SnsEnvelope` (400 bad JSON, 422 wrong shape, 403 raw
   delivery, 403 unsupported `SignatureVersion`). Headers are informational and unsigned: only
   `x-amz-sns-rawdelivery` is looked at, to explain a 403; the body `Type` is what counts.
2. `SnsVerifier.verify` checks `SigningCertURL` (scheme, no userinfo, host fully matching the
   configured pattern, `.pem` path), fetches and caches the certificate by scheme, host and
   path (the query string is neither fetched nor part of the cache key), verifies the RSA
   PKCS#1 v1.5 signature (SHA1 for "1", SHA256 for "2") over the string-to-sign, then checks
   `TopicArn` against the allow-list. Every failure is a 403: SNS drops a message on 4xx, which
   is what a forgery deserves.
3. `SnsVerifier.receive` does 1 and 2 and handles the control messages: a
   `SubscriptionConfirmation` is confirmed by GETting `SubscribeURL` after the same host check;
   an `UnsubscribeConfirmation` is logged and nothing is fetched.

A certificate that cannot be fetched, or a confirmation GET that fails, is not the sender's
fault: they raise `SnsUnavailable` (subclasses `CertUnavailable`, `ConfirmationFailed`) so the
HTTP layer answers 503 and SNS retries (it retries 5xx, never 4xx).

Logs never contain `SubscribeURL`/`UnsubscribeURL`/`Token` (the token confirms a subscription).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
from collections import OrderedDict
from collections.abc import Mapping
from typing import Literal

import aiohttp
import yarl
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from router.config import CloudWatchSourceConfig
from router.sources.base import Rejected, decode_json, shape_error

log = logging.getLogger(__name__)

MessageType = Literal["Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation"]

# String-to-sign keys per message type, in AWS's (byte-sorted) order. Optional keys that are
# absent (or null) are skipped, e.g. `Subject` on a notification published without one.
SIGNED_KEYS: Mapping[str, tuple[str, ...]] = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
    "UnsubscribeConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
}

_HASHES: Mapping[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
_SIGNATURE_FIELDS = ("Signature", "SignatureVersion", "SigningCertURL", "SigningCertUrl")


class SnsUnavailable(Exception):
    """A transient problem on our side or AWS's: answer 503 so SNS retries the delivery."""


class CertUnavailable(SnsUnavailable):
    """The signing certificate could not be fetched or read."""


class ConfirmationFailed(SnsUnavailable):
    """GET SubscribeURL did not succeed; SNS resends the confirmation on 5xx."""


class SnsEnvelope(BaseModel):
    """The JSON body SNS posts. Extra keys (MessageAttributes, ...) are kept, never signed."""

    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)

    type: MessageType = Field(alias="Type")
    message_id: str = Field(alias="MessageId")
    topic_arn: str = Field(alias="TopicArn")
    message: str = Field(alias="Message")
    timestamp: str = Field(alias="Timestamp")
    signature_version: str = Field(alias="SignatureVersion")
    signature: str = Field(alias="Signature")
    # HTTP delivery spells it ...URL; Lambda records spell ...Url. Accept both, as AWS does.
    signing_cert_url: str = Field(validation_alias=AliasChoices("SigningCertURL", "SigningCertUrl"))
    subject: str | None = Field(default=None, alias="Subject")
    token: str | None = Field(default=None, alias="Token")
    subscribe_url: str | None = Field(
        default=None, validation_alias=AliasChoices("SubscribeURL", "SubscribeUrl")
    )
    unsubscribe_url: str | None = Field(
        default=None, validation_alias=AliasChoices("UnsubscribeURL", "UnsubscribeUrl")
    )

    def string_to_sign(self) -> bytes:
        """`"<Key>\\n<Value>\\n"` for each signed key present, with JSON-decoded values."""
        values = {
            "Message": self.message,
            "MessageId": self.message_id,
            "Subject": self.subject,
            "SubscribeURL": self.subscribe_url,
            "Timestamp": self.timestamp,
            "Token": self.token,
            "TopicArn": self.topic_arn,
            "Type": self.type,
        }
        return "".join(
            f"{k}\n{values[k]}\n" for k in SIGNED_KEYS[self.type] if values[k] is not None
        ).encode("utf-8")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # aiohttp's CIMultiDict is case-insensitive; a plain dict (tests, benchmarks) may not be.
    value = headers.get(name)
    if value is None:
        for k, v in headers.items():
            if k.lower() == name:
                return v
    return value


def _raw_delivery() -> Rejected:
    return Rejected(
        403,
        "raw_delivery",
        "SNS raw message delivery is not supported: it carries no signature. "
        "Disable RawMessageDelivery on the subscription.",
    )


def parse_envelope(body: bytes, headers: Mapping[str, str]) -> SnsEnvelope:
    """Decode and shape-check an SNS body. Raises `Rejected` (400/403/422); no I/O."""
    if (_header(headers, "x-amz-sns-rawdelivery") or "").strip().lower() == "true":
        raise _raw_delivery()
    data = decode_json(body)
    if not isinstance(data, dict):
        raise Rejected(422, "invalid_shape", "invalid payload: (body): expected an SNS JSON object")
    if not any(k in data for k in _SIGNATURE_FIELDS):
        raise _raw_delivery()
    try:
        env = SnsEnvelope.model_validate(data)
    except ValidationError as exc:
        raise shape_error(exc) from None
    if env.type != "Notification":
        missing = [
            name
            for name, value in (("SubscribeURL", env.subscribe_url), ("Token", env.token))
            if value is None
        ]
        if missing:
            raise Rejected(
                422,
                "invalid_shape",
                "invalid payload: " + "; ".join(f"{m}: Field required" for m in missing),
            )
    if env.signature_version not in _HASHES:
        raise Rejected(
            403,
            "bad_signature_version",
            "unsupported SignatureVersion (only \"1\" and \"2\" are accepted)",
        )
    return env


def check_url(url: str, cfg: CloudWatchSourceConfig, *, what: str, pem: bool) -> yarl.URL:
    """Validate an SNS-supplied URL before fetching it (SSRF guard); return the parsed URL.

    https only (http too when `allow_insecure_urls`), no userinfo, no explicit port (allowed
    only with `allow_insecure_urls`, for local test servers), hostname *fully* matching
    `cert_host_pattern`, and for certificates a path ending in `.pem`. The parsed `yarl.URL` is
    what gets fetched, so the check and the request cannot disagree about the host.
    """
    bad = Rejected(403, f"bad_{what}_url", f"{what} URL is not an allowed SNS URL")
    try:
        u = yarl.URL(url)
    except (ValueError, TypeError):
        raise bad from None
    schemes = ("https", "http") if cfg.allow_insecure_urls else ("https",)
    if not u.is_absolute() or u.scheme not in schemes:
        raise bad
    if u.user is not None or u.password is not None:
        raise bad
    if u.explicit_port is not None and not cfg.allow_insecure_urls:
        raise bad
    host = u.host or ""
    try:
        if re.fullmatch(cfg.cert_host_pattern, host) is None:
            raise bad
    except re.error:
        raise bad from None
    if pem and not u.path.endswith(".pem"):
        raise bad
    return u


class SnsVerifier:
    """Verifies SNS envelopes and confirms subscriptions, with a bounded certificate cache.

    One instance per process, sharing the app's `aiohttp.ClientSession`. Configuration is passed
    per call so a config reload needs no new verifier (the certificate cache survives).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        timeout_seconds: float = 5.0,
        max_cert_bytes: int = 64 * 1024,
        cache_size: int = 32,
    ) -> None:
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._max_bytes = max_cert_bytes
        self._cache_size = cache_size
        self._cache: OrderedDict[str, rsa.RSAPublicKey] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[rsa.RSAPublicKey]] = {}

    async def receive(
        self, body: bytes, headers: Mapping[str, str], cfg: CloudWatchSourceConfig
    ) -> SnsEnvelope | None:
        """The whole SNS intake: the verified Notification, or None for a control message."""
        env = parse_envelope(body, headers)
        await self.verify(env, cfg)
        if env.type == "SubscriptionConfirmation":
            await self.confirm(env, cfg)
            return None
        if env.type == "UnsubscribeConfirmation":
            log.warning(
                "SNS subscription to %s was removed (UnsubscribeConfirmation %s); alarms from "
                "this topic will stop arriving. Not re-subscribing automatically.",
                env.topic_arn,
                env.message_id,
            )
            return None
        return env

    async def verify(self, env: SnsEnvelope, cfg: CloudWatchSourceConfig) -> None:
        """Signature first, then the topic allow-list. Raises Rejected(403) or CertUnavailable."""
        algorithm = _HASHES.get(env.signature_version)
        if algorithm is None:
            raise Rejected(403, "bad_signature_version", "unsupported SignatureVersion")
        url = check_url(env.signing_cert_url, cfg, what="cert", pem=True)
        try:
            signature = base64.b64decode(env.signature, validate=True)
        except (binascii.Error, ValueError):
            raise Rejected(403, "bad_signature", "SNS signature is not valid base64") from None
        # Only scheme, host, port and path name a certificate: the query and fragment are
        # dropped before the cache lookup and the fetch, so a sender varying them can neither
        # force a fetch per message nor get something else cached under the real path.
        key = await self._public_key(url.with_query(None).with_fragment(None))
        try:
            key.verify(signature, env.string_to_sign(), padding.PKCS1v15(), algorithm())
        except InvalidSignature:
            raise Rejected(403, "bad_signature", "SNS signature does not verify") from None
        # Checked after the signature so `topic_not_allowed` means "a real SNS topic that is not
        # configured" (an operator fix), never a forgery.
        if env.topic_arn not in cfg.topic_arns:
            raise Rejected(403, "topic_not_allowed", "SNS topic is not in the allow-list")

    async def confirm(self, env: SnsEnvelope, cfg: CloudWatchSourceConfig) -> None:
        """GET SubscribeURL of a verified SubscriptionConfirmation, after the same host check."""
        if not cfg.confirm_subscriptions:
            log.warning(
                "SNS SubscriptionConfirmation %s for %s not confirmed: confirm_subscriptions is "
                "off; confirm it with the ConfirmSubscription API.",
                env.message_id,
                env.topic_arn,
            )
            return
        url = check_url(env.subscribe_url or "", cfg, what="subscribe", pem=False)
        try:
            async with self._session.get(
                url, timeout=self._timeout, allow_redirects=False
            ) as resp:
                await self._read_capped(resp)
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, _TooLarge):
            raise ConfirmationFailed("SNS subscription confirmation request failed") from None
        if status != 200:
            raise ConfirmationFailed(f"SNS subscription confirmation answered HTTP {status}")
        log.info("confirmed SNS subscription to %s (%s)", env.topic_arn, env.message_id)

    # --- certificates -------------------------------------------------------------------------

    async def _public_key(self, url: yarl.URL) -> rsa.RSAPublicKey:
        cache_key = str(url)
        key = self._cache.get(cache_key)
        if key is not None:
            self._cache.move_to_end(cache_key)
            return key
        # One fetch per URL however many requests arrive at once (a burst after a cert rotation).
        fut = self._inflight.get(cache_key)
        if fut is None:
            fut = asyncio.ensure_future(self._fetch(url))
            self._inflight[cache_key] = fut
            fut.add_done_callback(lambda f: self._fetched(cache_key, f))
        return await asyncio.shield(fut)

    def _fetched(self, cache_key: str, fut: asyncio.Future[rsa.RSAPublicKey]) -> None:
        self._inflight.pop(cache_key, None)
        if fut.cancelled() or fut.exception() is not None:
            return  # failures are not cached: the next delivery tries again
        self._cache[cache_key] = fut.result()
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def _fetch(self, url: yarl.URL) -> rsa.RSAPublicKey:
        try:
            async with self._session.get(
                url, timeout=self._timeout, allow_redirects=False
            ) as resp:
                if resp.status != 200:
                    raise CertUnavailable(f"signing certificate answered HTTP {resp.status}")
                pem = await self._read_capped(resp)
        except (aiohttp.ClientError, TimeoutError, _TooLarge):
            raise CertUnavailable("signing certificate could not be fetched") from None
        try:
            cert = x509.load_pem_x509_certificate(pem)
        except ValueError:
            raise CertUnavailable("signing certificate is not a PEM X.509 certificate") from None
        key = cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise Rejected(403, "bad_signature", "signing certificate does not hold an RSA key")
        return key

    async def _read_capped(self, resp: aiohttp.ClientResponse) -> bytes:
        if resp.content_length is not None and resp.content_length > self._max_bytes:
            raise _TooLarge
        data = bytearray()
        async for chunk in resp.content.iter_chunked(16 * 1024):
            data += chunk
            if len(data) > self._max_bytes:
                raise _TooLarge
        return bytes(data)


class _TooLarge(Exception):
    pass
