"""The role split, composed: scorers follow published model versions, one trainer learns.

``FRAUDSTREAM_ROLE=all`` (default) scores and learns in one process. For horizontal scale, N
``scorer`` processes share the transactions topic in one consumer group (the per-card and
per-terminal aggregates are shared in Redis), and one ``trainer`` consumes the labels, learns
from the exact scored features (read back from the feature store by transaction id) and
publishes signed model versions on the compacted model topic, which every scorer swaps in
between batches. Joins stream/, features/ and model/ through their ports, like :mod:`app`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from fraudstream.errors import ConfigError, ModelError
from fraudstream.events import Label
from fraudstream.features import FeatureStore
from fraudstream.model import FraudModel
from fraudstream.model.snapshots import Snapshot
from fraudstream.model.versions import pack_model, unpack_model
from fraudstream.settings import KafkaSettings, ModelSettings, Settings
from fraudstream.stream.models import ModelFeed

if TYPE_CHECKING:
    from fraudstream.app import Detector

__all__ = [
    "FeatureSnapshots",
    "ModelFollower",
    "Trainer",
    "check_roles",
    "model_key",
    "newest_published",
]

logger = logging.getLogger(__name__)


def model_key(settings: ModelSettings) -> bytes:
    """The HMAC key that signs published versions: the checkpoint key, required for roles.

    Raises:
        ConfigError: no key is configured (an unsigned model topic would let anyone able to
            write to it run code in every scorer).
    """
    if settings.checkpoint_key is None:
        raise ConfigError(
            "the scorer and trainer roles need FRAUDSTREAM_MODEL_CHECKPOINT_KEY (or its _FILE): "
            "model versions on Kafka are signed and verified with it"
        )
    return settings.checkpoint_key.get().encode()


def newest_published(kafka: KafkaSettings, topic: str, key: bytes) -> FraudModel | None:
    """The newest verified version on the model topic, or None if there is none."""
    feed = ModelFeed(kafka, topic)
    try:
        blob = feed.poll(10.0) if feed.has_versions else None
    finally:
        feed.close()
    return unpack_model(blob, key) if blob is not None else None


class FeatureSnapshots:
    """The learner's snapshot port over the feature store: the scored vectors are already kept
    there by transaction id (and exactly as scored), whichever process scored them."""

    def __init__(self, store: FeatureStore) -> None:
        self.store = store

    def put(
        self, tx_id: str, features: Mapping[str, float], event_time_ms: int, ttl_ms: int
    ) -> None:
        """Nothing to keep: the store recorded the vector when it was computed."""

    def get_many(self, tx_ids: Sequence[str]) -> dict[str, Snapshot]:
        """The vectors and event times the store still holds for ``tx_ids``."""
        return self.store.snapshots(tx_ids)


class ModelFollower:
    """A scorer's sink for published versions: verify, then swap between batches."""

    def __init__(self, detector: Detector, key: bytes) -> None:
        self.detector = detector
        self._key = key

    def offer_model(self, blob: bytes) -> None:
        """Swap in ``blob``'s model if its signature and hash verify; else keep the current."""
        try:
            model = unpack_model(blob, self._key)
        except ModelError as exc:
            logger.error("model version refused, model unchanged error=%s", exc)
            return
        with self.detector.lock:
            if str(model.version) != str(self.detector.scorer.model.version):
                self.detector.scorer.swap(model)


class Trainer:
    """The trainer's learner (labels to the store and the model) and its model source."""

    def __init__(self, detector: Detector, key: bytes) -> None:
        self.detector = detector
        self._key = key
        model = detector.scorer.model
        self._number = model.checkpoint  # published versions continue the numbering
        self._published = model.updates

    def learn(
        self, labels: Sequence[Label], positions: Mapping[tuple[str, int], int] | None = None
    ) -> dict[str, int]:
        """Apply the labels to the store, then teach the model every one at once.

        Labels act at once here (no transactions move the watermark in this process): the
        watermark is the newest label time seen, so the learn-once memory expires with it.
        """
        counts = self.detector.learn(labels, positions)
        times = [lb.label_time_ms for lb in labels if lb.label_time_ms is not None]
        scorer = self.detector.scorer
        with self.detector.lock:
            scorer.advance(max(times) if times else scorer.learner.pending.watermark_ms)
        self.detector.maybe_export()
        return counts

    def resume_offset(self, topic: str, partition: int) -> int | None:
        """None: the trainer commits a label's offset only once a published version has it."""
        return None

    def export(self) -> tuple[str, bytes] | None:
        """The model, signed, when it learned something since the last export."""
        with self.detector.lock:
            model = self.detector.scorer.model
            if model.updates == self._published:
                return None
            self._number += 1
            blob = pack_model(model, self._key, self._number, time.time_ns() // 1_000_000)
            self._published = model.updates
            logger.info("model version packed version=%s", model.version)
            return model.name, blob


def check_roles(settings: Settings) -> None:
    """Refuse role settings that cannot work, before anything starts.

    Raises:
        ConfigError: a role without the signing key, or exactly-once on the trainer (which
            commits its label offsets with each published version instead).
    """
    if settings.detector.role != "all":
        model_key(settings.model)
    if settings.detector.role == "trainer" and settings.detector.guarantee == "exactly-once":
        raise ConfigError("the trainer role has no exactly-once mode; its outputs are versions")
