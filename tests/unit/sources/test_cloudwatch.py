"""CloudWatch alarm messages (SNS `Message` and EventBridge events) parsed into Alerts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from router.config import BearerAuth, CloudWatchSourceConfig
from router.model import Alert, Status
from router.sources.base import Rejected
from router.sources.cloudwatch import (
    console_url,
    handle_sns,
    normalise_statistic,
    observed_value,
    parse_alarm_message,
    parse_eventbridge,
    stated_unit,
)
from router.sources.sns import SnsVerifier
from tests import snskit
from tests.snskit import FakeSns

DATA = Path(__file__).parents[2] / "testdata" / "cloudwatch"
NOW = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
CFG = CloudWatchSourceConfig(topic_arns=[snskit.TOPIC_ARN])
# Direct EventBridge posts carry no signature, so they need the source's own auth.
AUTHED = CloudWatchSourceConfig(topic_arns=[snskit.TOPIC_ARN],
                                auth=BearerAuth(tokens=[SecretStr("t0ken")]))


def fixture_text(name: str) -> str:
    return (DATA / name).read_text()


def fixture_json(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(fixture_text(name))
    return loaded


def parse(message: dict[str, Any] | str, cfg: CloudWatchSourceConfig = CFG) -> list[Alert]:
    text = message if isinstance(message, str) else json.dumps(message)
    return parse_alarm_message(text, cfg, NOW)


def one(message: dict[str, Any] | str, cfg: CloudWatchSourceConfig = CFG) -> Alert:
    alerts = parse(message, cfg)
    assert len(alerts) == 1
    return alerts[0]


def t(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --- the alarm forms ---------------------------------------------------------------------------

CASES = [
    pytest.param(
        "alarm-single-metric.json",
        {
            "status": Status.FIRING,
            "name": "web-alb-5xx-high",
            "value": 12.5,
            "starts_at": t("2026-11-27T10:00:30.123+00:00"),
            "ends_at": None,
            "labels": {
                "alertname": "web-alb-5xx-high",
                "region": "eu-west-1",
                "account": "123456789012",
                "alarm_type": "metric",
                "namespace": "AWS/ApplicationELB",
                "metric_name": "HTTPCode_ELB_5XX_Count",
                "statistic": "sum",
                "comparison_operator": "GreaterThanThreshold",
                "threshold": "5.0",
                "LoadBalancer": "app/web-prod/50dc6c495c0c9188",
            },
            "generator_url": "https://eu-west-1.console.aws.amazon.com/cloudwatch/home"
            "?region=eu-west-1#alarmsV2:alarm/web-alb-5xx-high",
        },
        id="single-metric-alarm",
    ),
    pytest.param(
        "alarm-single-metric-ok.json",
        {
            "status": Status.RESOLVED,
            "value": 0.0,
            "starts_at": t("2026-11-27T10:20:31.870+00:00"),
            "ends_at": t("2026-11-27T10:20:31.870+00:00"),
        },
        id="single-metric-ok",
    ),
    pytest.param(
        "alarm-metric-math.json",
        {
            "status": Status.FIRING,
            "value": 3.2,
            "labels": {
                "alertname": "api-error-rate",
                "region": "ap-northeast-1",
                "account": "123456789012",
                "alarm_type": "metric_math",
                "namespace": "AWS/ApiGateway",
                "metric_name": "5XXError",
                "statistic": "sum",
                "comparison_operator": "GreaterThanThreshold",
                "threshold": "1.0",
                "ApiName": "orders",
            },
            "annotations": {"expression": "100*(m1/m2)"},
        },
        id="metric-math",
    ),
    pytest.param(
        "alarm-composite.json",
        {
            "status": Status.FIRING,
            "value": None,
            "labels": {
                "alertname": "checkout-degraded",
                "region": "us-east-1",
                "account": "123456789012",
                "alarm_type": "composite",
            },
            "annotations": {
                "alarm_rule": "ALARM(arn:aws:cloudwatch:us-east-1:123456789012:alarm:"
                "checkout-latency) OR ALARM(checkout-errors)",
                "triggering_children": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:"
                "checkout-latency",
            },
        },
        id="composite",
    ),
    pytest.param(
        "alarm-extended-statistic.json",
        {
            "value": 1720.5,  # the newest of three datapoints listed out of order
            "labels": {
                "alertname": "api-latency-p99",
                "region": "us-west-2",
                "account": "123456789012",
                "alarm_type": "metric",
                "namespace": "AWS/ApiGateway",
                "metric_name": "Latency",
                "statistic": "p99",
                "comparison_operator": "GreaterThanOrEqualToThreshold",
                "threshold": "1000.0",
                "ApiName": "orders",
                "Stage": "prod",
            },
        },
        id="extended-statistic",
    ),
    pytest.param(
        "alarm-legacy-no-arn.json",
        {
            "value": 10.0,
            "generator_url": None,
            "labels": {
                "alertname": "legacy-disk-full",
                "account": "123456789012",
                "alarm_type": "metric",
                "namespace": "System/Linux",
                "metric_name": "DiskSpaceUtilization",
                "statistic": "maximum",
                "comparison_operator": "GreaterThanOrEqualToThreshold",
                "threshold": "1.0",
                "InstanceId": "i-0abc1234def567890",
                "Filesystem": "/dev/xvda1",
            },
        },
        id="legacy-without-arn",
    ),
]


@pytest.mark.parametrize(("name", "expected"), CASES)
def test_alarm_message_forms(name: str, expected: dict[str, Any]) -> None:
    alert = one(fixture_text(name))
    assert alert.source == "cloudwatch"
    assert alert.received_at == NOW
    assert len(alert.fingerprint) == 16
    for field, want in expected.items():
        got = getattr(alert, field)
        if field == "annotations":  # a subset: reason/state/arn are checked elsewhere
            assert {k: got.get(k) for k in want} == want
        else:
            assert got == want, field  # labels: the exact set


def test_annotations_carry_description_reason_and_arn() -> None:
    msg = fixture_json("alarm-single-metric.json")
    alert = one(msg)
    assert alert.annotations["description"] == msg["AlarmDescription"]
    assert alert.annotations["reason"] == msg["NewStateReason"]
    assert alert.annotations["alarm_arn"] == msg["AlarmArn"]


def test_null_description_is_left_out() -> None:
    alert = one(fixture_text("alarm-legacy-no-arn.json") .replace('"Old alarm, pre-2018 payload"',
                                                                  "null"))
    assert "description" not in alert.annotations


def test_region_comes_from_the_arn_not_the_display_name() -> None:
    msg = fixture_json("alarm-single-metric.json")
    assert msg["Region"] == "EU (Ireland)"
    assert one(msg).labels["region"] == "eu-west-1"


def test_fingerprint_is_stable_per_alarm_across_states_and_paths() -> None:
    firing = one(fixture_text("alarm-single-metric.json"))
    resolved = one(fixture_text("alarm-single-metric-ok.json"))
    other = one(fixture_text("alarm-metric-math.json"))
    assert firing.fingerprint == resolved.fingerprint != other.fingerprint
    # The same alarm through EventBridge: same ARN, same fingerprint.
    composite = one(fixture_text("alarm-composite.json"))
    via_eventbridge = one(fixture_text("eventbridge-composite.json"))
    assert composite.fingerprint == via_eventbridge.fingerprint


def test_fingerprint_without_arn_uses_account_region_and_name() -> None:
    msg = fixture_json("alarm-legacy-no-arn.json")
    a = one(msg)
    b = one({**msg, "AlarmName": "another"})
    c = one({**msg, "AWSAccountId": "999999999999"})
    assert len({a.fingerprint, b.fingerprint, c.fingerprint}) == 3


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("AVERAGE", "average"),
        ("SUM", "sum"),
        ("MAXIMUM", "maximum"),
        ("MINIMUM", "minimum"),
        ("SAMPLE_COUNT", "samplecount"),
        ("SampleCount", "samplecount"),
        ("Average", "average"),
        ("p99", "p99"),
        ("p99.9", "p99.9"),
    ],
)
def test_statistic_normalisation(raw: str, normalised: str) -> None:
    assert normalise_statistic(raw) == normalised
    msg = fixture_json("alarm-single-metric.json")
    msg["Trigger"]["Statistic"] = raw
    assert one(msg).labels["statistic"] == normalised


def test_dimension_named_like_a_core_label_does_not_overwrite_it() -> None:
    msg = fixture_json("alarm-single-metric.json")
    msg["Trigger"]["Dimensions"].append({"name": "region", "value": "spoofed"})
    labels = one(msg).labels
    assert labels["region"] == "eu-west-1"
    assert labels["dimension_region"] == "spoofed"


@pytest.mark.parametrize(
    ("arn", "url"),
    [
        (
            "arn:aws:cloudwatch:us-east-1:123456789012:alarm:a b/c",
            "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1"
            "#alarmsV2:alarm/a%20b%2Fc",
        ),
        (
            "arn:aws-cn:cloudwatch:cn-north-1:123456789012:alarm:x",
            "https://cn-north-1.console.amazonaws.cn/cloudwatch/home?region=cn-north-1"
            "#alarmsV2:alarm/x",
        ),
        (
            "arn:aws-us-gov:cloudwatch:us-gov-west-1:123456789012:alarm:x",
            "https://console.amazonaws-us-gov.com/cloudwatch/home?region=us-gov-west-1"
            "#alarmsV2:alarm/x",
        ),
    ],
)
def test_console_link_follows_partition_and_region(arn: str, url: str) -> None:
    msg = fixture_json("alarm-single-metric.json")
    msg["AlarmArn"] = arn
    msg["AlarmName"] = arn.split(":", 6)[6]
    assert one(msg).generator_url == url


def test_console_url_escapes_the_name() -> None:
    assert console_url("aws", "eu-west-1", "a#b?c").endswith("alarm/a%23b%3Fc")


# --- INSUFFICIENT_DATA -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "status"),
    [("ignore", None), ("firing", Status.FIRING), ("resolved", Status.RESOLVED)],
)
def test_insufficient_data_modes(mode: str, status: Status | None) -> None:
    cfg = CloudWatchSourceConfig(topic_arns=[snskit.TOPIC_ARN], insufficient_data=mode)
    alerts = parse(fixture_text("alarm-insufficient-data.json"), cfg)
    assert [a.status for a in alerts] == ([] if status is None else [status])
    if alerts:
        assert alerts[0].labels["statistic"] == "average"
        assert alerts[0].value is None


# --- observed value from NewStateReason --------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "value"),
    [
        ("Threshold Crossed: 1 datapoint [12.5 (27/11/26 10:00:00)] was greater than the "
         "threshold (5.0).", 12.5),
        ("Threshold Crossed: 2 out of the last 2 datapoints [99.9 (10/05/21 05:54:00), 99.2 "
         "(10/05/21 05:49:00)] were greater than the threshold (90.0) (minimum 2 datapoints for "
         "OK -> ALARM transition).", 99.9),
        ("Threshold Crossed: 2 out of the last 3 datapoints [1.0 (10/05/21 05:49:00), 7.5 "
         "(10/05/21 05:54:00)] were greater than or equal to the threshold (0.0) and 7 missing "
         "datapoints were treated as [Breaching].", 7.5),
        ("Threshold Crossed: 1 out of the last 1 datapoints [0.0 (19/08/26 09:48:00)] was not "
         "greater than the threshold (0.0) (minimum 1 datapoint for ALARM -> OK transition).",
         0.0),
        ("Thresholds Crossed: 1 out of the last 1 datapoints [0.0 (03/10/19 15:58:00)] was less "
         "than the lower thresholds [0.0206] or greater than the upper thresholds [0.3007] "
         "(minimum 1 datapoint for OK -> ALARM transition).", 0.0),
        ("Threshold Crossed: 1 datapoint (10.0) was greater than or equal to the threshold "
         "(1.0).", 10.0),
        ("Threshold Crossed: 1 datapoint [-3.5E-4 (01/01/26 00:00:00)] was less than the "
         "threshold (0.0).", -3.5e-4),
        ("Threshold Crossed: 1 datapoint [4.0 (31/12/99 23:59:59), 9.0 (01/01/00 00:00:00)] "
         "x", 4.0),  # 2-digit years read as 20yy: 2099 is newer than 2000
        ("Threshold Crossed: 1 datapoint [5.0 (32/13/26 10:00:00)] x", 5.0),  # bad date: first
        ("Threshold Crossed: no datapoints were received for 2 periods and 2 missing "
         "datapoints were treated as [Breaching].", None),
        ("Unchecked: Initial alarm creation", None),
        ("test", None),
        ("", None),
        ("Threshold Crossed: 1 datapoint [1e999 (01/01/26 00:00:00)] x", None),
    ],
)
def test_observed_value_from_reason(reason: str, value: float | None) -> None:
    assert observed_value(reason) == value


# --- EventBridge -------------------------------------------------------------------------------

EVENTBRIDGE = [
    pytest.param(
        "eventbridge-single-metric.json",
        {
            "status": Status.FIRING,
            "name": "ServerCpuTooHigh",
            "value": 99.50160229693434,
            "starts_at": t("2026-11-27T17:04:40.989+00:00"),
            "labels": {
                "alertname": "ServerCpuTooHigh",
                "region": "us-east-1",
                "account": "123456789012",
                "alarm_type": "metric",
                "namespace": "AWS/EC2",
                "metric_name": "CPUUtilization",
                "statistic": "average",
                "threshold": "50.0",
                "InstanceId": "i-12345678901234567",
            },
        },
        id="single-metric",
    ),
    pytest.param(
        "eventbridge-metric-math.json",
        {
            "value": 45628.0,
            "annotations": {
                "description": "Goes into alarm if total network traffic exceeds 10Kb",
                "expression": "SUM(METRICS())",
            },
        },
        id="metric-math",
    ),
    pytest.param(
        "eventbridge-anomaly-ok.json",
        {
            "status": Status.RESOLVED,
            "value": 0.166666666664241,
            "ends_at": t("2026-11-27T16:00:04.653+00:00"),
            "generator_url": "https://eu-central-1.console.aws.amazon.com/cloudwatch/home"
            "?region=eu-central-1#alarmsV2:alarm/EC2%20CPU%20Utilization%20Anomaly",
        },
        id="anomaly-band-ok",
    ),
    pytest.param(
        "eventbridge-composite.json",
        {"value": None, "annotations": {"alarm_rule": "ALARM(checkout-latency) OR "
                                                      "ALARM(checkout-errors)"}},
        id="composite",
    ),
]


@pytest.mark.parametrize(("name", "expected"), EVENTBRIDGE)
def test_eventbridge_events_posted_directly_and_through_sns(
    name: str, expected: dict[str, Any]
) -> None:
    direct = parse_eventbridge((DATA / name).read_bytes(), AUTHED, NOW)
    via_sns = parse(fixture_text(name))
    assert direct == via_sns and len(direct) == 1
    alert = direct[0]
    for field, want in expected.items():
        got = getattr(alert, field)
        if isinstance(want, dict):
            assert {k: got.get(k) for k in want} == want, field
        else:
            assert got == want, field


@pytest.mark.parametrize(
    ("reason_data", "value"),
    [
        ('{"recentDatapoints":[1.0,2.0,3.0]}', 1.0),  # several: the reason text decides
        ('{"recentDatapoints":[4.0],"evaluatedDatapoints":[{"timestamp":"2026-11-27T10:00:00.000'
         '+0000","value":8.0},{"timestamp":"2026-11-27T10:05:00.000+0000","value":9.0}]}', 9.0),
        ("not json", 1.0),
        (None, 1.0),
    ],
)
def test_eventbridge_value_prefers_reason_data(reason_data: str | None, value: float) -> None:
    event = fixture_json("eventbridge-single-metric.json")
    event["detail"]["state"]["reason"] = (
        "Threshold Crossed: 3 out of the last 3 datapoints [1.0 (27/11/26 10:05:00), 2.0 "
        "(27/11/26 10:00:00)] were greater than the threshold (0.5)."
    )
    event["detail"]["state"]["reasonData"] = reason_data
    assert one(event).value == value


def test_eventbridge_events_other_than_state_changes_are_ignored() -> None:
    assert parse_eventbridge((DATA / "eventbridge-config-change.json").read_bytes(), AUTHED,
                             NOW) == []
    assert parse(fixture_text("eventbridge-config-change.json")) == []


def test_eventbridge_direct_post_needs_detail_type() -> None:
    with pytest.raises(Rejected) as info:
        parse_eventbridge((DATA / "alarm-single-metric.json").read_bytes(), AUTHED, NOW)
    assert info.value.status == 422 and "detail-type" in info.value.message


def test_direct_eventbridge_post_without_configured_auth_is_refused() -> None:
    # Otherwise an unsigned post of this shape would bypass SNS signature verification.
    with pytest.raises(Rejected) as info:
        parse_eventbridge((DATA / "eventbridge-single-metric.json").read_bytes(), CFG, NOW)
    assert (info.value.status, info.value.reason) == (403, "unauthenticated_eventbridge")


# --- bad messages -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "status", "path"),
    [
        (lambda m: m.pop("AlarmName"), 422, "Message.AlarmName"),
        (lambda m: m.update(NewStateValue="BROKEN"), 422, "Message.NewStateValue"),
        (lambda m: m.update(StateChangeTime="yesterday"), 422, "Message.StateChangeTime"),
        (lambda m: m.update(StateChangeTime=12), 422, "Message.StateChangeTime"),
        (lambda m: m["Trigger"]["Dimensions"][0].pop("name"), 422,
         "Message.Trigger.Dimensions.0.name"),
        (lambda m: m["Trigger"].update(Threshold="high"), 422, "Message.Trigger.Threshold"),
    ],
)
def test_wrong_shape_is_422_with_the_field_path(mutate: Any, status: int, path: str) -> None:
    msg = fixture_json("alarm-single-metric.json")
    mutate(msg)
    with pytest.raises(Rejected) as info:
        parse(msg)
    assert info.value.status == status
    assert path in info.value.message


@pytest.mark.parametrize(("message", "status"), [("hello", 400), ("[]", 422), ("null", 422)])
def test_message_that_is_not_an_alarm_object(message: str, status: int) -> None:
    with pytest.raises(Rejected) as info:
        parse(message)
    assert info.value.status == status


# --- through the SNS envelope ------------------------------------------------------------------


async def test_handle_sns_end_to_end_with_a_signed_alarm(aiohttp_server: Any) -> None:
    fake = FakeSns()
    fake.attach(str((await aiohttp_server(fake.app())).make_url("/")))
    env = fake.notification(fixture_text("alarm-metric-math.json"), version="2",
                            subject='ALARM: "api-error-rate" in Asia Pacific (Tokyo)')
    async with aiohttp.ClientSession() as session:
        alerts = await handle_sns(snskit.to_body(env), snskit.headers_for(env),
                                  snskit.local_config(), SnsVerifier(session), NOW)
    assert [(a.name, a.status, a.value) for a in alerts] == [
        ("api-error-rate", Status.FIRING, 3.2)
    ]


# --- property: the message parser only ever rejects -------------------------------------------

_scalar = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
_json = st.recursive(
    _scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner,
                                                               max_size=4),
    max_leaves=12,
)
_FIXTURES = sorted(p.name for p in DATA.glob("*.json"))


def _mutate(value: Any, path: list[Any], new: Any) -> Any:
    """Replace the node at `path` (as far as it exists) with `new`."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict) and value:
        key = list(value)[head % len(value)]
        return {**value, key: _mutate(value[key], rest, new)}
    if isinstance(value, list) and value:
        i = head % len(value)
        return [*value[:i], _mutate(value[i], rest, new), *value[i + 1:]]
    return new


