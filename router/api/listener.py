"""The HTTP listener's settings from `server`: how long a connection may take to send a request,
and optional TLS (with client certificates for mTLS).

aiohttp has no separate header-read timeout, but its keep-alive timer is armed when a
connection opens and re-armed after each response, and closes the connection if no complete
request line and headers have arrived by then: `read_timeout_seconds` is that timer. The body's
deadline is set per request (router.api.requests).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from router.config import Config


@dataclass(frozen=True)
class Listener:
    """What `web.run_app` (or `AppRunner` + `TCPSite`) takes from the config."""

    keepalive_timeout: float
    ssl_context: ssl.SSLContext | None


def listener(config: Config) -> Listener:
    """Raises OSError or ssl.SSLError when a TLS file cannot be read or does not fit."""
    return Listener(config.server.read_timeout_seconds, tls_context(config))


def tls_context(config: Config) -> ssl.SSLContext | None:
    server = config.server
    if server.tls_cert_file is None or server.tls_key_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)  # TLS 1.2+
    context.load_cert_chain(config.resolve(server.tls_cert_file),
                            config.resolve(server.tls_key_file))
    if server.tls_client_ca_file is not None:
        context.load_verify_locations(cafile=config.resolve(server.tls_client_ca_file))
        context.verify_mode = ssl.CERT_REQUIRED
    return context
