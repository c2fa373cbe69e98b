"""A champion and a shadow challenger: both learn every label, only the champion decides.

The challenger is scored beside the champion (its score is logged, never published as a flag)
and is promoted when a rule on the online metrics of both says it is better.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from fraudstream.model.monitor import OnlineMetrics
from fraudstream.model.online import FraudModel

__all__ = ["PromotionRule", "ShadowPair"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PromotionRule:
    """Promote when the challenger beats the champion by ``margin`` on ``metric``.

    Both must have seen ``min_labels`` labels since the challenger started, so a lucky
    first hour never swaps the model.
    """

    metric: Literal["average_precision", "roc_auc"] = "average_precision"
    margin: float = 0.01
    min_labels: int = 20_000

    def prefers_challenger(self, champion: OnlineMetrics, challenger: OnlineMetrics) -> bool:
        """Apply the rule."""
        if min(champion.seen, challenger.seen) < self.min_labels:
            return False
        mine = champion.summary()[self.metric]
        theirs = challenger.summary()[self.metric]
        return theirs > mine + self.margin


class ShadowPair:
    """A :class:`~fraudstream.model.labels.Learner` that teaches a champion and a challenger.

    Both are measured prequentially on the same labels (score of the snapshot, then learn).
    """

    def __init__(
        self,
        champion: FraudModel,
        challenger: FraudModel | None = None,
        rule: PromotionRule | None = None,
        threshold: float = 0.5,
    ) -> None:
        self.champion = champion
        self.challenger = challenger
        self.rule = rule or PromotionRule()
        self.threshold = threshold
        self.champion_metrics = OnlineMetrics(threshold)
        self.challenger_metrics = OnlineMetrics(threshold)
        self.promotions = 0

    def predict_proba_one(self, x: Mapping[str, float]) -> float:
        """The champion's score (the one that decides)."""
        return self.champion.predict_proba_one(x)

    def shadow_score(self, x: Mapping[str, float]) -> float | None:
        """The challenger's score, for logging beside the champion's; ``None`` without one."""
        return None if self.challenger is None else self.challenger.predict_proba_one(x)

    def learn_one(self, x: Mapping[str, float], y: bool, key: str) -> bool:
        """Measure both on ``x`` before learning it, then teach both.

        Without a challenger nothing is measured here: these metrics only feed promotion (the
        detector's own online metrics use the published score), and a champion prediction per
        label would cost a model call on the hot path for nothing.
        """
        if self.challenger is not None:
            self.champion_metrics.update(y, self.champion.predict_proba_one(x), 0, 0)
            self.challenger_metrics.update(y, self.challenger.predict_proba_one(x), 0, 0)
            self.challenger.learn_one(x, y, key)
        return self.champion.learn_one(x, y, key)

    def start_challenger(self, challenger: FraudModel) -> None:
        """Begin shadowing a new challenger; both metric windows restart."""
        self.challenger = challenger
        self.champion_metrics = OnlineMetrics(self.threshold)
        self.challenger_metrics = OnlineMetrics(self.threshold)

    def maybe_promote(self) -> bool:
        """Swap in the challenger if the rule prefers it; the old champion becomes challenger."""
        if self.challenger is None:
            return False
        if not self.rule.prefers_challenger(self.champion_metrics, self.challenger_metrics):
            return False
        logger.info(
            "challenger promoted old=%s new=%s", self.champion.version, self.challenger.version
        )
        self.champion, self.challenger = self.challenger, self.champion
        self.champion_metrics, self.challenger_metrics = (
            self.challenger_metrics,
            self.champion_metrics,
        )
        self.promotions += 1
        return True