def _as_sns_message(text: str, cfg: CloudWatchSourceConfig) -> list[Alert]:
    return parse_alarm_message(text, cfg, NOW)


def _as_direct_post(text: str, cfg: CloudWatchSourceConfig) -> list[Alert]:
    return parse_eventbridge(text.encode(), cfg, NOW)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(_FIXTURES),
    st.lists(st.tuples(st.lists(st.integers(0, 30), max_size=5), _json), max_size=3),
    st.sampled_from(["ignore", "firing", "resolved"]),
)
def test_mutated_alarm_messages_only_ever_reject(name: str, edits: list[tuple[list[int], Any]],
                                                 mode: str) -> None:
    value: Any = fixture_json(name)
    for path, new in edits:
        value = _mutate(value, path, new)
    cfg = AUTHED.model_copy(update={"insufficient_data": mode})
    text = json.dumps(value)
    for parser in (_as_sns_message, _as_direct_post):
        try:
            alerts = parser(text, cfg)
        except Rejected as exc:
            assert 400 <= exc.status < 500
        else:
            assert all(a.source == "cloudwatch" for a in alerts)


@settings(max_examples=200)
@given(st.text(max_size=300) | _json.map(json.dumps))
def test_random_messages_only_ever_reject(message: str) -> None:
    try:
        parse_alarm_message(message, CFG, NOW)
    except Rejected as exc:
        assert 400 <= exc.status < 500


