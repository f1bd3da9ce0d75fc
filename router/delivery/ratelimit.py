"""Per-receiver rate limits: a token bucket, so bursts wait their turn instead of failing.

Slack asks for about one message per second per channel; PagerDuty allows ~120 events per
minute per routing key; Statuspage one request per second per token. A vendor's Retry-After
also pauses the whole bucket, so other incidents on the same receiver back off too.
"""

from __future__ import annotations

import asyncio
import time

from pydantic import BaseModel, ConfigDict, Field


class RateLimit(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # Sustained requests per second; 0 disables the limit.
    per_second: float = Field(default=0.0, ge=0)
    # How many may go at once after a quiet spell.
    burst: int = Field(default=1, ge=1)


class TokenBucket:
    """Reserve-ahead token bucket: each caller gets a slot time and sleeps until it."""

    def __init__(self, limit: RateLimit) -> None:
        self._rate = limit.per_second
        self._burst = float(limit.burst)
        self._tokens = float(limit.burst)
        self._stamp = time.monotonic()
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    def idle(self) -> bool:
        """True when `acquire` would return at once (no limit, not paused): skip the call."""
        return self._rate <= 0 and self._paused_until <= time.monotonic()

    async def acquire(self) -> None:
        if self._rate <= 0 and self._paused_until <= time.monotonic():
            return
        async with self._lock:
            # Under the lock the waits are serialised, which is what keeps the order of slots.
            now = time.monotonic()
            if self._paused_until > now:
                await asyncio.sleep(self._paused_until - now)
                now = time.monotonic()
            if self._rate <= 0:
                return
            self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now
            if self._tokens < 1.0:
                wait = (1.0 - self._tokens) / self._rate
                await asyncio.sleep(wait)
                now = time.monotonic()
                self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
                self._stamp = now
            self._tokens = max(0.0, self._tokens - 1.0)

    def pause(self, seconds: float) -> None:
        """Hold every caller for `seconds` (the vendor said Retry-After)."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)
