"""Console sessions: a sealed cookie (Fernet: AES-CBC + HMAC, with issue time) holding who is
logged in, how, and the CSRF token of the session.

Nothing is stored server-side, so any replica with the same `api.session_secret` accepts it. The
role is not trusted from the cookie: it is looked up again on every request (router.ui.guard),
so removing a token from the config ends its sessions at the next reload.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import timedelta
from typing import Literal

from cryptography.fernet import Fernet, InvalidToken
from pydantic import ValidationError

from router.config import ApiConfig
from router.model import Frozen

COOKIE = "ir_console"

# token: logged in with an API token (`token_id` names it); header: a trusted proxy header;
# open: no credentials configured at all.
Via = Literal["token", "header", "open"]


class Session(Frozen):
    user: str
    via: Via
    token_id: str | None = None
    csrf: str

    @classmethod
    def new(cls, user: str, via: Via, token_id: str | None = None) -> Session:
        return cls(user=user, via=via, token_id=token_id, csrf=secrets.token_urlsafe(24))


def _key(api: ApiConfig) -> bytes:
    if api.session_secret is None:
        return Fernet.generate_key()  # per process: sessions end at restart
    digest = hashlib.sha256(b"incident-router console\x00"
                            + api.session_secret.get_secret_value().encode()).digest()
    return base64.urlsafe_b64encode(digest)


class SessionCodec:
    def __init__(self, api: ApiConfig) -> None:
        self._fernet = Fernet(_key(api))
        self.lifetime = timedelta(hours=api.session_hours)

    def seal(self, session: Session) -> str:
        return self._fernet.encrypt(session.model_dump_json().encode()).decode()

    def open(self, cookie: str | None) -> Session | None:
        """The session in `cookie`; None when absent, forged, or older than the lifetime."""
        if not cookie:
            return None
        try:
            raw = self._fernet.decrypt(cookie.encode(), ttl=int(self.lifetime.total_seconds()))
            return Session.model_validate_json(raw)
        except (InvalidToken, ValidationError):
            return None
