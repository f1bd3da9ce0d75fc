"""CloudWatch alarms, delivered through SNS (or as EventBridge events), as `Alert`s.

Entry points for the HTTP layer:

- `handle_sns(body, headers, cfg, verifier, received_at)`: an SNS HTTP(S) delivery. Verified by
  `router.sources.sns.SnsVerifier`; the verified `Message` is parsed here. Confirmations
  return `[]`.
- `parse_eventbridge(body, cfg, received_at)`: an EventBridge "CloudWatch Alarm State Change"
  event POSTed directly (API destination). The same event shape is also accepted as an SNS
  `Message` (EventBridge -> SNS), told apart by its `detail-type` key.

The alarm message shapes (PROTOCOLS.md section 3): single-metric (`Trigger` with lowercase
`Dimensions` name/value), metric math (`Trigger.Metrics[]`) and composite (`AlarmRule`,
`TriggeringChildren`). ALARM is firing, OK is resolved, INSUFFICIENT_DATA follows
`cfg.insufficient_data` (`ignore` yields no alert, still a 2xx).

Facts that shape the code: `Region` is a display name, so the region code comes from `AlarmArn`;
`Statistic` is UPPERCASE (normalised to lowercase without underscores, so SNS `SAMPLE_COUNT` and
EventBridge `SampleCount` both read `samplecount`); the observed value only exists as text in
`NewStateReason` (EventBridge adds machine-readable `reasonData`).

Times: a firing alert starts at its ALARM transition (`StateChangeTime`, `state.timestamp`); a
resolved one ENDS at its OK transition. When it began is the firing alert's start, which the
engine keeps; of the payloads only EventBridge says it again (`previousState`, when that was
ALARM), so an SNS OK message starts at its own transition, the best it knows.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from router.config import CloudWatchSourceConfig
from router.model import Alert, Status
from router.sources.base import Rejected, decode_json, shape_error
from router.sources.sns import SnsVerifier

SOURCE = "cloudwatch"
STATE_CHANGE = "CloudWatch Alarm State Change"

StateValue = Literal["OK", "ALARM", "INSUFFICIENT_DATA"]


# --- payload shapes (tolerant: vendors add fields) --------------------------------------------


class _In(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Dimension(_In):
    name: str
    value: str


class _Metric(_In):
    Namespace: str | None = None
    MetricName: str | None = None
    Dimensions: list[_Dimension] = Field(default_factory=list)


class _MetricStat(_In):
    Metric: _Metric | None = None
    Period: int | None = None
    Stat: str | None = None
    Unit: str | None = None


class _MetricQuery(_In):
    Id: str | None = None
    Expression: str | None = None
    Label: str | None = None
    ReturnData: bool | None = None
    MetricStat: _MetricStat | None = None


class _Trigger(_In):
    MetricName: str | None = None
    Namespace: str | None = None
    StatisticType: str | None = None
    Statistic: str | None = None
    ExtendedStatistic: str | None = None
    Unit: str | None = None
    Dimensions: list[_Dimension] | None = None
    Period: int | None = None
    EvaluationPeriods: int | None = None
    ComparisonOperator: str | None = None
    Threshold: float | None = None
    TreatMissingData: str | None = None
    Metrics: list[_MetricQuery] | None = None


class _ChildState(_In):
    Value: str | None = None
    Timestamp: str | None = None


class _Child(_In):
    Arn: str | None = None
    State: _ChildState | None = None


class _AlarmMessage(_In):
    AlarmName: str = Field(min_length=1)
    AlarmDescription: str | None = None
    AWSAccountId: str | None = None
    NewStateValue: StateValue
    NewStateReason: str = ""
    StateChangeTime: str
    Region: str | None = None
    AlarmArn: str | None = None
    OldStateValue: str | None = None
    Trigger: _Trigger | None = None
    AlarmRule: str | None = None
    TriggeringChildren: list[_Child] | None = None


class _EbMetricRef(_In):
    namespace: str | None = None
    name: str | None = None
    dimensions: dict[str, str] = Field(default_factory=dict)


class _EbMetricStat(_In):
    metric: _EbMetricRef | None = None
    period: int | None = None
    stat: str | None = None
    unit: str | None = None


class _EbMetric(_In):
    id: str | None = None
    expression: str | None = None
    label: str | None = None
    returnData: bool | None = None
    metricStat: _EbMetricStat | None = None


class _EbConfiguration(_In):
    description: str | None = None
    metrics: list[_EbMetric] = Field(default_factory=list)
    alarmRule: str | None = None


class _EbState(_In):
    value: StateValue
    reason: str = ""
    reasonData: str | None = None
    timestamp: str


class _EbPreviousState(_In):
    """Only read for when the ALARM began; a shape we cannot use is ignored, not refused."""

    value: str | None = None
    timestamp: str | None = None


class _EbDetail(_In):
    alarmName: str = Field(min_length=1)
    state: _EbState
    previousState: _EbPreviousState | None = None
    configuration: _EbConfiguration | None = None


class _EbEvent(_In):
    detail_type: str = Field(alias="detail-type")
    source: str | None = None
    account: str | None = None
    region: str | None = None
    resources: list[str] = Field(default_factory=list)
    detail: _EbDetail


# --- observed value from the reason text ------------------------------------------------------

_CROSSED = re.compile(
    r"Thresholds? Crossed: (?:\d+ out of the last \d+ datapoints?|\d+ datapoints?) "
    r"(?:\[(?P<points>[^\]]*)\]|\((?P<legacy>[-+]?[0-9.]+(?:[eE][-+]?\d+)?)\))"
)
_POINT = re.compile(
    r"(?P<v>[-+]?[0-9.]+(?:[eE][-+]?\d+)?) "
    r"\((?P<d>\d{2})/(?P<m>\d{2})/(?P<y>\d{2}) (?P<H>\d{2}):(?P<M>\d{2}):(?P<S>\d{2})\)"
)


def _finite(text: object) -> float | None:
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None
    return value if math.isfinite(value) else None


def observed_value(reason: str) -> float | None:
    """The newest datapoint in a `NewStateReason`, or None when the text carries none.

    Datapoints read `VALUE (dd/mm/yy HH:MM:SS)` (UTC, newest first as observed); the newest
    timestamp wins, so the order does not matter. Legacy reasons carry `(VALUE)` only.
    """
    m = _CROSSED.search(reason)
    if m is None:
        return None
    if m.group("legacy") is not None:
        return _finite(m.group("legacy"))
    best: tuple[datetime, float] | None = None
    first: float | None = None
    for p in _POINT.finditer(m.group("points") or ""):
        value = _finite(p.group("v"))
        if value is None:
            continue
        if first is None:
            first = value
        try:
            at = datetime(
                2000 + int(p.group("y")), int(p.group("m")), int(p.group("d")),
                int(p.group("H")), int(p.group("M")), int(p.group("S")), tzinfo=UTC,
            )
        except ValueError:
            continue
        if best is None or at > best[0]:
            best = (at, value)
    return best[1] if best is not None else first


def _value_from_reason_data(reason_data: str | None, reason: str) -> float | None:
    """EventBridge: prefer timestamped `evaluatedDatapoints`, then `recentDatapoints`."""
    data: Any = None
    if reason_data:
        try:
            data = orjson.loads(reason_data)
        except orjson.JSONDecodeError:
            data = None
    if not isinstance(data, dict):
        return observed_value(reason)
    evaluated = data.get("evaluatedDatapoints")
    if isinstance(evaluated, list):
        stamped = [
            (str(p["timestamp"]), v)
            for p in evaluated
            if isinstance(p, dict)
            and "timestamp" in p
            and (v := _finite(p.get("value"))) is not None
        ]
        if stamped:
            return max(stamped, key=lambda t: t[0])[1]
    recent = data.get("recentDatapoints")
    if isinstance(recent, list) and recent:
        if len(recent) == 1:
            return _finite(recent[0])
        # Several untimestamped values: the reason text is ordered (newest first); fall back to
        # the last value (recentDatapoints appears chronological) only when the text has none.
        from_text = observed_value(reason)
        return from_text if from_text is not None else _finite(recent[-1])
    return observed_value(reason)


# --- the unit of the observed value ----------------------------------------------------------

# `100 * x`, `x * 100`, `100*(m1/m2)`: the expression scales to a percentage.
_TIMES_100 = re.compile(r"(?:^|[^\w.])100(?:\.0+)?\s*\*|\*\s*100(?:\.0+)?(?:$|[^\w.])")


def stated_unit(unit: str | None, expression: str) -> str | None:
    """`percent` or `ratio` when the alarm says which its value is, else None.

    The metric's CloudWatch unit `Percent`; a metric-math expression multiplied by 100 is a
    percentage, one that divides without that is a ratio (`m1/m2`). Rules read it as the
    alert's `unit` annotation (docs/rules.md, "Ratios and percentages").
    """
    if unit is not None and unit.lower() == "percent":
        return "percent"
    if expression:
        if _TIMES_100.search(expression):
            return "percent"
        if "/" in expression:
            return "ratio"
    return None


# --- shared pieces ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Arn:
    partition: str
    region: str
    account: str


_REGION = re.compile(r"[a-z0-9-]{2,32}")


def _parse_arn(arn: str | None) -> _Arn | None:
    """`arn:<partition>:cloudwatch:<region>:<account>:alarm:<name>` (name may contain ':')."""
    if not arn:
        return None
    parts = arn.split(":", 6)
    if len(parts) != 7 or parts[0] != "arn" or not _REGION.fullmatch(parts[3]):
        return None
    return _Arn(parts[1], parts[3], parts[4])


def _parse_time(text: str, field: str) -> datetime:
    """CloudWatch's `2026-11-27T10:00:00.123+0000` (and ISO variants); naive means UTC."""
    try:
        at = datetime.fromisoformat(text)
        return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    except (ValueError, OverflowError):
        raise Rejected(
            422, "invalid_shape", f"invalid payload: {field}: not an ISO-8601 timestamp"
        ) from None


