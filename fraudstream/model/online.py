"""The online model: a named River pipeline with undersampled learning, versions and reasons."""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from river import stats

from fraudstream.errors import ModelError
from fraudstream.events import Reason
from fraudstream.model.labels import LabelProgress
from fraudstream.model.pipelines import build_pipeline
from fraudstream.model.transforms import TerminalFrauds

__all__ = ["FraudModel", "ModelVersion", "keep_negative", "undo_undersampling"]

_SCALE = 2.0**32


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """Which model scored: name, learned updates (monotonic) and its last checkpoint's hash.

    >>> str(ModelVersion("gam", 1200, 7, "ab" * 32))
    'gam-u1200-c7-abababababab'
    """

    name: str
    updates: int
    checkpoint: int = 0
    content_hash: str = ""

    def __str__(self) -> str:
        tail = f"-c{self.checkpoint}-{self.content_hash[:12]}" if self.content_hash else ""
        return f"{self.name}-u{self.updates}{tail}"


def keep_negative(key: str, rate: float) -> bool:
    """Whether a genuine example is learned: a hash of its key, so replays choose the same.

    >>> keep_negative("tx-1", 1.0), keep_negative("tx-1", 0.0)
    (True, False)
    """
    return rate >= 1.0 or zlib.crc32(key.encode()) / _SCALE < rate


def undo_undersampling(p: float, rate: float) -> float:
    """Map a probability learned on a ``rate`` share of negatives back to the true base rate.

    Undersampling multiplies the odds by ``1 / rate``; this multiplies them back.

    >>> round(undo_undersampling(0.5, 0.1), 4)
    0.0909
    """
    if rate >= 1.0:
        return p
    return p * rate / (p * rate + (1.0 - p))


class FraudModel:
    """A pipeline plus what it needs online; pickled whole into checkpoints.

    Args:
        name: Pipeline name (see :func:`~fraudstream.model.pipelines.build_pipeline`).
        negative_rate: Share of genuine labels learned (all frauds are); chosen by a hash of
            the transaction id. Scores are mapped back to calibrated probabilities.
        seed: Seed of randomised learners.
    """

    def __init__(self, name: str = "gam", negative_rate: float = 0.1, seed: int = 42) -> None:
        if not 0.0 < negative_rate <= 1.0:
            raise ModelError(f"negative_rate: expected a share in (0, 1]; got {negative_rate}")
        self.name = name
        self.negative_rate = negative_rate
        self.pipeline: Any = build_pipeline(name, seed)
        self.updates = 0
        self.checkpoint = 0
        self.content_hash = ""
        # Set only while a checkpoint is written: how far the label feed was read (see
        # Scorer.checkpoint); read back, then cleared, when a process restores it.
        self.label_progress: LabelProgress | None = None
        self._genuine: dict[str, stats.Var] = {}  # per-feature stats of learned genuine vectors

    @property
    def version(self) -> ModelVersion:
        """The current version; ``updates`` moves with every learned example."""
        return ModelVersion(self.name, self.updates, self.checkpoint, self.content_hash)

    def predict_proba_one(self, x: Mapping[str, float]) -> float:
        """Fraud probability of one feature vector (corrected for undersampling)."""
        p = self.pipeline.predict_proba_one(x).get(True, 0.0)
        return undo_undersampling(float(p), self.negative_rate)

    def learn_one(self, x: Mapping[str, float], y: bool, key: str) -> bool:
        """Learn one labelled vector; genuine ones only if sampled. Returns whether learned."""
        if not y:
            if not keep_negative(key, self.negative_rate):
                return False
            for name, value in x.items():
                var = self._genuine.get(name)
                if var is None:
                    var = self._genuine[name] = stats.Var()
                var.update(value)
        self.pipeline.learn_one(x, y)
        self.updates += 1
        return True

    def explain(self, x: Mapping[str, float], k: int = 3) -> tuple[Reason, ...]:
        """The ``k`` features pushing the score up most, with their raw values.

        Linear pipelines: the sum of weight x transformed value over everything derived from
        a feature (its scaled value, its bin, half of each crossed cell it is in). Other
        pipelines: a cheap proxy, the z-score of the value against learned genuine vectors (how
        unusual it is, not a model attribution).
        """
        steps = getattr(self.pipeline, "steps", None)
        final = self.pipeline[list(steps)[-1]] if steps else self.pipeline
        # One weight per present key: the averaged model's full weight table costs thousands of
        # decays (milliseconds), a flagged score needs a few dozen.
        weight = getattr(final, "weight", None)
        if weight is None:
            weights = getattr(final, "weights", None)
            weight = None if weights is None else (lambda key: weights.get(key, 0.0))
        contrib: dict[str, float] = {}
        values = dict(x)
        if steps and isinstance(self.pipeline[next(iter(steps))], TerminalFrauds):
            values = self.pipeline[next(iter(steps))].transform_one(values)  # derived features
        if weight is not None:
            for key, value in self.pipeline.transform_one(x).items():
                # "name|k" is a bin of name; "a|i*b|j" a cell of two bins, shared by both.
                parts = key.split("*")
                share = weight(key) * value / len(parts)
                for part in parts:
                    base = part.split("|", 1)[0]
                    contrib[base] = contrib.get(base, 0.0) + share
        else:
            for name, value in x.items():
                var = self._genuine.get(name)
                sd = math.sqrt(var.get()) if var is not None and var.get() > 0 else 0.0
                contrib[name] = (value - var.mean.get()) / sd if var is not None and sd else 0.0
        top = sorted(contrib.items(), key=lambda kv: kv[1], reverse=True)[:k]
        return tuple(Reason(name, float(values.get(name, 0.0)), c) for name, c in top if c > 0.0)
