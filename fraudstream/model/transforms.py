"""Feature transforms applied inside the River pipeline, keyed by the stable feature names.

They live in the pipeline (not in the feature store) so a checkpoint carries them with the model
and the snapshot kept for learning stays the raw vector that was scored.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray
from river import base
from river.base.typing import FeatureName, Target

__all__ = [
    "LogScale",
    "QuantileBins",
    "TerminalFrauds",
    "is_heavy_tailed",
    "quantile_edges",
    "split_edges",
    "squash",
]

# Name prefixes of non-negative, heavy-tailed features: amounts, counts, gaps, distances.
_HEAVY_PREFIXES = (
    "amount",
    "frauds_",
    "tx_count_",
    "seconds_since_",
    "distinct_terminals_",
    "distance_",
    "speed_",
)
_SIGNED = ("amount_zscore",)  # signed, heavy-tailed: squashed symmetrically


def _named(x: dict[FeatureName, Any]) -> dict[str, float]:
    # The feature contract is dict[str, float]; River types keys as Hashable.
    return cast("dict[str, float]", x)


def is_heavy_tailed(name: str) -> bool:
    """Whether a feature is compressed with ``log1p`` by :class:`LogScale`.

    >>> is_heavy_tailed("tx_count_1d_by_card"), is_heavy_tailed("risk_7d_by_terminal_delayed_7d")
    (True, False)
    """
    return name.startswith(_HEAVY_PREFIXES) and not name.startswith(_SIGNED)


def squash(value: float) -> float:
    """Sign-preserving ``log1p`` of the magnitude.

    >>> squash(0.0), round(squash(-(math.e - 1)), 6)
    (0.0, -1.0)
    """
    return math.copysign(math.log1p(abs(value)), value)


class LogScale(base.Transformer):
    """Compress heavy-tailed features: ``log1p`` on amounts, counts, gaps and distances.

    Linear models then see multiplicative effects (an amount 5 times the card's usual one) as
    additive ones, and a single huge amount cannot dominate the running scaler.

    >>> LogScale().transform_one({"amount": math.e - 1, "is_night": 1.0})
    {'amount': 1.0, 'is_night': 1.0}
    """

    def transform_one(self, x: dict[FeatureName, Any]) -> dict[FeatureName, Any]:
        """Return a new dict with the heavy-tailed values compressed."""
        out: dict[FeatureName, Any] = {}
        kinds = _LOG_KINDS
        log1p = math.log1p
        for name, value in _named(x).items():
            kind = kinds.get(name)
            if kind is None:
                kind = kinds[name] = _log_kind(name)
            if kind == 0:
                out[name] = value
            elif kind == 1:
                out[name] = log1p(value) if value > 0.0 else 0.0
            else:
                out[name] = squash(value)
        return out


# Feature name -> 0 as is, 1 log1p, 2 squash: names are few and fixed, the prefix tests are not
# free, so each name is classified once per process (a cache, not state: never pickled).
_LOG_KINDS: dict[str, int] = {}


def _log_kind(name: str) -> int:
    if name.startswith(_SIGNED):
        return 2
    return 1 if is_heavy_tailed(name) else 0


def quantile_edges(values: list[float], n_bins: int) -> list[float]:
    """Bin edges (for ``bisect_right``): a heavy value gets a bin of its own, the rest quantiles.

    A value holding more than ``1 / n_bins`` of the sample (the zero of a risk, the 1 of a
    count) is isolated, so the values above it are still split finely.

    >>> quantile_edges([0.0] * 8 + [0.2, 0.5, 0.9, 1.0], n_bins=4)
    [0.0, 0.2, 0.9]
    """
    values = sorted(values)
    n = len(values)
    heavy: set[float] = set()
    run_start = 0
    for i in range(1, n + 1):
        if i == n or values[i] != values[run_start]:
            if (i - run_start) * n_bins > n:
                heavy.add(values[run_start])
            run_start = i
    rest = [v for v in values if v not in heavy]
    cuts = set(heavy)
    for v in heavy:
        above = [r for r in rest if r > v]
        if above:
            cuts.add(above[0])
    m, k = len(rest), max(1, n_bins - 2 * len(heavy))
    cuts.update(rest[m * j // k] for j in range(1, k) if m)
    return sorted(cuts)


def split_edges(
    values: Sequence[float], labels: Sequence[bool], depth: int = 4, min_leaf: int = 20
) -> list[float]:
    """Edges of a depth-limited entropy tree on one feature (supervised discretisation).

    Each node takes the split that most reduces class entropy, if both sides keep
    ``min_leaf`` examples; so a sharp rule (every amount above 220 is fraud) gets its own edge
    however rare it is, where quantile edges would miss it.

    >>> split_edges([1, 2, 3, 4, 5, 6, 7, 8], [0, 0, 0, 0, 0, 1, 1, 1], depth=1, min_leaf=2)
    [6.0]
    """
    v = np.asarray(values, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    order = np.argsort(v, kind="stable")
    v, y = v[order], y[order]
    edges: set[float] = set()
    stack = [(0, v.size, depth)]
    while stack:
        lo, hi, d = stack.pop()
        n = hi - lo
        if d == 0 or n < 2 * min_leaf:
            continue
        pos = np.cumsum(y[lo:hi])
        total = pos[-1]
        if total == 0 or total == n:
            continue
        left_n = np.arange(1, n + 1, dtype=np.float64)
        # Candidate cut after row i: only where the value changes, both sides >= min_leaf.
        ok = np.zeros(n, dtype=bool)
        ok[min_leaf - 1 : n - min_leaf] = True
        ok[:-1] &= v[lo + 1 : hi] != v[lo : hi - 1]
        ok[-1] = False
        if not ok.any():
            continue
        cost = _entropy(pos, left_n) * left_n
        cost[:-1] += _entropy(total - pos[:-1], n - left_n[:-1]) * (n - left_n[:-1])
        i = int(np.argmin(np.where(ok, cost, np.inf)))
        edges.add(float(v[lo + i + 1]))
        stack += [(lo, lo + i + 1, d - 1), (lo + i + 1, hi, d - 1)]
    return sorted(edges)


def _entropy(pos: NDArray[np.float64], n: NDArray[np.float64]) -> NDArray[np.float64]:
    p = np.clip(pos / n, 1e-12, 1 - 1e-12)
    return np.asarray(-(p * np.log(p) + (1 - p) * np.log(1 - p)), dtype=np.float64)


class TerminalFrauds(base.Transformer):
    """Add the number of known frauds in each delayed terminal window: risk x count.

    A risk of 1.0 over one transaction and over seven are different evidence; a linear model
    cannot multiply two inputs, so the product is given to it.

    >>> out = TerminalFrauds().transform_one({"risk_7d_by_terminal_delayed_7d": 0.5,
    ...                                       "tx_count_7d_by_terminal_delayed_7d": 4.0})
    >>> out["frauds_7d_by_terminal_delayed_7d"]
    2.0
    """

    def transform_one(self, x: dict[FeatureName, Any]) -> dict[FeatureName, Any]:
        """Return ``x`` plus ``frauds_<w>_by_terminal_<delay>`` for each risk/count pair."""
        out = dict(x)
        xs = _named(x)
        pairs = _FRAUD_PAIRS
        for name, risk in xs.items():
            pair = pairs.get(name, _UNSEEN)
            if pair is _UNSEEN:
                pair = pairs[name] = _fraud_pair(name)
            if pair is not None:
                count = xs.get(pair[0])
                if count is not None:
                    out[pair[1]] = risk * count
        return out


_UNSEEN = ("", "")
# Risk feature name -> (its count's name, the frauds name), None for other names (a cache).
_FRAUD_PAIRS: dict[str, tuple[str, str] | None] = {}


def _fraud_pair(name: str) -> tuple[str, str] | None:
    if name.startswith("risk_") and "_by_terminal" in name:
        rest = name[len("risk_") :]
        return "tx_count_" + rest, "frauds_" + rest
    return None


class QuantileBins(base.SupervisedTransformer):
    """Add a one-hot quantile bin per feature, so a linear model learns a shape per feature.

    The bin edges are the quantiles of the first ``warmup`` learned vectors, then frozen (a
    moving edge would silently change what every learned bin weight means). Before that only
    the input passes through. Each input ``name`` gains ``name|k`` = 1 for its bin ``k``: a
    linear model on top becomes a generalised additive model (e.g. a step at some amount).

    Each pair ``(a, b)`` of ``crosses`` also gains ``a|i*b|j`` = 1 for the cell of its two
    bins: a weight per cell, so the model can learn that two signals together mean more than
    their sum (a large amount on a card with known frauds), still one dict entry per pair.

    >>> bins = QuantileBins(n_bins=2, warmup=4, crosses=(("a", "b"),))
    >>> for v in (1.0, 2.0, 3.0, 4.0):
    ...     bins.learn_one({"a": v, "b": -v})
    >>> bins.transform_one({"a": 3.5, "b": -3.5})
    {'a': 3.5, 'b': -3.5, 'a|1': 1.0, 'b|0': 1.0, 'a|1*b|0': 1.0}
    """

    def __init__(
        self,
        n_bins: int = 16,
        warmup: int = 5_000,
        keep_input: bool = True,
        split_depth: int = 0,
        crosses: tuple[tuple[str, str], ...] | None = None,
    ) -> None:
        self.n_bins = n_bins
        self.keep_input = keep_input
        self.split_depth = split_depth
        self.crosses = crosses  # None, not (): River's clone() cannot copy an empty tuple
        self.labels: list[bool] = []
        self.warmup = warmup
        self.seen = 0
        self.values: dict[str, list[float]] = {}
        self.edges: dict[str, list[float]] = {}

    def learn_one(self, x: dict[FeatureName, Any], y: Target = False) -> None:
        """Collect warm-up values; freeze the edges when ``warmup`` vectors have been seen."""
        if self.seen >= self.warmup:
            return
        self.seen += 1
        for name, value in _named(x).items():
            self.values.setdefault(name, []).append(value)
        self.labels.append(bool(y))
        if self.seen == self.warmup:
            for name, values in self.values.items():
                edges = set(quantile_edges(values, self.n_bins))
                if self.split_depth and len(values) == len(self.labels):
                    edges.update(split_edges(values, self.labels, self.split_depth))
                self.edges[name] = sorted(edges)
            self.values, self.labels = {}, []

    def transform_one(self, x: dict[FeatureName, Any]) -> dict[FeatureName, Any]:
        """Return ``x`` (if ``keep_input``) plus one bin indicator per feature and cross."""
        out = dict(x) if self.keep_input else {}
        edges = self.edges
        if not edges:
            return out
        binned: dict[str, int] = {}
        names = _BIN_NAMES
        for name, value in _named(x).items():
            cuts = edges.get(name)
            if cuts:
                k = binned[name] = bisect_right(cuts, value)
                key = (name, k)
                bin_name = names.get(key)
                if bin_name is None:
                    bin_name = names[key] = f"{name}|{k}"
                out[bin_name] = 1.0
        crosses = _CROSS_NAMES
        for a, b in getattr(self, "crosses", None) or ():  # absent in pre-cross checkpoints
            i, j = binned.get(a), binned.get(b)
            if i is not None and j is not None:
                ckey = (a, i, b, j)
                cross = crosses.get(ckey)
                if cross is None:
                    cross = crosses[ckey] = f"{a}|{i}*{b}|{j}"
                out[cross] = 1.0
        return out


# Interned indicator names: (feature, bin) and (a, i, b, j) -> "a|i*b|j". Bounded by features x
# bins and crossed pairs x bins^2 (a few tens of thousands); a cache, never pickled.
_BIN_NAMES: dict[tuple[str, int], str] = {}
_CROSS_NAMES: dict[tuple[str, int, str, int], str] = {}
