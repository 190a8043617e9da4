"""Per-sender budgets for requests that make a node publish: a token bucket each."""

from __future__ import annotations

import time
from typing import Callable


class TokenBuckets:
    """Each key may spend up to `burst` tokens at once and `rate` per second on average."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        if rate <= 0 or burst < 1:
            raise ValueError(f"a bucket needs rate > 0 and burst >= 1, not {rate}, {burst}")
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, as of when)

    def take(self, key: str, wanted: int) -> int:
        """Spend up to `wanted` whole tokens of `key`'s bucket; how many were granted."""
        now = self.clock()
        tokens, then = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate)
        granted = min(wanted, int(tokens))
        self._buckets[key] = (tokens - granted, now)
        return granted
