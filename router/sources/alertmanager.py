"""Prometheus Alertmanager webhook, payload version 4 -> `list[Alert]`.

Alertmanager sends the whole current alert set of one aggregation group per request, retries
only on 5xx, and zeroes `endsAt` of firing alerts to Go's zero time (`0001-01-01T00:00:00Z`).
Unknown fields are tolerated: it keeps adding some (`notification_reason`, `routeLabels`).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from router.model import Alert, Status
from router.sources.base import Rejected, as_utc, shape_error

SOURCE = "alertmanager"


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class WebhookAlert(_Lenient):
    status: Status
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = Field(min_length=1, max_length=256)

    @field_validator("endsAt", mode="before")
    @classmethod
    def _zero_time_is_none(cls, v: object) -> object:
        # Go's zero time means "not ended"; year-1 dates are never real.
        if v is None or (isinstance(v, str) and v.startswith("0001-01-01")):
            return None
        return v

    @field_validator("startsAt", "endsAt")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        return as_utc(v) if v is not None else None


class WebhookPayload(_Lenient):
    version: str
    groupKey: str = ""
    truncatedAlerts: int = 0
    status: Status
    receiver: str = ""
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[WebhookAlert]

    @field_validator("version")
    @classmethod
    def _v4(cls, v: str) -> str:
        if v != "4":
            raise ValueError(f"unsupported webhook payload version {v!r}, expected '4'")
        return v


def observed_value(labels: dict[str, str], annotations: dict[str, str]) -> float | None:
    """The observed value from a `value` annotation or label ("0.07", "7%", "23.4")."""
    for raw in (annotations.get("value"), labels.get("value")):
        if raw is None:
            continue
        text = raw.strip()
        percent = text.endswith("%")
        try:
            number = float(text.rstrip("%").strip())
        except ValueError:
            continue
        if number != number or number in (float("inf"), float("-inf")):
            continue
        return number / 100 if percent else number
    return None


def to_alerts(payload: WebhookPayload, received_at: datetime) -> list[Alert]:
    alerts = []
    for a in payload.alerts:
        labels = a.labels
        alerts.append(
            Alert.trusted(
                source=SOURCE,
                fingerprint=a.fingerprint,
                status=a.status,
                name=labels.get("alertname", ""),
                labels=labels,
                annotations=a.annotations,
                value=observed_value(labels, a.annotations),
                starts_at=a.startsAt,
                ends_at=a.endsAt,
                received_at=received_at,
                generator_url=a.generatorURL or None,
                runbook_url=a.annotations.get("runbook_url"),
            )
        )
    return alerts


def parse_alertmanager(body: bytes, received_at: datetime) -> list[Alert]:
    # pydantic's own JSON parser straight into the models: no dict in between.
    try:
        payload = WebhookPayload.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        if first["type"] == "json_invalid":
            where = first["msg"].removeprefix("Invalid JSON: ")
            raise Rejected(400, "malformed_json", f"malformed JSON: {where}") from None
        if first["type"] == "model_type" and not first["loc"]:
            raise Rejected(422, "invalid_shape",
                           "invalid payload: (body): expected a JSON object") from None
        raise shape_error(exc) from None
    return to_alerts(payload, received_at)
