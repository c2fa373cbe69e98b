"""The periodic one-line summary: rate, latency percentiles, flags and budget misses."""

from __future__ import annotations

import time

import numpy as np

__all__ = ["LatencyWindow", "percentiles"]


def percentiles(values_us: list[int]) -> tuple[float, float, float]:
    """p50, p99 and max of a list of microsecond values (zeros when empty).

    >>> percentiles([100, 200, 300, 400])
    (250.0, 397.0, 400.0)
    >>> percentiles([])
    (0.0, 0.0, 0.0)
    """
    if not values_us:
        return (0.0, 0.0, 0.0)
    arr = np.asarray(values_us, dtype=np.float64)
    p50, p99 = np.percentile(arr, [50, 99])
    return (float(p50), float(p99), float(arr.max()))


class LatencyWindow:
    """Per-transaction processing times since the last summary, plus running totals."""

    def __init__(self) -> None:
        self._values: list[int] = []
        self._started = time.monotonic()
        self._window_start = self._started
        self.flags = 0
        self.misses = 0
        self.total = 0
        self.total_flags = 0
        self.total_misses = 0
        self.last: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    def add(self, processing_us: int) -> None:
        """Record one transaction's processing time."""
        self._values.append(processing_us)

    def roll(self, now: float) -> tuple[float, float, float, float]:
        """Close the window: (rate per second, p50 us, p99 us, max us); start a new one."""
        elapsed = max(now - self._window_start, 1e-9)
        n = len(self._values)
        p50, p99, worst = percentiles(self._values)
        self.total += n
        self.total_flags += self.flags
        self.total_misses += self.misses
        self.flags = self.misses = 0
        self.last = (n / elapsed, p50, p99, worst)
        self._values = []
        self._window_start = now
        return self.last

    def summary_line(self, now: float) -> str:
        """One key=value line for stderr; rolls the window."""
        flags, misses = self.flags, self.misses
        rate, p50, p99, worst = self.roll(now)
        return (
            f"summary rate={rate:.0f}/s p50_us={p50:.0f} p99_us={p99:.0f} max_us={worst:.0f} "
            f"flags={flags} budget_misses={misses} total={self.total}"
        )

    def totals_line(self) -> str:
        """Totals since start, for the stop log line."""
        self.roll(time.monotonic())
        return (
            f"transactions={self.total} flags={self.total_flags} budget_misses={self.total_misses}"
        )
