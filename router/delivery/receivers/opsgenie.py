"""`opsgenie` receiver: Opsgenie Alert API v2 (US or EU). End of life 2027-04-05: prefer `jsm`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from router.delivery.receivers.alertapi import (
    DEFAULT_PRIORITIES,
    AlertApiSink,
    Priority,
    Responder,
)
from router.delivery.receivers.common import ReceiverSettings
from router.delivery.sink import SinkContext
from router.model import Severity

API_URLS = {"us": "https://api.opsgenie.com", "eu": "https://api.eu.opsgenie.com"}


class OpsgenieConfig(ReceiverSettings):
    type: Literal["opsgenie"] = "opsgenie"
    api_key: SecretStr
    region: Literal["us", "eu"] = "us"
    # Overrides the region's host (tests, proxies).
    api_url: str | None = None
    priorities: dict[Severity, Priority] = Field(default_factory=lambda: dict(DEFAULT_PRIORITIES))
    responders: list[Responder] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)

    @property
    def alerts_url(self) -> str:
        return (self.api_url or API_URLS[self.region]).rstrip("/") + "/v2/alerts"


def build(config: OpsgenieConfig, ctx: SinkContext) -> AlertApiSink:
    return AlertApiSink(
        alerts_url=config.alerts_url, api_key=config.api_key,
        priorities={**DEFAULT_PRIORITIES, **config.priorities}, responders=config.responders,
        tags=config.tags, templates=config.templates, http=ctx.http(config),
    )