def normalise_statistic(stat: str) -> str:
    """`AVERAGE` -> `average`, `SAMPLE_COUNT`/`SampleCount` -> `samplecount`, `p99` -> `p99`."""
    return stat.replace("_", "").lower()


def console_url(partition: str, region: str, alarm_name: str) -> str:
    """The CloudWatch console page of one alarm, for the alarm's partition and region."""
    if partition == "aws-cn":
        host = f"{region}.console.amazonaws.cn"
    elif partition == "aws-us-gov":
        host = "console.amazonaws-us-gov.com"
    else:
        host = f"{region}.console.aws.amazon.com"
    return (
        f"https://{host}/cloudwatch/home?region={region}"
        f"#alarmsV2:alarm/{quote(alarm_name, safe='')}"
    )


def fingerprint(alarm_arn: str | None, account: str, region: str, name: str) -> str:
    """Stable per alarm across states and delivery paths (SNS and EventBridge agree)."""
    basis = alarm_arn or "\x1f".join((account, region, name))
    return hashlib.sha256(basis.encode("utf-8")).hexdigest()[:16]


def _status(state: StateValue, cfg: CloudWatchSourceConfig) -> Status | None:
    if state == "ALARM":
        return Status.FIRING
    if state == "OK":
        return Status.RESOLVED
    if cfg.insufficient_data == "firing":
        return Status.FIRING
    if cfg.insufficient_data == "resolved":
        return Status.RESOLVED
    return None


