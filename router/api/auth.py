"""Checking the credentials a source was configured with (bearer tokens or basic auth).

Comparison is constant-time; failures say what kind of credential was expected, never what was
sent or what was expected.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping

from router.config import Auth, BasicAuth, BearerAuth
from router.sources.base import Rejected


def _eq(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def check_auth(auth: Auth, headers: Mapping[str, str]) -> None:
    """Raise Rejected(401) unless the request carries the configured credentials."""
    if isinstance(auth, BearerAuth):
        scheme, _, token = headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Rejected(401, "unauthorized", "missing bearer token")
        if not any(_eq(token.strip(), t.get_secret_value()) for t in auth.tokens):
            raise Rejected(401, "unauthorized", "invalid bearer token")
    elif isinstance(auth, BasicAuth):
        scheme, _, encoded = headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic" or not encoded:
            raise Rejected(401, "unauthorized", "missing basic auth credentials")
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise Rejected(401, "unauthorized", "malformed basic auth header") from None
        ok_user = _eq(user, auth.username)
        ok_pass = _eq(password, auth.password.get_secret_value())
        if not (ok_user and ok_pass):
            raise Rejected(401, "unauthorized", "invalid basic auth credentials")


def www_authenticate(auth: Auth) -> str | None:
    if isinstance(auth, BearerAuth):
        return 'Bearer realm="incident-router"'
    if isinstance(auth, BasicAuth):
        return 'Basic realm="incident-router"'
    return None
