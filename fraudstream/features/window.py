"""Pure window math: the cumulative event log both feature stores are built on.

An entity's log is a list of records sorted by event time. Each record carries *cumulative*
sums (count, amount, ...) of every event up to and including itself, plus a few fields of its
own event (location, terminal). The aggregate of any window ``(lo, hi]`` is then the difference
of the cumulative sums at the last record ``<= hi`` and the last record ``<= lo``: two binary
searches, whatever the window length.

Two maintenance rules keep the log small, identically in Python (this module, used by the
in-memory store) and in Lua (``engine.lua``, the Redis store):

* **prune**: records older than ``newest - horizon`` go, except the newest of them, which stays
  as the base the next window edge subtracts from. Queries within the allowed lateness never
  reach behind the base, so pruning is exact.
* **fold**: when a log outgrows ``exact_cap + coarse_max`` records, its oldest records (all but
  the newest ``exact_cap // 2``) are thinned to the last record of each ``fold_bucket_ms``
  bucket. Cumulative sums stay exact at the retained records; a window edge falling inside a
  thinned bucket misses at most that bucket's events, so each window is off by at most one
  bucket per edge. Memory stays below ``exact_cap + coarse_max`` records.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence

__all__ = ["PRUNE_MIN", "CumLog", "haversine_km", "unit_vector"]

# Pruning rewrites the whole log, so it waits until this many records are stale (amortised).
PRUNE_MIN = 16
_DEG = math.pi / 180.0
_EARTH_RADIUS_KM = 6371.0088


class CumLog:
    """A time-sorted log of cumulative sums with a fixed number of cum and own fields.

    >>> log = CumLog(n_cum=2, n_own=0)
    >>> for t, amount in [(10, 5.0), (20, 7.0), (15, 1.0)]:  # 15 arrives out of order
    ...     log.insert(t, (1.0, amount), ())
    >>> log.times, log.window(10, 20)  # events in (10, 20]: two, amounts 1 + 7
    ([10, 15, 20], [2.0, 8.0])
    >>> log.window(0, 10), log.window(20, 99)
    ([1.0, 5.0], [0.0, 0.0])
    """

    __slots__ = ("cums", "n_cum", "n_own", "owns", "times")

    def __init__(self, n_cum: int, n_own: int) -> None:
        self.n_cum = n_cum
        self.n_own = n_own
        self.times: list[float] = []
        self.cums: list[list[float]] = []
        self.owns: list[tuple[float, ...]] = []

    def __len__(self) -> int:
        return len(self.times)

    def find(self, edge: float) -> int:
        """Number of records with time ``<= edge`` (the 1-based index of the last one)."""
        return bisect_right(self.times, edge)

    def cum_at(self, index: int) -> list[float]:
        """Cumulative sums at the ``index``-th record (1-based); zeros before the first."""
        return self.cums[index - 1] if index > 0 else [0.0] * self.n_cum

    def window(self, lo: float, hi: float) -> list[float]:
        """Sums over events with ``lo < time <= hi``."""
        a, b = self.cum_at(self.find(lo)), self.cum_at(self.find(hi))
        return [y - x for x, y in zip(a, b, strict=True)]

    def insert(self, t: float, delta: Sequence[float], own: Sequence[float]) -> None:
        """Add an event after any record with the same time; later records absorb ``delta``."""
        pos = self.find(t)
        base = self.cum_at(pos)
        for j in range(pos, len(self.cums)):
            row = self.cums[j]
            for k in range(self.n_cum):
                row[k] = row[k] + delta[k]
        self.times.insert(pos, t)
        self.cums.insert(pos, [base[k] + delta[k] for k in range(self.n_cum)])
        self.owns.insert(pos, tuple(own))

    def prune(self, horizon: float) -> None:
        """Drop records older than ``newest - horizon`` but keep the newest of them as the base.

        >>> log = CumLog(1, 0)
        >>> for t in range(40):
        ...     log.insert(t, (1.0,), ())
        >>> log.prune(10)  # 29 records are <= 39 - 10; 28 go, record 29 stays as the base
        >>> log.times[0], log.window(29, 39)
        (29, [10.0])
        """
        if not self.times:
            return
        stale = self.find(self.times[-1] - horizon) - 1
        if stale >= PRUNE_MIN:
            self._keep(list(range(stale, len(self.times))))

    def fold(self, exact_cap: int, coarse_max: int, bucket: float) -> None:
        """Thin the oldest records to one per ``bucket`` once the log exceeds its bound.

        >>> log = CumLog(1, 0)
        >>> for t in range(12):
        ...     log.insert(t, (1.0,), ())
        >>> log.fold(exact_cap=4, coarse_max=4, bucket=5)  # 12 > 8: thin the oldest 10
        >>> log.times, log.window(-1, 11)
        ([4, 9, 10, 11], [12.0])
        """
        n = len(self.times)
        if n <= exact_cap + coarse_max:
            return
        m = n - exact_cap // 2
        times = self.times
        keep = [
            i
            for i in range(m - 1)
            if math.floor(times[i] / bucket) != math.floor(times[i + 1] / bucket)
        ]
        keep.extend(range(m - 1, n))
        self._keep(keep)

    def _keep(self, indices: list[int]) -> None:
        self.times = [self.times[i] for i in indices]
        self.cums = [self.cums[i] for i in indices]
        self.owns = [self.owns[i] for i in indices]


def unit_vector(lat: float, lon: float) -> tuple[float, float, float]:
    """A point on the unit sphere; averaging these gives a centroid without dateline trouble.

    >>> [round(v, 6) for v in unit_vector(0.0, 90.0)]
    [0.0, 1.0, 0.0]
    """
    phi, lam = lat * _DEG, lon * _DEG
    return math.cos(phi) * math.cos(lam), math.cos(phi) * math.sin(lam), math.sin(phi)


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km on a spherical Earth (mean radius).

    >>> round(haversine_km(48.8566, 2.3522, 51.5074, -0.1278))  # Paris - London
    344
    """
    p1, p2 = lat1 * _DEG, lat2 * _DEG
    dphi, dlam = p2 - p1, (lon2 - lon1) * _DEG
    a = math.sin(dphi / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dlam / 2) ** 2
    return 2 * _EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))
