"""What one send attempt came to: delivered, or failed with a reason and whether to retry.

Reasons are a small closed set so that the `failed_total{reason}` metric stays bounded and
can be pre-created at zero. `detail` is a short, already-redacted text for the DLQ and logs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

FailureReason = Literal[
    "rate_limited",  # 429, Statuspage 420, Slack ok:false ratelimited
    "server_error",  # 5xx, Slack internal/fatal errors
    "timeout",
    "connection_error",
    "tls_error",  # handshake failed or the certificate is not trusted (see ca_file)
    "client_error",  # other 4xx / 3xx: the vendor refused the request, retrying will not help
    "vendor_error",  # HTTP 200 with a vendor error (Slack ok:false), permanent
    "template_error",
    "held",  # parked behind an earlier dead letter of the same incident
    "unknown_receiver",
]

FAILURE_REASONS: tuple[FailureReason, ...] = (
    "rate_limited", "server_error", "timeout", "connection_error", "tls_error", "client_error",
    "vendor_error", "template_error", "held", "unknown_receiver",
)


class DeliveryResult(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    ok: bool
    status: int | None = None
    reason: FailureReason | None = None
    retryable: bool = False
    # Seconds the vendor asked us to wait (Retry-After), when it said so.
    retry_after: float | None = None
    detail: str = ""

    @classmethod
    def delivered(cls, status: int | None = None) -> DeliveryResult:
        # Frozen, so one instance per status serves every delivery (no validation per send).
        result = _DELIVERED.get(status)
        if result is None:
            result = _DELIVERED[status] = cls(ok=True, status=status)
        return result

    @classmethod
    def failed(
        cls,
        reason: FailureReason,
        *,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
        detail: str = "",
    ) -> DeliveryResult:
        return cls(ok=False, reason=reason, retryable=retryable, status=status,
                   retry_after=retry_after, detail=detail)


_DELIVERED: dict[int | None, DeliveryResult] = {}
