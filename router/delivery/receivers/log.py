"""`log` receiver: JSON lines on stdout, for the embedded default and dry runs."""

from __future__ import annotations

import sys
from typing import Literal, TextIO

import jinja2
import orjson

from router.delivery.receivers.common import ReceiverSettings
from router.delivery.render import Renderer
from router.delivery.result import DeliveryResult
from router.delivery.sink import SinkContext
from router.model import Notification


class LogConfig(ReceiverSettings):
    type: Literal["log"] = "log"


class LogSink:
    def __init__(self, config: LogConfig, stream: TextIO | None = None) -> None:
        self._renderer = Renderer(config.templates)
        self._stream = stream

    async def send(self, n: Notification) -> DeliveryResult:
        try:
            message = self._renderer.render(n)
        except jinja2.TemplateError:
            return DeliveryResult.failed("template_error", retryable=False)
        line = orjson.dumps({
            "receiver": n.receiver, "id": n.id, "kind": n.kind.value,
            "severity": n.severity.value, "group_key": n.group_key, "dedup_key": n.dedup_key,
            "incident_id": n.incident_id, "title": n.title, "created_at": n.created_at,
            "text": message.text,
        }).decode()
        stream = self._stream or sys.stdout
        stream.write(line + "\n")
        stream.flush()
        return DeliveryResult.delivered()


def build(config: LogConfig, ctx: SinkContext) -> LogSink:
    return LogSink(config)
