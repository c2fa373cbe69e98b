"""The trainer role's loop: learn from the labels topic, publish model versions.

One trainer consumes every label (its own consumer group), applies each to the shared feature
store and teaches the model from the exact features the scorers scored with (kept in Redis),
then publishes the model every ``publish_every_s`` when it changed. Offsets follow the model:
a label's offset is committed only after a version that learned it was published (and dead
letters were delivered), so a trainer that crashes restarts from its newest published version
and relearns exactly the labels after it (the store counts them as duplicates; the model, which
lost them, learns them again).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from fraudstream.errors import KafkaClientError
from fraudstream.events import Label, Rejection, decode_label
from fraudstream.settings import KafkaSettings, LimitSettings, TopicSettings
from fraudstream.stream.config import client_config
from fraudstream.stream.metrics import DetectorMetrics, HealthState
from fraudstream.stream.models import MODEL_MAX_BYTES
from fraudstream.stream.outputs import dead_letter_of
from fraudstream.stream.ports import LabelLearner

__all__ = ["ModelSource", "TrainerLoop", "TrainerOptions"]

logger = logging.getLogger(__name__)


class ModelSource(Protocol):
    """The model to publish: ``(key, signed bytes)`` when it changed since the last export."""

    def export(self) -> tuple[str, bytes] | None: ...


@dataclass(frozen=True, slots=True)
class TrainerOptions:
    """Tuning of the trainer loop."""

    group_id: str = "fraudstream-detector"
    batch_size: int = 500
    publish_every_s: float = 2.0
    summary_every_s: float = 10.0


class TrainerLoop:
    """One consumer of the labels topic; a producer of dead letters and model versions."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topics: TopicSettings,
        limits: LimitSettings,
        learner: LabelLearner,
        source: ModelSource,
        metrics: DetectorMetrics,
        health: HealthState,
        options: TrainerOptions = TrainerOptions(),
    ) -> None:
        self._topics, self._limits, self._options = topics, limits, options
        self._learner, self._source = learner, source
        self._metrics, self._health = metrics, health
        producer = client_config(kafka, "producer")
        producer["message.max.bytes"] = MODEL_MAX_BYTES  # a version is ~1.5 MB while warming up
        self._producer = Producer(producer)
        config = client_config(kafka, "consumer")
        config.update({"group.id": f"{options.group_id}.trainer", "enable.auto.commit": False})
        self._consumer = Consumer(config)
        self._pending: dict[tuple[str, int], int] = {}  # offsets learned, not yet published
        self._failed: KafkaError | None = None
        self.learned = 0  # labels handed to the learner since start
        self.published = 0  # versions published since start

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._health.assigned = True
        logger.info("trainer assigned partitions=%s", [p.partition for p in partitions])

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._publish()  # what was learned from these partitions is published, then committed
        logger.info("trainer revoked partitions=%s", [p.partition for p in partitions])

    def _on_delivery(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            self._failed = err

    def _handle(self, msgs: Sequence[Message]) -> None:
        labels: list[Label] = []
        for msg in msgs:
            if msg.error() is not None:
                logger.warning("labels consumer error=%s", msg.error())
                continue
            topic = msg.topic() or ""
            self._pending[(topic, msg.partition() or 0)] = (msg.offset() or 0) + 1
            result = decode_label(msg.value() or b"", self._limits)
            if isinstance(result, Rejection):
                dead = dead_letter_of(msg, result)
                self._producer.produce(
                    self._topics.dead_letters, dead.to_json(), msg.key(),
                    on_delivery=self._on_delivery, headers=dead.headers(),
                )  # fmt: skip
                self._metrics.dead_letters.labels(topic, result.reason).inc()
            else:
                labels.append(result)
        if labels:
            for outcome, n in self._learner.learn(labels).items():
                if n:
                    self._metrics.labels.labels(outcome).inc(n)
            self.learned += len(labels)

    def _publish(self) -> None:
        """Publish the model if it changed, then commit the offsets it has learned."""
        exported = self._source.export()
        if exported is not None:
            key, blob = exported
            self._producer.produce(self._topics.models, blob, key.encode(),
                                   on_delivery=self._on_delivery)  # fmt: skip
        if self._producer.flush(30.0) or self._failed is not None:
            raise KafkaClientError(f"model version or dead letter not delivered: {self._failed}")
        if exported is not None:
            self.published += 1
            logger.info("model published version=%s bytes=%d", exported[0], len(exported[1]))
        if self._pending:
            offsets = [TopicPartition(t, p, o) for (t, p), o in self._pending.items()]
            try:
                self._consumer.commit(offsets=offsets, asynchronous=False)
            except KafkaException as exc:
                raise KafkaClientError(f"label offset commit failed: {exc}") from exc
            self._pending.clear()

    def run(self, stop: threading.Event) -> None:
        """Learn and publish until ``stop`` is set; then publish and commit once more."""
        opts = self._options
        self._consumer.subscribe(
            [self._topics.labels], on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        next_publish = time.monotonic() + opts.publish_every_s
        next_summary = time.monotonic() + opts.summary_every_s
        try:
            while not stop.is_set():
                self._health.beat()
                msgs = self._consumer.consume(opts.batch_size, 0.1)
                if msgs:
                    self._handle(msgs)
                self._producer.poll(0)
                now = time.monotonic()
                if now >= next_publish:
                    self._publish()
                    next_publish = now + opts.publish_every_s
                if now >= next_summary:
                    logger.info("trainer summary labels=%d published=%d", self.learned,
                                self.published)  # fmt: skip
                    next_summary = now + opts.summary_every_s
            self._publish()
        finally:
            self._consumer.close()
