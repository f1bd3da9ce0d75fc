"""Receiver configs load from router.yaml through the `type` union; the registry builds sinks."""

from __future__ import annotations

import io
import json
from typing import get_args

import pytest
from aiohttp import ClientSession

from router.config import ConfigError, parse_config
from router.delivery.receivers import REGISTRY, AnyReceiverConfig, build_receivers
from router.delivery.receivers.log import LogConfig, LogSink
from router.delivery.records import MemoryDeliveryStore
from router.delivery.sink import SinkContext
from tests.unit.delivery.conftest import notification

YAML = """
receivers:
  - {name: log, type: log}
  - {name: pd, type: pagerduty, routing_key: "${PD_KEY}"}
  - {name: og, type: opsgenie, api_key: k, region: eu}
  - {name: jsm, type: jsm, api_key: k}
  - {name: chat, type: slack, bot_token: xoxb-1, channel: C1}
  - {name: hook-chat, type: slack, webhook_url: "https://hooks.slack.com/services/T/B/X"}
  - {name: teams, type: teams, webhook_url: "https://x.logic.azure.com/w?sig=s"}
  - {name: hook, type: webhook, url: "https://example.net/h"}
  - {name: status, type: statuspage, page_id: p, api_key: k, component_ids: [c1]}
"""


def test_every_config_type_has_a_factory() -> None:
    types = {c.model_fields["type"].default for c in get_args(AnyReceiverConfig)}
    assert types == set(REGISTRY)


async def test_a_full_receivers_section_loads_and_builds(session: ClientSession) -> None:
    config = parse_config(YAML, env={"PD_KEY": "k" * 32})
    assert [r.type for r in config.receivers] == [
        "log", "pagerduty", "opsgenie", "jsm", "slack", "slack", "teams", "webhook",
        "statuspage"]
    pd = config.receivers[1]
    assert pd.routing_key.get_secret_value() == "k" * 32  # type: ignore[union-attr]
    assert "k" * 32 not in repr(config)
    receivers = build_receivers(config.receivers,
                                SinkContext(session=session, store=MemoryDeliveryStore()))
    assert set(receivers) == config.receiver_names()
    assert receivers["chat"].rate_limit.per_second == 1.0
    assert receivers["pd"].rate_limit.per_second == 2.0


@pytest.mark.parametrize(("receiver", "message"), [
    ("{name: x, type: carrier-pigeon}", "receivers.0: Input tag 'carrier-pigeon' found"),
    ("{name: x, type: pagerduty}", "receivers.0.pagerduty.routing_key: Field required"),
    ("{name: x, type: slack}", "receivers.0.slack: Value error, set either webhook_url"),
    ("{name: x, type: log, colour: red}",
     "receivers.0.log.colour: Extra inputs are not permitted"),
    ("{name: x, type: log, retry: {max_attempts: 0}}",
     "receivers.0.log.retry.max_attempts: Input should be greater than or equal to 1"),
])
def test_config_errors_name_the_key(receiver: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(f"receivers:\n  - {receiver}\n", env={})
    assert str(err.value).startswith(f"router.yaml: {message}")


async def test_log_sink_writes_one_json_line() -> None:
    stream = io.StringIO()
    result = await LogSink(LogConfig(name="log"), stream).send(notification(receiver="log"))
    assert result.ok
    line = json.loads(stream.getvalue())
    assert (line["receiver"], line["kind"], line["severity"], line["dedup_key"]) == (
        "log", "trigger", "SEV2", "inc:g1")
    assert line["text"].startswith("[SEV2] DiskFull on db-1\nStatus: Investigating")