@settings(max_examples=300)
@given(st.text(max_size=400))
def test_observed_value_never_raises(reason: str) -> None:
    value = observed_value("Threshold Crossed: 1 datapoint [" + reason)
    assert value is None or isinstance(value, float)


# --- when a resolved alarm began and ended --------------------------------------------------


def test_ok_message_ends_the_alert_at_its_state_change_time() -> None:
    """The OK transition is the alert's END; an SNS message does not say when the ALARM began,
    so its start is the best the payload knows (the engine keeps the firing alert's own)."""
    (alert,) = parse(fixture_json("alarm-single-metric-ok.json"))
    assert alert.status is Status.RESOLVED
    assert alert.ends_at == t("2026-11-27T10:20:31.870+00:00")


@pytest.mark.parametrize("via_sns", [False, True])
def test_eventbridge_ok_event_spans_from_the_alarm_to_the_ok_transition(via_sns: bool) -> None:
    event = fixture_json("eventbridge-anomaly-ok.json")
    (alert,) = (parse(event, AUTHED) if via_sns
                else parse_eventbridge(json.dumps(event).encode(), AUTHED, NOW))
    assert alert.status is Status.RESOLVED
    # previousState is the ALARM that this OK ends: 15:59:04 to 16:00:04, not 0 minutes.
    assert (alert.starts_at, alert.ends_at) == (t("2026-11-27T15:59:04.672+00:00"),
                                                t("2026-11-27T16:00:04.653+00:00"))


