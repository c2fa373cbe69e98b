"""The River model: scoring, learning from delayed labels, versions and checkpoints.

The only package that imports ``river``. It may import ``fraudstream.events``, ``.errors`` and
``.settings``; never ``fraudstream.stream`` or ``fraudstream.features``.
"""

from __future__ import annotations

from fraudstream.model.checkpoints import CheckpointInfo, CheckpointSchedule, CheckpointStore
from fraudstream.model.decisions import AlertBudget, CardsPerDay, DecisionPolicy, FixedThreshold
from fraudstream.model.labels import (
    DelayedLearner,
    Feedback,
    LabelProgress,
    LearnStats,
    PendingLabels,
)
from fraudstream.model.monitor import DriftEvent, OnlineMetrics
from fraudstream.model.online import FraudModel, ModelVersion
from fraudstream.model.pipelines import MODEL_NAMES, ModelName, build_pipeline
from fraudstream.model.scorer import Scorer, Verdict
from fraudstream.model.shadow import PromotionRule, ShadowPair
from fraudstream.model.snapshots import FallbackSnapshots, MemorySnapshotStore, SnapshotStore

__all__ = [
    "MODEL_NAMES",
    "AlertBudget",
    "CardsPerDay",
    "CheckpointInfo",
    "CheckpointSchedule",
    "CheckpointStore",
    "DecisionPolicy",
    "DelayedLearner",
    "DriftEvent",
    "FallbackSnapshots",
    "Feedback",
    "FixedThreshold",
    "FraudModel",
    "LabelProgress",
    "LearnStats",
    "MemorySnapshotStore",
    "ModelName",
    "ModelVersion",
    "OnlineMetrics",
    "PendingLabels",
    "PromotionRule",
    "Scorer",
    "ShadowPair",
    "SnapshotStore",
    "Verdict",
    "build_pipeline",
]
