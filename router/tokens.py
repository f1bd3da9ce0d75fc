"""A token bucket's arithmetic on a time its caller passes: `rate` tokens a second, at most
`burst` saved up (so after a quiet spell that many go at once).

Pure, so the caller that waits for a token (delivery's per-receiver rate limits,
`router.delivery.ratelimit`) and the one that only asks whether it has one (the Kafka engine's
transaction budget, `router.backends.kafka.pacing`) share one piece of math, and tests drive
it with plain numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Tokens:
    rate: float  # tokens per second; 0: no limit
    burst: float  # at most this many saved up
    tokens: float = field(init=False)
    stamp: float = float("-inf")  # monotonic time of the last refill

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def take(self, now: float) -> bool:
        """One token at `now` (and it is counted), or not."""
        if self.rate <= 0:
            return True
        self._refill(now)
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True

    def wait(self, now: float) -> float:
        """Seconds from `now` until `take` can succeed (0: now)."""
        if self.rate <= 0:
            return 0.0
        self._refill(now)
        return max(0.0, (1.0 - self.tokens) / self.rate)

    def spend(self, now: float) -> None:
        """Take one token whatever is left: for a caller that slept `wait` seconds and may
        wake a hair early (the slot was its own)."""
        if self.rate > 0:
            self._refill(now)
            self.tokens = max(0.0, self.tokens - 1.0)
