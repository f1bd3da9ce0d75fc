"""Checking credentials: those a source was configured with (bearer tokens or basic auth), and
the roles of API tokens (`api.tokens` read-write, `api.read_tokens` read-only).

Comparison is constant-time; failures say what kind of credential was expected, never what was
sent or what was expected.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from enum import StrEnum

from router.config import ApiConfig, Auth, BasicAuth, BearerAuth
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


# --- API token roles ---------------------------------------------------------------------------


class Role(StrEnum):
    READ = "read"
    WRITE = "write"

    @property
    def can_write(self) -> bool:
        return self is Role.WRITE


def token_role(api: ApiConfig, token: str) -> Role | None:
    """The role `token` grants: WRITE for `api.tokens`, READ for `api.read_tokens`, else None.
    Every configured token is compared, so the time taken does not tell which list matched."""
    write = [_eq(token, t.get_secret_value()) for t in api.tokens]
    read = [_eq(token, t.get_secret_value()) for t in api.read_tokens]
    if any(write):
        return Role.WRITE
    return Role.READ if any(read) else None


def token_id(token: str) -> str:
    """A short, non-reversible name of a token, for sessions to say which token they came from
    (so removing the token from the config ends them) without holding the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()[:24]


def role_of_token_id(api: ApiConfig, ident: str) -> Role | None:
    """The role of the configured token whose `token_id` is `ident` (None: no longer configured)."""
    for tokens, role in ((api.tokens, Role.WRITE), (api.read_tokens, Role.READ)):
        if any(_eq(ident, token_id(t.get_secret_value())) for t in tokens):
            return role
    return None


def open_access(api: ApiConfig) -> bool:
    """No token and no trusted header configured: the API and console need no login."""
    return not api.tokens and not api.read_tokens and api.trusted_header is None