@pytest.mark.parametrize(
    "previous",
    [
        {"value": "INSUFFICIENT_DATA", "reason": "", "timestamp": "2026-11-27T15:00:00.000+0000"},
        {"value": "ALARM", "reason": "", "timestamp": "not a time"},
        {"value": "ALARM"},
        None,
    ],
    ids=["previous-not-alarm", "bad-timestamp", "no-timestamp", "no-previous-state"],
)
def test_eventbridge_ok_without_a_usable_alarm_start_starts_at_the_transition(
    previous: dict[str, Any] | None,
) -> None:
    event = fixture_json("eventbridge-anomaly-ok.json")
    if previous is None:
        del event["detail"]["previousState"]
    else:
        event["detail"]["previousState"] = previous
    (alert,) = parse(event, AUTHED)
    assert alert.starts_at == alert.ends_at == t("2026-11-27T16:00:04.653+00:00")


def test_eventbridge_alarm_event_starts_at_its_own_transition() -> None:
    event = fixture_json("eventbridge-single-metric.json")
    (alert,) = parse(event, AUTHED)
    assert alert.status is Status.FIRING
    assert alert.starts_at == t(event["detail"]["state"]["timestamp"].replace("+0000", "+00:00"))
    assert alert.ends_at is None


# --- the unit an alarm states for its value ---------------------------------------------------


