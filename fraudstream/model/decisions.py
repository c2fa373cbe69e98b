"""Flag decisions: a fixed threshold, a share of transactions, or a number of cards per day.

Every policy answers ``decide(score, card_id, event_time_ms) -> (flagged, threshold)``; the
threshold in force is published with each Score so an analyst sees why it was flagged.
"""

from __future__ import annotations

from typing import Protocol

from river import stats

from fraudstream.errors import ModelError

__all__ = ["AlertBudget", "CardsPerDay", "DecisionPolicy", "FixedThreshold"]

_DAY_MS = 86_400_000


class DecisionPolicy(Protocol):
    """Turns a score into a flag."""

    def decide(self, score: float, card_id: str, event_time_ms: int) -> tuple[bool, float]:
        """Return whether to flag, and the threshold applied."""
        ...


class FixedThreshold:
    """Flag when the score reaches a fixed threshold.

    >>> FixedThreshold(0.5).decide(0.7, "c1", 0)
    (True, 0.5)
    """

    def __init__(self, threshold: float) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ModelError(f"threshold: expected a probability in [0, 1]; got {threshold}")
        self.threshold = threshold

    def decide(self, score: float, card_id: str, event_time_ms: int) -> tuple[bool, float]:
        """Flag if ``score >= threshold``."""
        return score >= self.threshold, self.threshold


class AlertBudget:
    """Flag the top ``share`` of scores, with a streaming quantile (P-square, O(1) memory).

    The quantile is updated with every score *after* the decision, so the first scores (no
    estimate yet) are never flagged by chance; ``warmup`` scores pass before any flag.

    >>> import random
    >>> rng, budget = random.Random(0), AlertBudget(share=0.1, warmup=100)
    >>> flags = [budget.decide(rng.random(), "c", 0)[0] for _ in range(2000)]
    >>> 0.08 < sum(flags[100:]) / 1900 < 0.12
    True
    """

    def __init__(self, share: float, warmup: int = 1_000) -> None:
        if not 0.0 < share < 1.0:
            raise ModelError(f"alert share: expected a share in (0, 1); got {share}")
        self.share = share
        self.warmup = warmup
        self._quantile = stats.Quantile(1.0 - share)
        self._seen = 0

    def decide(self, score: float, card_id: str, event_time_ms: int) -> tuple[bool, float]:
        """Flag if the score is in the top ``share`` seen so far."""
        threshold = self._quantile.get() if self._seen >= self.warmup else 1.0
        threshold = 1.0 if threshold is None else float(threshold)
        self._quantile.update(score)
        self._seen += 1
        return score >= threshold and self._seen > self.warmup, threshold


class CardsPerDay:
    """Flag about ``cards`` distinct cards per (event-time, UTC) day.

    The share of transactions to flag is ``cards`` over the previous day's transaction count,
    applied through an :class:`AlertBudget`-style quantile; once ``cards`` distinct cards are
    flagged in a day, new cards are not flagged (cards already flagged still are).

    >>> policy = CardsPerDay(cards=1, first_day_share=0.5)
    >>> [policy.decide(s, c, 0)[0] for s, c in [(0.1, "a"), (0.9, "b"), (0.95, "a"), (0.97, "b")]]
    [False, True, False, True]
    """

    def __init__(self, cards: int, first_day_share: float = 0.01) -> None:
        if cards <= 0:
            raise ModelError(f"cards per day: expected a positive number; got {cards}")
        self.cards = cards
        self._day = -1
        self._count = 0
        self._share = first_day_share
        self._quantile = stats.Quantile(1.0 - first_day_share)
        self._flagged: set[str] = set()

    def decide(self, score: float, card_id: str, event_time_ms: int) -> tuple[bool, float]:
        """Flag if the score is above the day's quantile and the card budget allows it."""
        day = event_time_ms // _DAY_MS
        if day != self._day:
            if self._day >= 0 and self._count:
                self._share = min(0.5, self.cards / self._count)
                self._quantile = stats.Quantile(1.0 - self._share)
            self._day, self._count = day, 0
            self._flagged.clear()
        self._count += 1
        estimate = self._quantile.get()
        threshold = 1.0 if estimate is None else float(estimate)
        self._quantile.update(score)
        flag = score >= threshold and (card_id in self._flagged or len(self._flagged) < self.cards)
        if flag:
            self._flagged.add(card_id)
        return flag, threshold
