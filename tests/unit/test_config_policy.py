"""The severity policy a config file yields, and the receiver references check-config refuses."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from router.config import ConfigError, parse_config
from router.policy import SeverityPolicy
from router.runtime import build_snapshot
from tests.conftest import ROOT

RECEIVERS = "receivers: [{name: log, type: log}, {name: slack, type: slack, webhook_url: x}]\n"


def test_a_partial_level_keeps_the_rest_of_its_default_policy() -> None:
    config = parse_config("severities: {SEV1: {receivers: [x]}}\n")
    want = SeverityPolicy(
        description="Critical: customer-facing outage or data loss",
        ack_sla=timedelta(minutes=15), resolve_sla=timedelta(hours=1),
        response="page_everyone", receivers=["x"],
        group_wait=timedelta(0), group_interval=timedelta(minutes=1),
        repeat_interval=timedelta(minutes=30),
    )
    sev1 = config.severities.SEV1
    assert sev1 == want
    # Levels not written stay exactly their defaults.
    assert config.severities.SEV2 == parse_config("").severities.SEV2


def test_each_key_overrides_alone_and_null_turns_a_default_off() -> None:
    config = parse_config(
        "severities:\n"
        "  SEV2: {ack_sla: 5m, group_wait: 0s}\n"
        "  SEV3: {resolve_sla: null}\n"
        "  SEV4: {ack_sla: 1d, response: page_oncall}\n"
    )
    sev2, sev3, sev4 = config.severities.SEV2, config.severities.SEV3, config.severities.SEV4
    assert (sev2.ack_sla, sev2.resolve_sla, sev2.group_wait, sev2.group_interval,
            sev2.response) == (timedelta(minutes=5), timedelta(hours=4), timedelta(0),
                               timedelta(minutes=2), "page_oncall")
    assert (sev3.ack_sla, sev3.resolve_sla) == (timedelta(hours=4), None)
    assert (sev4.ack_sla, sev4.resolve_sla, sev4.response, sev4.repeat_interval) == (
        timedelta(days=1), None, "page_oncall", timedelta(days=1))


def test_a_misspelt_policy_key_is_still_refused() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config("severities: {SEV1: {recievers: [x]}}\n")
    assert str(err.value) == ("router.yaml: severities.SEV1.recievers: Extra inputs are not "
                              "permitted")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("default_receivers: [slak]\n",
         "default_receivers: unknown receiver 'slak' (known: log, slack)"),
        ("severities: {SEV1: {receivers: [log, nope]}}\n",
         "severities.SEV1.receivers: unknown receiver 'nope' (known: log, slack)"),
        ("severities: {SEV4: {receivers: [pd]}}\n",
         "severities.SEV4.receivers: unknown receiver 'pd' (known: log, slack)"),
        ("incidents: {page_receivers: [nope2]}\n",
         "incidents.page_receivers: unknown receiver 'nope2' (known: log, slack)"),
        ("incidents: {sla_receivers: [slack, ops]}\n",
         "incidents.sla_receivers: unknown receiver 'ops' (known: log, slack)"),
        ("incidents: {statuspage_receiver: status}\n",
         "incidents.statuspage_receiver: unknown receiver 'status' (known: log, slack)"),
        ("incidents: {statuspage_receiver: slack}\n",
         "incidents.statuspage_receiver: receiver 'slack' is of type 'slack', not "
         "'statuspage'"),
    ],
)
def test_every_receiver_reference_must_name_a_receiver(text: str, message: str) -> None:
    config = parse_config(f"rules_dir: {ROOT / 'rules'}\n{RECEIVERS}{text}", "r.yaml")
    with pytest.raises(ConfigError) as err:
        build_snapshot(config)
    assert str(err.value) == f"r.yaml: {message}"


def test_rule_receivers_and_config_references_are_reported_together(tmp_path: Path) -> None:
    (tmp_path / "10-r.yaml").write_text("rules: [{name: r, set: {receivers: [pager]}}]\n")
    config = parse_config(f"rules_dir: {tmp_path}\n"
                          "receivers: [{name: log, type: log}, {name: log, type: log}]\n"
                          "default_receivers: [x]\n", "r.yaml")
    with pytest.raises(ConfigError) as err:
        build_snapshot(config)
    assert str(err.value).splitlines() == [
        "r.yaml: receivers.1.name: duplicate receiver name 'log'",
        "r.yaml: default_receivers: unknown receiver 'x' (known: log)",
        f"{tmp_path / '10-r.yaml'}: rule 'r': set.receivers: unknown receiver 'pager' "
        "(known: log)",
    ]
