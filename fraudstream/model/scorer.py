"""The model side of the detector: score, decide, explain, learn delayed labels, checkpoint.

:class:`Scorer` is what ``app.py`` wires between the feature store and the output topics. Per
transaction, in this order: labels whose label time the event time has reached are learned
(watermark), the vector is scored and decided, and its snapshot is kept for its label.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from fraudstream.events import Label, Reason
from fraudstream.model.checkpoints import CheckpointSchedule, CheckpointStore
from fraudstream.model.decisions import DecisionPolicy
from fraudstream.model.labels import DelayedLearner
from fraudstream.model.monitor import DriftEvent, OnlineMetrics
from fraudstream.model.online import FraudModel
from fraudstream.model.shadow import PromotionRule, ShadowPair

__all__ = ["Scorer", "Verdict"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The model's answer for one transaction."""

    score: float
    flagged: bool
    threshold: float
    reasons: tuple[Reason, ...]
    model_version: str
    shadow_score: float | None = None


class Scorer:
    """Champion (and optional challenger), delayed learning, decisions, metrics, checkpoints.

    Args:
        model: The champion.
        learner: Snapshot keeping and label watermark.
        policy: Threshold or alert budget.
        threshold: Threshold the online precision/recall are measured at.
        reasons: Reasons attached to a flagged score (all scores if ``explain_all``).
        checkpoints: Where checkpoints go; ``None`` disables them.
        schedule: When :meth:`maybe_checkpoint` saves.
        on_drift: Called with each :class:`DriftEvent` (e.g. publish it, bump a metric).
    """

    def __init__(
        self,
        model: FraudModel,
        learner: DelayedLearner,
        policy: DecisionPolicy,
        *,
        threshold: float = 0.5,
        reasons: int = 3,
        explain_all: bool = False,
        challenger: FraudModel | None = None,
        rule: PromotionRule | None = None,
        checkpoints: CheckpointStore | None = None,
        schedule: CheckpointSchedule | None = None,
        on_drift: Callable[[DriftEvent], None] | None = None,
    ) -> None:
        self.pair = ShadowPair(model, challenger, rule, threshold)
        self.learner = learner
        self.policy = policy
        self.metrics = OnlineMetrics(threshold)
        self.reasons = reasons
        self.explain_all = explain_all
        self.checkpoints = checkpoints
        self.schedule = schedule or CheckpointSchedule()
        self.on_drift = on_drift
        # The labels partitions' next offsets, as read (saved in checkpoints), and the ones a
        # restored checkpoint says to read on from (each taken once, at the first assignment).
        self.label_positions: dict[tuple[str, int], int] = {}
        self.resume_positions: dict[tuple[str, int], int] = {}

    @property
    def model(self) -> FraudModel:
        """The current champion."""
        return self.pair.champion

    def score(
        self,
        tx_id: str,
        card_id: str,
        features: Mapping[str, float],
        event_time_ms: int,
        *,
        remember: bool = True,
    ) -> Verdict:
        """Learn what is due, then score, decide and explain one transaction.

        With ``remember=False`` (fallback vectors, not the real features) the vector is not
        kept, so its label is never learned from it (counted as unknown when it arrives).
        """
        self.advance(event_time_ms)
        model = self.pair.champion
        p = model.predict_proba_one(features)
        flagged, threshold = self.policy.decide(p, card_id, event_time_ms)
        reasons = model.explain(features, self.reasons) if flagged or self.explain_all else ()
        if remember:
            self.learner.remember(tx_id, features, event_time_ms, p)
        return Verdict(
            p, flagged, threshold, reasons, str(model.version), self.pair.shadow_score(features)
        )

    def add_labels(
        self, labels: Iterable[Label], positions: Mapping[tuple[str, int], int] | None = None
    ) -> None:
        """Queue labels; each acts once the transaction event time reaches its label time.

        ``positions``: the labels partitions' next offsets once these labels are read; a
        checkpoint saves them with the labels still queued (see :meth:`restore_labels`).
        """
        self.learner.add_labels(labels)
        if positions:
            self.label_positions.update(positions)

    def restore_labels(self, model: FraudModel) -> None:
        """Take a restored checkpoint's label progress: its queued labels are queued again and
        the labels consumer is to read on from its positions."""
        # getattr: a checkpoint or version pickled before this field existed has none
        progress, model.label_progress = getattr(model, "label_progress", None), None
        if progress is None:
            return
        self.learner.restore(progress)
        self.resume_positions = {(t, p): o for t, p, o in progress.positions}
        self.label_positions.update(self.resume_positions)
        logger.info("label progress restored pending=%d unlabelled=%d positions=%s",
                    len(progress.pending), len(progress.unlabelled),
                    sorted(self.resume_positions.items()))  # fmt: skip

    def advance(self, event_time_ms: int) -> None:
        """Learn every label due at ``event_time_ms``; update metrics; maybe promote."""
        feedback = self.learner.advance(event_time_ms, self.pair)
        for fb in feedback:
            event = self.metrics.update(fb.is_fraud, fb.score, fb.label_delay_ms, fb.event_time_ms)
            if event is not None:
                logger.info(
                    "drift detected labels=%d error_before=%.4f error_after=%.4f",
                    event.labels_seen,
                    event.error_before,
                    event.error_after,
                )
                if self.on_drift is not None:
                    self.on_drift(event)
        if feedback:
            self.pair.maybe_promote()

    def swap(self, model: FraudModel) -> None:
        """Hot swap the champion (e.g. a version learned in another process, or a rollback)."""
        logger.info("model swapped old=%s new=%s", self.pair.champion.version, model.version)
        model.label_progress = None  # a reload mid-run keeps reading labels where it is
        self.pair.champion = model

    def maybe_checkpoint(self, now_ms: int) -> bool:
        """Save a checkpoint if the schedule says so; returns whether one was saved."""
        if self.checkpoints is None or not self.schedule.due(now_ms, self.model.updates):
            return False
        self.checkpoint(now_ms)
        return True

    def checkpoint(self, now_ms: int) -> None:
        """Save a checkpoint now (on demand, and on shutdown)."""
        if self.checkpoints is not None:
            model = self.model
            model.label_progress = self.learner.progress(self.label_positions)
            try:
                self.checkpoints.save(model, now_ms)
            finally:
                model.label_progress = None  # in the checkpoint only: never in a published copy
            self.schedule.mark(now_ms, model.updates)

    def rollback(self, steps: int = 1) -> None:
        """Swap in the checkpoint ``steps`` before the newest."""
        if self.checkpoints is not None:
            self.swap(self.checkpoints.rollback(steps))

    def reload(self) -> None:
        """Swap in the newest checkpoint (e.g. a version trained elsewhere, dropped in)."""
        if self.checkpoints is not None:
            self.swap(self.checkpoints.load())