def _add_dimensions(labels: dict[str, str], dims: Mapping[str, str]) -> None:
    # Dimension names are used as given; one that collides with a core label is kept under
    # a `dimension_` prefix instead of overwriting it.
    for k, v in dims.items():
        labels[f"dimension_{k}" if k in labels else k] = v


@dataclass(frozen=True)
class _Parsed:
    name: str
    state: StateValue
    at: datetime
    arn: str | None
    account: str
    region: str
    partition: str
    reason: str
    value: float | None
    labels: dict[str, str]
    annotations: dict[str, str]
    # When the ALARM that a resolving message ends began, if the payload says so.
    alarm_since: datetime | None = None


def _to_alerts(p: _Parsed, cfg: CloudWatchSourceConfig, received_at: datetime) -> list[Alert]:
    status = _status(p.state, cfg)
    if status is None:
        return []
    labels = {"alertname": p.name}
    if p.region:
        labels["region"] = p.region
    if p.account:
        labels["account"] = p.account
    _add_dimensions(labels, p.labels)
    annotations = {k: v for k, v in p.annotations.items() if v}
    annotations["reason"] = p.reason
    annotations["state"] = p.state
    if p.arn:
        annotations["alarm_arn"] = p.arn
    return [
        Alert(
            source=SOURCE,
            fingerprint=fingerprint(p.arn, p.account, p.region, p.name),
            status=status,
            name=p.name,
            labels=labels,
            annotations=annotations,
            value=p.value,
            starts_at=(p.alarm_since or p.at) if status is Status.RESOLVED else p.at,
            ends_at=p.at if status is Status.RESOLVED else None,
            received_at=received_at,
            generator_url=console_url(p.partition, p.region, p.name) if p.region else None,
        )
    ]


