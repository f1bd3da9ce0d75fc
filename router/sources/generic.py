"""Generic JSON source for scripts and tools that are neither Alertmanager nor CloudWatch.

Shape (documented in docs/sources.md):

    {"alerts": [{"name": "DiskFull", "status": "firing", "labels": {...},
                 "annotations": {...}, "value": 0.93, "fingerprint": "optional",
                 "starts_at": "RFC3339, optional", "ends_at": "RFC3339, optional",
                 "url": "optional link back"}]}

A single alert object without the `alerts` wrapper is accepted too. Without a fingerprint the
alert's identity is a hash of its name and labels, like Alertmanager's.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from router.model import Alert, Status
from router.sources.base import Rejected, as_utc, decode_json, shape_error

SOURCE = "generic"


class GenericAlert(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=512)
    status: Literal["firing", "resolved"] = "firing"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    value: float | None = None
    fingerprint: str | None = Field(default=None, min_length=1, max_length=256)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    url: str | None = None

    @field_validator("value")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("value must be a finite number")
        return v

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        return as_utc(v) if v is not None else None


class GenericPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    alerts: list[GenericAlert] = Field(min_length=1, max_length=10_000)


def fingerprint_of(name: str, labels: dict[str, str]) -> str:
    canonical = "\x1f".join(f"{k}\x1e{v}" for k, v in sorted({**labels, "alertname": name}.items()))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def parse_generic(body: bytes, received_at: datetime) -> list[Alert]:
    data = decode_json(body)
    if not isinstance(data, dict):
        raise Rejected(422, "invalid_shape", "invalid payload: (body): expected a JSON object")
    try:
        if "alerts" in data:
            payload = GenericPayload.model_validate(data)
        else:
            payload = GenericPayload(alerts=[GenericAlert.model_validate(data)])
    except ValidationError as exc:
        raise shape_error(exc) from None
    out = []
    for a in payload.alerts:
        status = Status(a.status)
        labels = {"alertname": a.name, **a.labels}
        ends_at = a.ends_at
        if status is Status.RESOLVED and ends_at is None:
            ends_at = received_at
        out.append(
            Alert(
                source=SOURCE,
                fingerprint=a.fingerprint or fingerprint_of(a.name, a.labels),
                status=status,
                name=a.name,
                labels=labels,
                annotations=a.annotations,
                value=a.value,
                starts_at=a.starts_at or received_at,
                ends_at=ends_at,
                received_at=received_at,
                generator_url=a.url,
                runbook_url=a.annotations.get("runbook_url"),
            )
        )
    return out