@pytest.mark.parametrize(
    ("unit", "expression", "stated"),
    [
        ("Percent", "", "percent"),
        ("percent", "", "percent"),
        ("Count", "", None),
        (None, "", None),
        (None, "100*(m1/m2)", "percent"),
        (None, "100 * m1 / m2", "percent"),
        (None, "m1 / m2 * 100", "percent"),
        (None, "(m1/m2)*100.0", "percent"),
        (None, "m1/m2", "ratio"),
        (None, "m1 / (m1 + m2)", "ratio"),
        (None, "1000*m1/m2", "ratio"),  # per mille is no percentage
        (None, "m1*1", None),
        (None, "SUM(METRICS())", None),
    ],
)
def test_stated_unit(unit: str | None, expression: str, stated: str | None) -> None:
    assert stated_unit(unit, expression) == stated


def test_metric_math_percentage_alarm_states_its_unit() -> None:
    (alert,) = parse(fixture_json("alarm-metric-math.json"))
    assert alert.annotations["expression"] == "100*(m1/m2)"
    assert alert.annotations["unit"] == "percent"


def test_ratio_expression_and_percent_metric_state_their_unit() -> None:
    ratio = fixture_json("alarm-metric-math.json")
    ratio["Trigger"]["Metrics"][0]["Expression"] = "m1/m2"
    assert parse(ratio)[0].annotations["unit"] == "ratio"
    single = fixture_json("alarm-single-metric.json")
    single["Trigger"]["Unit"] = "Percent"
    assert parse(single)[0].annotations["unit"] == "percent"
    single["Trigger"]["Unit"] = None
    assert "unit" not in parse(single)[0].annotations


def test_eventbridge_metric_math_states_its_unit() -> None:
    event = fixture_json("eventbridge-metric-math.json")
    event["detail"]["configuration"]["metrics"][0]["expression"] = "100 * m1 / m2"
    event["detail"]["configuration"]["metrics"][0]["returnData"] = True
    (alert,) = parse(event, AUTHED)
    assert alert.annotations["unit"] == "percent"