# --- SNS alarm message -----------------------------------------------------------------------


def _metric_from_queries(queries: Sequence[_MetricQuery]) -> tuple[_MetricQuery | None, str]:
    """(the query whose metric describes the alarm, the returned expression if any)."""
    returned = [q for q in queries if q.ReturnData]
    expression = next((q.Expression for q in returned if q.Expression), "")
    with_stat = [q for q in queries if q.MetricStat and q.MetricStat.Metric]
    chosen = next((q for q in with_stat if q.ReturnData), with_stat[0] if with_stat else None)
    return chosen, expression


def _alarm_labels(msg: _AlarmMessage) -> tuple[dict[str, str], dict[str, str]]:
    labels: dict[str, str] = {}
    extra: dict[str, str] = {}
    dims: dict[str, str] = {}
    t = msg.Trigger
    if msg.AlarmRule is not None:
        labels["alarm_type"] = "composite"
        extra["alarm_rule"] = msg.AlarmRule
        children = [c.Arn for c in msg.TriggeringChildren or [] if c.Arn]
        if children:
            extra["triggering_children"] = ", ".join(children)
    elif t is not None and t.Metrics is not None:
        labels["alarm_type"] = "metric_math"
        chosen, expression = _metric_from_queries(t.Metrics)
        if expression:
            extra["expression"] = expression
        # The metric's own unit only describes the value when no expression transforms it.
        metric_unit = (chosen.MetricStat.Unit if chosen is not None and chosen.MetricStat
                       and not expression else None)
        unit = stated_unit(metric_unit, expression)
        if unit:
            extra["unit"] = unit
        if chosen is not None and chosen.MetricStat is not None:
            metric = chosen.MetricStat.Metric
            if metric is not None:
                if metric.Namespace:
                    labels["namespace"] = metric.Namespace
                if metric.MetricName:
                    labels["metric_name"] = metric.MetricName
                dims = {d.name: d.value for d in metric.Dimensions}
            if chosen.MetricStat.Stat:
                labels["statistic"] = normalise_statistic(chosen.MetricStat.Stat)
    elif t is not None:
        labels["alarm_type"] = "metric"
        if t.Namespace:
            labels["namespace"] = t.Namespace
        if t.MetricName:
            labels["metric_name"] = t.MetricName
        stat = t.Statistic or t.ExtendedStatistic
        if stat:
            labels["statistic"] = normalise_statistic(stat)
        dims = {d.name: d.value for d in t.Dimensions or []}
        unit = stated_unit(t.Unit, "")
        if unit:
            extra["unit"] = unit
    if t is not None and msg.AlarmRule is None:
        if t.ComparisonOperator:
            labels["comparison_operator"] = t.ComparisonOperator
        if t.Threshold is not None:
            labels["threshold"] = repr(t.Threshold)
    _add_dimensions(labels, dims)
    return labels, extra


