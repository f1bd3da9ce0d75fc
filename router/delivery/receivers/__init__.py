"""Receiver registry: one module per vendor, each with its Config and its Sink side by side.

`ReceiverConfig` is the discriminated union of every receiver's config, keyed by `type`; the
config file's `receivers:` list is validated against it. `REGISTRY` maps the same `type` to the
module's `build(config, ctx) -> Sink` factory: an explicit table, no plugin discovery.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Annotated, Any

from pydantic import Field

from router.delivery.receivers import jsm, log, opsgenie, pagerduty, slack, statuspage, teams
from router.delivery.receivers import webhook as webhook_receiver
from router.delivery.receivers.jsm import JsmConfig
from router.delivery.receivers.log import LogConfig
from router.delivery.receivers.opsgenie import OpsgenieConfig
from router.delivery.receivers.pagerduty import PagerDutyConfig
from router.delivery.receivers.slack import SlackConfig
from router.delivery.receivers.statuspage import StatuspageConfig
from router.delivery.receivers.teams import TeamsConfig
from router.delivery.receivers.webhook import WebhookConfig
from router.delivery.session import TlsFileError
from router.delivery.sink import Receiver, Sink, SinkContext

ReceiverConfig = Annotated[
    LogConfig
    | PagerDutyConfig
    | OpsgenieConfig
    | JsmConfig
    | SlackConfig
    | TeamsConfig
    | WebhookConfig
    | StatuspageConfig,
    Field(discriminator="type"),
]

AnyReceiverConfig = (
    LogConfig | PagerDutyConfig | OpsgenieConfig | JsmConfig | SlackConfig | TeamsConfig
    | WebhookConfig | StatuspageConfig
)

SinkFactory = Callable[[Any, SinkContext], Sink]

REGISTRY: dict[str, SinkFactory] = {
    "log": log.build,
    "pagerduty": pagerduty.build,
    "opsgenie": opsgenie.build,
    "jsm": jsm.build,
    "slack": slack.build,
    "teams": teams.build,
    "webhook": webhook_receiver.build,
    "statuspage": statuspage.build,
}


def build_receiver(config: AnyReceiverConfig, ctx: SinkContext) -> Receiver:
    """Raises `TlsFileError` naming the receiver when its ca_file or cert_file cannot load."""
    try:
        sink = REGISTRY[config.type](config, ctx)
    except TlsFileError as exc:
        raise TlsFileError(f"receiver {config.name!r}: {exc}") from None
    return Receiver(name=config.name, sink=sink, retry=config.retry,
                    rate_limit=config.rate_limit, concurrency=config.concurrency)


def build_receivers(configs: Iterable[AnyReceiverConfig], ctx: SinkContext) -> dict[str, Receiver]:
    return {c.name: build_receiver(c, ctx) for c in configs}


__all__ = [
    "REGISTRY", "AnyReceiverConfig", "JsmConfig", "LogConfig", "OpsgenieConfig",
    "PagerDutyConfig", "ReceiverConfig", "SinkFactory", "SlackConfig", "StatuspageConfig",
    "TeamsConfig", "WebhookConfig", "build_receiver", "build_receivers",
]
