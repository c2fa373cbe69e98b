"""The detector's producer side: Scores, Flags and dead letters, tracked per consumed batch.

Every output is counted against the batch whose record caused it (:class:`OffsetTracker`), so
the loop stores a batch's offsets only once all its outputs were acknowledged. Exactly-once,
each batch is also one Kafka transaction: :meth:`Outputs.open` begins it and
:meth:`Outputs.commit` commits it together with the batch's consumed offsets.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Sequence
from functools import partial

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from fraudstream.errors import KafkaClientError
from fraudstream.events import DeadLetter, Rejection, Score, encode_score
from fraudstream.settings import KafkaSettings, TopicSettings
from fraudstream.stream.config import client_config
from fraudstream.stream.metrics import DetectorMetrics
from fraudstream.stream.offsets import OffsetTracker, PendingBatch
from fraudstream.stream.ports import LoopOptions
from fraudstream.stream.summary import LatencyWindow

__all__ = ["Outputs", "dead_letter_of"]

logger = logging.getLogger(__name__)
Delivered = partial[None]  # the delivery callback of one batch


def dead_letter_of(msg: Message, rejection: Rejection) -> DeadLetter:
    """The dead letter of a consumed record: its reason, original bytes and source offset."""
    return DeadLetter.from_rejection(
        rejection,
        topic=msg.topic() or "",
        partition=msg.partition() or 0,
        offset=msg.offset() or 0,
        value=msg.value(),
        key=msg.key(),
        timestamp_ms=msg.timestamp()[1],
        failed_at_ms=time.time_ns() // 1_000_000,
    )


class Outputs:
    """One producer for the loop's Scores, Flags and dead letters; see the module docstring.

    Args:
        window: Where each Score's processing time, flags and budget misses are counted.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        topics: TopicSettings,
        metrics: DetectorMetrics,
        options: LoopOptions,
        window: LatencyWindow,
    ) -> None:
        self._topics = topics
        self._metrics = metrics
        self._options = options
        self._window = window
        self.tracker = OffsetTracker()
        self.eos = options.guarantee == "exactly-once"
        self.scored = 0  # Scores produced since start
        self.delivery_error: KafkaError | None = None
        config = client_config(kafka, "producer")
        if self.eos:
            name = options.instance_id or socket.gethostname()
            config["transactional.id"] = f"{options.group_id}.{name}"
        self._producer = Producer(config)
        if self.eos:
            try:  # fences an older process with this id and aborts what it left open
                self._producer.init_transactions(options.transaction_timeout_s)
            except KafkaException as exc:
                raise KafkaClientError(f"cannot start Kafka transactions: {exc}") from exc
            logger.info("exactly-once transactional.id=%s", config["transactional.id"])

    def open(self, next_offsets: dict[tuple[str, int], int]) -> tuple[PendingBatch, Delivered]:
        """Start a batch (and, exactly-once, its transaction); ``next_offsets`` fills as it is
        read. Returns the batch and the delivery callback its outputs report to."""
        if self.eos:
            self._producer.begin_transaction()
        batch = self.tracker.open(next_offsets)
        return batch, partial(self._on_delivery, batch)

    def _on_delivery(self, batch: PendingBatch, err: KafkaError | None, _msg: Message) -> None:
        if err is None:
            OffsetTracker.delivered(batch)
            return
        OffsetTracker.failed(batch)
        if self.eos:  # the transaction's commit fails on it and is aborted, then retried
            logger.warning("delivery failed in a transaction error=%s", err)
            return
        self.delivery_error = err
        logger.error("delivery failed error=%s", err)

    def produce(
        self, topic: str, value: bytes, key: bytes | None, batch: PendingBatch, cb: Delivered,
        headers: list[tuple[str, str | bytes | None]] | None = None,
    ) -> None:  # fmt: skip
        """Produce one output of ``batch``; waits while the producer's queue is full."""
        OffsetTracker.expect(batch)
        while True:
            try:
                self._producer.produce(topic, value, key, on_delivery=cb, headers=headers)
                return
            except BufferError:  # queue full: serve delivery reports, then retry
                self._producer.poll(0.01)

    def dead_letter(
        self, msg: Message, rejection: Rejection, batch: PendingBatch, cb: Delivered
    ) -> None:
        """Send ``msg`` to the dead-letter topic with the reason it was refused."""
        dead = dead_letter_of(msg, rejection)
        self.produce(self._topics.dead_letters, dead.to_json(), msg.key(), batch, cb,
                     dead.headers())  # fmt: skip
        self._metrics.dead_letters.labels(dead.source_topic, rejection.reason).inc()

    def publish_scores(
        self, scores: Sequence[Score], msgs: Sequence[Message], batch: PendingBatch,
        cb: Delivered, received_ns: int,
    ) -> None:  # fmt: skip
        """One Score each to ``scores``, the flagged ones to ``flags`` too; processing time
        (since ``received_ns``), end-to-end latency and budget misses measured per Score."""
        topics, m, window = self._topics, self._metrics, self._window
        budget_us = self._options.budget_us
        now_ms = time.time_ns() // 1_000_000
        flags = misses = 0
        for score, msg in zip(scores, msgs, strict=True):
            value = encode_score(score)
            key = msg.key()
            self.produce(topics.scores, value, key, batch, cb)
            if score.flagged:
                self.produce(topics.flags, value, key, batch, cb)
                flags += 1
            processing_us = (time.perf_counter_ns() - received_ns) // 1000
            window.add(processing_us)
            m.processing.observe(processing_us / 1e6)
            if processing_us > budget_us:
                misses += 1
            ts_type, ts = msg.timestamp()
            if ts_type != 0 and ts > 0:
                m.end_to_end.observe(max(0, now_ms - ts) / 1000)
        self.scored += len(scores)
        m.transactions.inc(len(scores))
        m.scores.inc(len(scores))
        if flags:
            m.flags.inc(flags)
            window.flags += flags
        if misses:
            m.budget_misses.inc(misses)
            window.misses += misses

    def commit(self, consumer: Consumer, next_offsets: dict[tuple[str, int], int]) -> bool:
        """Exactly-once: commit the open transaction with ``consumer``'s offsets.

        Retriable errors are retried. An abortable one (a failed delivery, a timed-out
        transaction) aborts the transaction and returns False: the caller rewinds ``consumer``
        to its committed offsets, so the batch is consumed and produced again. Anything else
        (fenced by a newer process) is fatal.
        """
        offsets = [TopicPartition(t, p, o) for (t, p), o in next_offsets.items()]
        timeout = self._options.transaction_timeout_s
        for attempt in range(1, 6):
            try:
                if offsets:
                    self._producer.send_offsets_to_transaction(
                        offsets, consumer.consumer_group_metadata(), timeout
                    )
                    offsets = []  # sent: a retried commit does not send them again
                self._producer.commit_transaction(timeout)
                return True
            except KafkaException as exc:
                err: KafkaError = exc.args[0]
                if err.txn_requires_abort():
                    logger.warning("transaction aborted, batch will be redone error=%s", err)
                    self._abort()
                    return False
                if not err.retriable() or attempt == 5:
                    raise KafkaClientError(f"transaction commit failed: {err}") from exc
                logger.warning("transaction commit retried attempt=%d error=%s", attempt, err)
        raise AssertionError("unreachable")

    def _abort(self) -> None:
        try:
            self._producer.abort_transaction(self._options.transaction_timeout_s)
        except KafkaException as exc:
            raise KafkaClientError(f"transaction abort failed: {exc}") from exc
        self.tracker.clear()
        self._metrics.aborted_transactions.inc()

    def poll(self, timeout_s: float = 0.0) -> None:
        """Serve delivery reports; raise if an output could not be delivered."""
        self._producer.poll(timeout_s)
        if self.delivery_error is not None:
            raise KafkaClientError(f"output delivery failed: {self.delivery_error}")

    def flush(self, timeout_s: float) -> None:
        """Wait for every output in flight (logged if some are still undelivered)."""
        remaining = self._producer.flush(timeout_s)
        if remaining:
            logger.error("undelivered outputs after flush count=%d", remaining)