def _from_alarm(data: Any, cfg: CloudWatchSourceConfig, received_at: datetime,
                prefix: str) -> list[Alert]:
    try:
        msg = _AlarmMessage.model_validate(data)
    except ValidationError as exc:
        raise shape_error(exc, prefix) from None
    at = _parse_time(msg.StateChangeTime, f"{prefix}StateChangeTime")
    arn = _parse_arn(msg.AlarmArn)
    labels, extra = _alarm_labels(msg)
    return _to_alerts(
        _Parsed(
            name=msg.AlarmName,
            state=msg.NewStateValue,
            at=at,
            arn=msg.AlarmArn or None,
            account=msg.AWSAccountId or (arn.account if arn else ""),
            region=arn.region if arn else "",
            partition=arn.partition if arn else "aws",
            reason=msg.NewStateReason,
            value=observed_value(msg.NewStateReason),
            labels=labels,
            annotations={"description": msg.AlarmDescription or "", **extra},
        ),
        cfg,
        received_at,
    )


# --- EventBridge event ------------------------------------------------------------------------


def _eventbridge_labels(detail: _EbDetail) -> tuple[dict[str, str], dict[str, str]]:
    labels: dict[str, str] = {}
    extra: dict[str, str] = {}
    conf = detail.configuration or _EbConfiguration()
    if conf.alarmRule is not None:
        labels["alarm_type"] = "composite"
        extra["alarm_rule"] = conf.alarmRule
        return labels, extra
    with_stat = [m for m in conf.metrics if m.metricStat and m.metricStat.metric]
    expression = next((m.expression for m in conf.metrics if m.returnData and m.expression), "")
    labels["alarm_type"] = "metric_math" if expression else "metric"
    if expression:
        extra["expression"] = expression
    chosen = next((m for m in with_stat if m.returnData), with_stat[0] if with_stat else None)
    dims: dict[str, str] = {}
    if chosen is not None and chosen.metricStat is not None:
        metric = chosen.metricStat.metric
        if metric is not None:
            if metric.namespace:
                labels["namespace"] = metric.namespace
            if metric.name:
                labels["metric_name"] = metric.name
            dims = dict(metric.dimensions)
        if chosen.metricStat.stat:
            labels["statistic"] = normalise_statistic(chosen.metricStat.stat)
    metric_unit = (chosen.metricStat.unit if chosen is not None and chosen.metricStat
                   and not expression else None)
    unit = stated_unit(metric_unit, expression)
    if unit:
        extra["unit"] = unit
    _add_dimensions(labels, dims)
    return labels, extra


def _reason_data_threshold(reason_data: str | None) -> float | None:
    if not reason_data:
        return None
    try:
        data = orjson.loads(reason_data)
    except orjson.JSONDecodeError:
        return None
    return _finite(data.get("threshold")) if isinstance(data, dict) else None


def _alarm_since(previous: _EbPreviousState | None, at: datetime) -> datetime | None:
    """When the ALARM that this state change leaves began: `previousState.timestamp` if that
    state was ALARM and the time is readable and not after this change."""
    if previous is None or previous.value != "ALARM" or not previous.timestamp:
        return None
    try:
        since = _parse_time(previous.timestamp, "detail.previousState.timestamp")
    except Rejected:
        return None
    return since if since <= at else None


