"""Per-receiver rate limits: a token bucket, so bursts wait their turn instead of failing.

Slack asks for about one message per second per channel; PagerDuty allows ~120 events per
minute per routing key; Statuspage one request per second per token. A vendor's Retry-After
also pauses the whole bucket, so other incidents on the same receiver back off too.
"""

from __future__ import annotations

import asyncio
import time

from pydantic import BaseModel, ConfigDict, Field

from router.tokens import Tokens


class RateLimit(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # Sustained requests per second; 0 disables the limit.
    per_second: float = Field(default=0.0, ge=0)
    # How many may go at once after a quiet spell.
    burst: int = Field(default=1, ge=1)


class TokenBucket:
    """Reserve-ahead token bucket: each caller gets a slot time and sleeps until it."""

    def __init__(self, limit: RateLimit) -> None:
        self._tokens = Tokens(rate=limit.per_second, burst=float(limit.burst))
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    def idle(self) -> bool:
        """True when `acquire` would return at once (no limit, not paused): skip the call."""
        return self._tokens.rate <= 0 and self._paused_until <= time.monotonic()

    async def acquire(self) -> None:
        if self.idle():
            return
        async with self._lock:
            # Under the lock the waits are serialised, which is what keeps the order of slots.
            now = time.monotonic()
            if self._paused_until > now:
                await asyncio.sleep(self._paused_until - now)
                now = time.monotonic()
            wait = self._tokens.wait(now)
            if wait > 0:
                await asyncio.sleep(wait)
                now = time.monotonic()
            self._tokens.spend(now)

    def pause(self, seconds: float) -> None:
        """Hold every caller for `seconds` (the vendor said Retry-After)."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)
