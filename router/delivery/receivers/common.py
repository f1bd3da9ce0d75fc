"""Fields every receiver config shares (delivery knobs), kept out of the vendor modules."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from router.delivery.ratelimit import RateLimit
from router.delivery.render import TemplateOverrides
from router.delivery.retry import RetryPolicy
from router.delivery.session import ConnectionSettings


class ReceiverSettings(ConnectionSettings):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    retry: RetryPolicy = RetryPolicy()
    rate_limit: RateLimit = RateLimit()
    concurrency: int = Field(default=32, ge=1)
    # Overrides of the shipped templates: {initial|update|resolution|<kind>: path or inline}.
    templates: TemplateOverrides = Field(default_factory=dict)
