"""`jsm` receiver: Jira Service Management Operations alerts (Opsgenie's successor).

Integration-events API, same alert model and `GenieKey <integration API key>` auth as
Opsgenie: `POST https://api.atlassian.com/jsm/ops/integration/v2/alerts` to create,
`.../alerts/{alias}/acknowledge|close|notes?identifierType=alias` to follow up.
"""

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


class JsmConfig(ReceiverSettings):
    type: Literal["jsm"] = "jsm"
    api_key: SecretStr
    api_url: str = "https://api.atlassian.com"
    priorities: dict[Severity, Priority] = Field(default_factory=lambda: dict(DEFAULT_PRIORITIES))
    responders: list[Responder] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)

    @property
    def alerts_url(self) -> str:
        return self.api_url.rstrip("/") + "/jsm/ops/integration/v2/alerts"


def build(config: JsmConfig, ctx: SinkContext) -> AlertApiSink:
    return AlertApiSink(
        alerts_url=config.alerts_url, api_key=config.api_key,
        priorities={**DEFAULT_PRIORITIES, **config.priorities}, responders=config.responders,
        tags=config.tags, templates=config.templates, http=ctx.http(config),
    )