def _from_eventbridge(data: dict[str, Any], cfg: CloudWatchSourceConfig, received_at: datetime,
                      prefix: str) -> list[Alert]:
    if data.get("detail-type") != STATE_CHANGE:
        return []  # alarm create/update/delete events and anything else: nothing to alert on
    try:
        event = _EbEvent.model_validate(data)
    except ValidationError as exc:
        raise shape_error(exc, prefix) from None
    detail = event.detail
    at = _parse_time(detail.state.timestamp, f"{prefix}detail.state.timestamp")
    alarm_arn = next((r for r in event.resources if ":alarm:" in r), None)
    arn = _parse_arn(alarm_arn)
    region = arn.region if arn else (event.region or "")
    if not _REGION.fullmatch(region):
        region = ""
    labels, extra = _eventbridge_labels(detail)
    threshold = _reason_data_threshold(detail.state.reasonData)
    if threshold is not None:
        labels["threshold"] = repr(threshold)
    conf = detail.configuration
    return _to_alerts(
        _Parsed(
            name=detail.alarmName,
            state=detail.state.value,
            at=at,
            arn=alarm_arn,
            account=event.account or (arn.account if arn else ""),
            region=region,
            partition=arn.partition if arn else "aws",
            reason=detail.state.reason,
            value=_value_from_reason_data(detail.state.reasonData, detail.state.reason),
            labels=labels,
            annotations={"description": (conf.description if conf else None) or "", **extra},
            alarm_since=_alarm_since(detail.previousState, at),
        ),
        cfg,
        received_at,
    )


# --- entry points -----------------------------------------------------------------------------


def parse_alarm_message(message: str, cfg: CloudWatchSourceConfig,
                        received_at: datetime) -> list[Alert]:
    """The (verified) SNS `Message` text: a CloudWatch alarm, or an EventBridge alarm event."""
    try:
        data = orjson.loads(message)
    except orjson.JSONDecodeError as exc:
        raise Rejected(400, "malformed_json", f"SNS Message is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise Rejected(422, "invalid_shape", "invalid payload: Message: expected a JSON object")
    if "detail-type" in data:
        return _from_eventbridge(data, cfg, received_at, "Message.")
    return _from_alarm(data, cfg, received_at, "Message.")


def parse_eventbridge(body: bytes, cfg: CloudWatchSourceConfig,
                      received_at: datetime) -> list[Alert]:
    """An EventBridge event POSTed directly (an API destination), authenticated by `cfg.auth`.

    Such a post carries no SNS signature, so it is refused (403) unless `cfg.auth` is set:
    otherwise anyone could bypass the signature check by posting this shape instead.
    """
    if cfg.auth.type == "none":
        raise Rejected(
            403,
            "unauthenticated_eventbridge",
            "direct EventBridge events need sources.cloudwatch.auth (bearer or basic); "
            "unsigned posts are refused",
        )
    data = decode_json(body)
    if not isinstance(data, dict):
        raise Rejected(422, "invalid_shape", "invalid payload: (body): expected a JSON object")
    if "detail-type" not in data:
        raise Rejected(422, "invalid_shape", "invalid payload: detail-type: Field required")
    return _from_eventbridge(data, cfg, received_at, "")


async def handle_sns(body: bytes, headers: Mapping[str, str], cfg: CloudWatchSourceConfig,
                     verifier: SnsVerifier, received_at: datetime) -> list[Alert]:
    """One SNS delivery: verified alerts for a Notification, `[]` for a confirmation.

    Raises `Rejected` (400/403/422) for bad input and `router.sources.sns.SnsUnavailable`
    (answer 503) when the signing certificate or the confirmation GET is unreachable.
    """
    envelope = await verifier.receive(body, headers, cfg)
    if envelope is None:
        return []
    return parse_alarm_message(envelope.message, cfg, received_at)
