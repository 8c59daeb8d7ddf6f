"""Async token buckets for requests-per-minute and tokens-per-minute limits."""

from __future__ import annotations

import asyncio
import time


class AsyncTokenBucket:
    """Refills at `per_minute / 60` units a second up to `capacity` (by default 10 seconds' worth, so a
    fresh run cannot burst a whole minute's budget at once). The level may go negative: a request that
    used more tokens than estimated is charged afterwards and later requests wait for the debt."""

    def __init__(self, per_minute: float, capacity: float | None = None) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        self.rate = per_minute / 60.0
        self.capacity = capacity if capacity is not None else max(1.0, self.rate * 10.0)
        self._level = self.capacity
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self._level = min(self.capacity, self._level + (now - self._stamp) * self.rate)
        self._stamp = now

    async def acquire(self, amount: float = 1.0) -> None:
        """Wait until `amount` units (capped at the capacity) are available, then take them."""
        amount = min(amount, self.capacity)
        async with self._lock:  # first come, first served
            while True:
                self._refill()
                if self._level >= amount:
                    self._level -= amount
                    return
                await asyncio.sleep((amount - self._level) / self.rate)

    def adjust(self, delta: float) -> None:
        """Charge (`delta > 0`) or refund (`delta < 0`) units after the fact."""
        self._refill()
        self._level = min(self.capacity, self._level - delta)
