"""The Fraud Detection Handbook's test protocol and metrics, in pure numpy.

AUC ROC and average precision are pooled over a test week; card precision top-k (CP@k) is
computed per day and averaged. Known-compromised cards are removed from a test week as the book
does: cards with a fraud in the fold's training week, and, cumulatively, for each test day the
cards with a fraud 8 days earlier (the last day whose labels are known). Detected cards (the
fraudulent ones among a day's top k) are removed from the following days.

Times are epoch milliseconds (UTC); days are UTC calendar days.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "HANDBOOK_TEST_WEEKS",
    "ProtocolResult",
    "WindowResult",
    "average_precision",
    "card_precision_top_k",
    "evaluate_handbook",
    "evaluate_window",
    "roc_auc",
]

DAY_MS = 86_400_000
# First day of each of the book's four test weeks; training weeks start 14 days earlier.
HANDBOOK_TEST_WEEKS: tuple[dt.date, ...] = (
    dt.date(2018, 8, 8),
    dt.date(2018, 8, 15),
    dt.date(2018, 8, 22),
    dt.date(2018, 8, 29),
)


def roc_auc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve, ties counted as half (same as scikit-learn).

    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    >>> roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5])
    0.5
    """
    y = np.asarray(y_true, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    ranks = np.empty(s.size, dtype=np.float64)
    # Average ranks over runs of equal scores.
    starts = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1]])
    ends = np.r_[starts[1:], s.size]
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def average_precision(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Step-wise average precision, sum of (R_n - R_{n-1}) P_n over distinct thresholds.

    Same definition as scikit-learn's ``average_precision_score`` (no interpolation).

    >>> average_precision([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.8333333333333333
    """
    y = np.asarray(y_true, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    sorted_s, sorted_y = s[order], y[order]
    tp = np.cumsum(sorted_y)
    # Evaluate only at the last row of each run of equal scores (a threshold).
    last = np.r_[sorted_s[1:] != sorted_s[:-1], True]
    tp_at, n_at = tp[last], np.flatnonzero(last) + 1
    precision = tp_at / n_at
    recall_gain = np.diff(np.r_[0, tp_at]) / n_pos
    return float(np.sum(recall_gain * precision))


def card_precision_top_k(
    day: ArrayLike, card: ArrayLike, y_true: ArrayLike, scores: ArrayLike, k: int = 100
) -> list[float]:
    """CP@k for each day in order, removing cards detected on earlier days.

    Per day, each remaining card gets its max score and max label; the top ``k`` cards by score
    are taken (ties broken by card id) and CP@k is their number of fraudulent cards over ``k``.
    Those fraudulent cards are detected and leave the following days.

    >>> card_precision_top_k([0, 0, 0, 1, 1], [1, 2, 3, 1, 2], [1, 0, 0, 1, 1],
    ...                      [0.9, 0.1, 0.2, 0.9, 0.1], k=1)
    [1.0, 1.0]
    """
    days, cards = np.asarray(day), np.asarray(card)
    y, s = np.asarray(y_true, dtype=bool), np.asarray(scores, dtype=np.float64)
    detected: set[int] = set()
    out: list[float] = []
    for d in np.unique(days):
        on_day = days == d
        c, yy, ss = cards[on_day], y[on_day], s[on_day]
        keep = ~np.isin(c, np.fromiter(detected, dtype=cards.dtype, count=len(detected)))
        c, yy, ss = c[keep], yy[keep], ss[keep]
        uniq, inv = np.unique(c, return_inverse=True)
        best = np.full(uniq.size, -np.inf)
        np.maximum.at(best, inv, ss)
        fraud = np.zeros(uniq.size, dtype=bool)
        np.logical_or.at(fraud, inv, yy)
        top = np.argsort(-best, kind="stable")[:k]
        hits = uniq[top][fraud[top]]
        out.append(hits.size / k)
        detected.update(int(x) for x in hits)
    return out


@dataclass(frozen=True, slots=True)
class WindowResult:
    """Metrics over one test window, after the known-compromised cards are removed."""

    test_start: dt.date
    days: int
    transactions: int
    frauds: int
    auc_roc: float
    average_precision: float
    card_precision_top_k: float
    cp_per_day: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class ProtocolResult:
    """The four weeks of the handbook protocol, with mean and std (ddof 0) per metric."""

    weeks: tuple[WindowResult, ...]
    mean: dict[str, float]
    std: dict[str, float]


def _epoch_day(date: dt.date) -> int:
    return (date - dt.date(1970, 1, 1)).days


def evaluate_window(
    timestamp_ms: ArrayLike,
    card: ArrayLike,
    y_true: ArrayLike,
    scores: ArrayLike,
    test_start: dt.date,
    test_days: int = 7,
    delay_days: int = 7,
    train_days: int = 7,
    k: int = 100,
) -> WindowResult:
    """Metrics over ``[test_start, test_start + test_days)`` with the book's card removals.

    The fold's training window is the ``train_days`` ending ``delay_days`` before
    ``test_start``; its fraudulent cards are removed from the whole window, and test day ``i``
    also drops (cumulatively) the cards with a fraud on day ``i - delay_days - 1``.
    """
    days = np.asarray(timestamp_ms, dtype=np.int64) // DAY_MS
    cards = np.asarray(card)
    y = np.asarray(y_true, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    first = _epoch_day(test_start)
    train_lo = first - delay_days - train_days
    in_train = (days >= train_lo) & (days < first - delay_days)
    known = set(np.unique(cards[in_train & y]).tolist())
    keep = np.zeros(days.size, dtype=bool)
    for i in range(test_days):
        newly = (days == first - delay_days - 1 + i) & y
        known.update(np.unique(cards[newly]).tolist())
        on_day = np.flatnonzero(days == first + i)
        known_arr = np.fromiter(known, dtype=cards.dtype, count=len(known))
        keep[on_day[~np.isin(cards[on_day], known_arr)]] = True
    cp = card_precision_top_k(days[keep], cards[keep], y[keep], s[keep], k)
    return WindowResult(
        test_start,
        test_days,
        int(keep.sum()),
        int(y[keep].sum()),
        roc_auc(y[keep], s[keep]),
        average_precision(y[keep], s[keep]),
        float(np.mean(cp)) if cp else float("nan"),
        tuple(cp),
    )


def evaluate_handbook(
    timestamp_ms: ArrayLike,
    card: ArrayLike,
    y_true: ArrayLike,
    scores: ArrayLike,
    test_weeks: tuple[dt.date, ...] = HANDBOOK_TEST_WEEKS,
) -> ProtocolResult:
    """The handbook protocol: four test weeks, mean and std (ddof 0) of AUC, AP and CP@100.

    Pass other ``test_weeks`` (e.g. validation weeks before the test period) to tune safely.
    """
    weeks = tuple(evaluate_window(timestamp_ms, card, y_true, scores, w) for w in test_weeks)
    table = {
        "auc_roc": [w.auc_roc for w in weeks],
        "average_precision": [w.average_precision for w in weeks],
        "card_precision_top_k": [w.card_precision_top_k for w in weeks],
    }
    return ProtocolResult(
        weeks,
        {m: float(np.mean(v)) for m, v in table.items()},
        {m: float(np.std(v)) for m, v in table.items()},
    )
