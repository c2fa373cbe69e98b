"""The model-versions topic: a compacted, one-partition topic keyed by model name.

The trainer role publishes each new version there; every scorer follows it with a
:class:`ModelFeed` (no consumer group: each scorer reads the whole feed itself), starting at the
newest version, so a scorer that starts or restarts scores with the current model at once.
"""

from __future__ import annotations

import logging
import uuid

from confluent_kafka import Consumer, KafkaException, TopicPartition

from fraudstream.errors import KafkaClientError
from fraudstream.settings import KafkaSettings
from fraudstream.stream.config import client_config

__all__ = ["MODEL_MAX_BYTES", "MODEL_TOPIC_CONFIG", "ModelFeed"]

logger = logging.getLogger(__name__)

MODEL_MAX_BYTES = 16_777_216  # a model version (the warm-up sample makes it ~1.5 MB)
# Compaction keeps the newest version per model name; old versions go after a day.
MODEL_TOPIC_CONFIG = {"cleanup.policy": "compact", "min.compaction.lag.ms": "86400000",
                      "max.message.bytes": str(MODEL_MAX_BYTES)}  # fmt: skip


class ModelFeed:
    """Reads published model versions (signed bytes; the model package verifies them)."""

    def __init__(self, kafka: KafkaSettings, topic: str, timeout_s: float = 30.0) -> None:
        config = client_config(kafka, "consumer")
        config.update({"group.id": f"{topic}.feed.{uuid.uuid4().hex}", "enable.auto.commit": False,
                       "fetch.message.max.bytes": MODEL_MAX_BYTES})  # fmt: skip
        self._consumer = Consumer(config)
        self._topic = topic
        try:
            low, high = self._consumer.get_watermark_offsets(
                TopicPartition(topic, 0), timeout=timeout_s
            )
        except KafkaException as exc:
            raise KafkaClientError(
                f"cannot read the model topic {topic!r} (create it, compacted, with one "
                f"partition, or let the detector create topics): {exc}"
            ) from exc
        # Start at the newest version (the last record), or wait for the first one.
        self._consumer.assign([TopicPartition(topic, 0, max(low, high - 1))])
        self.has_versions = high > low  # at start: a version to load before scoring
        self.received = 0

    def poll(self, timeout_s: float = 0.0) -> bytes | None:
        """The newest version received since the last call, if any (older ones are skipped)."""
        newest = None
        # consume(n, t) waits for n records or t: wait for one only, then take what is there
        msgs = self._consumer.consume(1, timeout_s) if timeout_s > 0 else []
        for msg in msgs + self._consumer.consume(100, 0):
            err = msg.error()
            if err is not None:
                if err.fatal():
                    raise KafkaClientError(f"model feed failed: {err}")
                logger.warning("model feed error=%s", err)
                continue
            value = msg.value()
            if value:
                newest = value
                self.received += 1
        return newest

    def close(self) -> None:
        """Leave (no offsets to commit: a feed always starts at the newest version)."""
        self._consumer.close()
