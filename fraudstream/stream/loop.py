"""The detector's run loop: consume a batch, dead-letter bad records, score, produce, commit.

Delivery semantics, by ``LoopOptions.guarantee``:

- at-least-once (default): a consumed offset is stored only after every output it caused
  (Score, Flag or dead letter) was acknowledged, and stored offsets are committed in the
  background, on partition revocation and at shutdown. After a crash, records after the last
  commit are consumed again: the feature store recognises their transaction ids (no double
  counting) and the outputs are produced again with the same transaction id.
- exactly-once: each batch's outputs and its consumed offsets go in one Kafka transaction
  (``send_offsets_to_transaction``), committed before the next batch is consumed, so a
  ``read_committed`` consumer sees each output once. An aborted transaction rewinds the
  consumer to its committed offsets; the records are consumed again and, being known to the
  feature store by id, score the same. A batch never spans a rebalance: nothing is in flight
  when partitions are revoked.
"""

from __future__ import annotations

import logging
import threading
import time

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from fraudstream.errors import KafkaClientError
from fraudstream.events import (
    Label,
    Rejection,
    Score,
    Transaction,
    decode_label,
    decode_transaction,
)
from fraudstream.settings import KafkaSettings, LimitSettings, TopicSettings
from fraudstream.stream.align import EventTimeMerge, Source
from fraudstream.stream.config import client_config
from fraudstream.stream.flow import ConsumerFlow, committed, owned
from fraudstream.stream.metrics import DetectorMetrics, HealthState
from fraudstream.stream.models import ModelFeed
from fraudstream.stream.offsets import OffsetTracker
from fraudstream.stream.outputs import Outputs
from fraudstream.stream.ports import BatchScorer, LabelLearner, LoopOptions, ModelSink
from fraudstream.stream.summary import LatencyWindow

__all__ = ["BatchScorer", "DetectorLoop", "LabelLearner", "LoopOptions", "ModelSink"]

logger = logging.getLogger(__name__)

_Entry = tuple[Message, Transaction | Rejection, int]  # consumed record, decoded, consumed at


class DetectorLoop:
    """One consumer-group member on the transactions topic, plus a labels consumer."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topics: TopicSettings,
        limits: LimitSettings,
        scorer: BatchScorer,
        learner: LabelLearner | None,
        metrics: DetectorMetrics,
        health: HealthState,
        options: LoopOptions | None = None,
        models: ModelSink | None = None,
    ) -> None:
        options = options or LoopOptions()
        self._topics = topics
        self._limits = limits
        self._scorer = scorer
        self._learner = learner
        self._metrics = metrics
        self._health = health
        self._options = options
        self.window = LatencyWindow()
        self._outputs = Outputs(kafka, topics, metrics, options, self.window)
        self._tracker = self._outputs.tracker
        self._eos = self._outputs.eos
        consumer_config = client_config(kafka, "consumer")
        if options.instance_id:
            consumer_config["group.instance.id"] = options.instance_id
        if self._eos:
            consumer_config["enable.auto.commit"] = False  # offsets go in the transactions
            consumer_config["isolation.level"] = "read_committed"
        self._consumer = Consumer({**consumer_config, "group.id": options.group_id})
        self._labels: Consumer | None = None
        if learner is not None:
            # Its own group: every detector process sees every label (one model per process
            # until a trainer role publishes versions).
            self._labels = Consumer({**consumer_config, "group.id": f"{options.group_id}.labels"})
        self._merge: EventTimeMerge[_Entry] | None = None
        if options.align:
            labels_topic = topics.labels if learner is not None else None
            self._merge = EventTimeMerge(labels_topic, options.max_skew_ms, options.label_lead_ms,
                                         options.idle_after_s, options.label_lag_ms,
                                         options.queue_cap)  # fmt: skip
        self._assigned: set[Source] = set()  # both consumers' partitions, kept by the callbacks
        self._labels_joined = False  # the labels consumer has had an assignment
        self._handled: dict[Source, int] = {}  # labels re-read after a restore: committed offsets
        self._by_topic = {topics.transactions: self._consumer}
        if self._labels is not None:
            self._by_topic[topics.labels] = self._labels
        self._flow = ConsumerFlow(self._by_topic, metrics)
        self._next_plan = 0.0
        self._run_started = 0.0  # monotonic, set by run()
        # Scorer role: follow the versions the trainer publishes (the newest one first).
        self._models = models
        self._feed = ModelFeed(kafka, topics.models) if models is not None else None
        self._next_feed = 0.0

    # -- partitions ---------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._health.assigned = True
        self._assigned.update((p.topic, p.partition) for p in partitions)
        logger.info("assigned partitions=%s", [p.partition for p in partitions])

    def _on_labels_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._labels_joined = True
        self._assigned.update((p.topic, p.partition) for p in partitions)
        # Restored from a checkpoint: read on from what it has learned (or still holds), not
        # from the committed offsets, which may be ahead of it.
        assert self._learner is not None
        resumed = False
        for p in partitions:
            offset = self._learner.resume_offset(p.topic, p.partition)
            if offset is not None:
                p.offset, resumed = offset, True
        if resumed:
            # Below the committed offsets every record was handled before the restart, its dead
            # letter delivered: read again for the model, they are not dead-lettered twice.
            self._handled = committed(consumer, partitions)
            consumer.assign(partitions)
            logger.info("labels resumed from the checkpoint %s committed=%s",
                        [(p.partition, p.offset) for p in partitions],
                        sorted(self._handled.items()))  # fmt: skip

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Finish what was produced for these partitions so their offsets can be committed
        # before another member takes them over: no loss, and no duplicate beyond in-flight.
        # (Exactly-once: every batch was committed in its transaction before this poll.)
        if not self._eos:
            self._drain(30.0)
            self._commit()
        self._tracker.clear()
        self._forget(partitions)
        logger.info("revoked partitions=%s", [p.partition for p in partitions])

    def _forget(self, partitions: list[TopicPartition]) -> None:
        self._assigned.difference_update((p.topic, p.partition) for p in partitions)
        if self._merge is not None:
            dropped = self._merge.forget((p.topic, p.partition) for p in partitions)
            if dropped:
                logger.info("dropped queued records of revoked partitions count=%d", dropped)

    @property
    def scored(self) -> int:
        """Scores produced since start (the tests' and the live view's progress)."""
        return self._outputs.scored

    # -- batches ------------------------------------------------------------------------
    def _read_transactions(self, msgs: list[Message], received_ns: int) -> list[_Entry]:
        """Decode a consumed batch (consumer errors are logged and skipped)."""
        limits = self._limits
        return [
            (msg, decode_transaction(msg.value() or b"", limits), received_ns)
            for msg in owned(msgs, self._assigned)
        ]

    def _handle_transactions(self, entries: list[_Entry]) -> None:
        """Dead-letter the rejected, score the valid, produce; offsets follow delivery."""
        next_offsets: dict[tuple[str, int], int] = {}
        good: list[Transaction] = []
        good_msgs: list[Message] = []
        out = self._outputs
        batch, cb = out.open(next_offsets)
        received_ns = min(e[2] for e in entries)  # a record that waited in the merge counts it
        for msg, result, _ in entries:
            next_offsets[(msg.topic() or "", msg.partition() or 0)] = (msg.offset() or 0) + 1
            if isinstance(result, Rejection):
                out.dead_letter(msg, result, batch, cb)
            else:
                good.append(result)
                good_msgs.append(msg)
        self._metrics.batch_size.observe(len(entries))
        if good:
            results = self._scorer.score_batch(good, received_ns)
            scores: list[Score] = []
            scored_msgs: list[Message] = []
            for outcome, msg in zip(results, good_msgs, strict=True):
                if isinstance(outcome, Rejection):
                    out.dead_letter(msg, outcome, batch, cb)
                else:
                    scores.append(outcome)
                    scored_msgs.append(msg)
            out.publish_scores(scores, scored_msgs, batch, cb, received_ns)
        OffsetTracker.seal(batch)
        if self._eos and not out.commit(self._consumer, next_offsets):
            self._rewind(self._consumer)

    def _handle_labels(self, msgs: list[Message]) -> None:
        assert self._learner is not None
        labels: list[Label] = []
        next_offsets: dict[tuple[str, int], int] = {}
        batch, cb = self._outputs.open(next_offsets)
        for msg in owned(msgs, self._assigned):
            source = (msg.topic() or "", msg.partition() or 0)
            next_offsets[source] = (msg.offset() or 0) + 1
            result = decode_label(msg.value() or b"", self._limits)
            if isinstance(result, Rejection):
                if next_offsets[source] > self._handled.get(source, 0):
                    self._outputs.dead_letter(msg, result, batch, cb)
                event_ms = None
            else:
                labels.append(result)
                event_ms = result.label_time_ms
            if self._merge is not None:
                self._merge.observe(source, event_ms)
        if labels:
            for outcome, n in self._learner.learn(labels, next_offsets).items():
                if n:
                    self._metrics.labels.labels(outcome).inc(n)
        # Sealed after learning: the labels' offsets are stored only once they were learned
        # (or dead-lettered and delivered).
        OffsetTracker.seal(batch)
        if self._eos:
            assert self._labels is not None
            if not self._outputs.commit(self._labels, next_offsets):
                self._rewind(self._labels)

    # -- transactions (exactly-once) ----------------------------------------------------
    def _rewind(self, consumer: Consumer) -> None:
        """After an aborted transaction: consume again from the committed offsets."""
        assignment = consumer.assignment()
        if self._merge is not None:  # queued records are consumed again after the seek
            self._merge.forget((tp.topic, tp.partition) for tp in assignment)
        for tp in consumer.committed(assignment, timeout=self._options.transaction_timeout_s):
            if tp.offset < 0:  # nothing committed yet: auto.offset.reset is earliest
                tp.offset = OFFSET_BEGINNING
            consumer.seek(tp)

    # -- offsets ------------------------------------------------------------------------
    def _store_released(self) -> None:
        ready = self._tracker.release()
        if not ready or self._eos:  # exactly-once: the offsets went in the transactions
            return
        labels_topic = self._topics.labels
        tx = [TopicPartition(t, p, o) for (t, p), o in ready.items() if t != labels_topic]
        if tx:
            self._consumer.store_offsets(offsets=tx)
        if self._labels is not None:
            lb = [TopicPartition(t, p, o) for (t, p), o in ready.items() if t == labels_topic]
            if lb:
                self._labels.store_offsets(offsets=lb)

    def _drain(self, timeout_s: float) -> None:
        self._outputs.flush(timeout_s)
        self._store_released()

    def _commit(self) -> None:
        for consumer in (self._consumer, self._labels):
            if consumer is None:
                continue
            try:
                consumer.commit(asynchronous=False)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError._NO_OFFSET:
                    raise KafkaClientError(f"offset commit failed: {exc}") from exc

    def _update_lag(self) -> None:
        for tp in self._consumer.position(self._consumer.assignment()):
            _low, high = self._consumer.get_watermark_offsets(tp, cached=True)
            if tp.offset >= 0 and high >= 0:
                self._metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(
                    max(0, high - tp.offset)
                )

    def _release(self, merge: EventTimeMerge[_Entry]) -> list[_Entry]:
        """Queued transactions the merge lets through now, and pauses/resumes it asks for."""
        now = time.monotonic()
        if now >= self._next_plan:  # also makes every assigned partition known to the merge
            self._next_plan = now + 0.01  # pauses (full queues, labels far ahead): no hurry
            self._flow.apply(merge.plan(self._assigned, self._flow.backlog))
        if (
            self._labels is not None
            and not self._labels_joined
            and now - self._run_started < self._options.idle_after_s
        ):
            return []  # the labels consumer has not joined yet: labels due first could be missed
        return merge.release(self._flow.backlog, self._options.batch_size)

    # -- run ----------------------------------------------------------------------------
    def _next_batch(self) -> list[Message]:
        """What is already fetched (up to ``batch_size``), else the first record to arrive.

        ``consume(n, timeout)`` waits until it has ``n`` records or the timeout passed, so a
        large ``n`` with a timeout would hold every batch for the whole timeout. Latency first:
        take what is waiting without blocking; when nothing is, block for one record only and
        add whatever came with it. The batch grows by itself when the loop falls behind.
        """
        n = self._options.batch_size
        msgs = self._consumer.consume(n, 0)
        if msgs:
            return msgs
        msgs = self._consumer.consume(1, self._options.poll_timeout_s)
        if msgs and n > 1:
            msgs += self._consumer.consume(n - 1, 0)
        return msgs

    def _follow_models(self, timeout_s: float = 0.0) -> None:
        assert self._feed is not None
        assert self._models is not None
        blob = self._feed.poll(timeout_s)
        if blob is not None:
            self._models.offer_model(blob)

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set; then finish the batch, flush, commit and close."""
        opts = self._options
        if self._feed is not None and self._feed.has_versions:
            self._follow_models(10.0)  # the newest published version, before the first Score
        self._consumer.subscribe(
            [self._topics.transactions], on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        if self._labels is not None:
            self._labels.subscribe(
                [self._topics.labels],
                on_assign=self._on_labels_assign,
                on_revoke=lambda _c, parts: self._forget(parts),
            )
        next_summary = time.monotonic() + opts.summary_every_s
        next_lag = time.monotonic() + opts.lag_every_s
        next_labels = 0.0
        self._run_started = time.monotonic()
        merge = self._merge
        try:
            while not stop.is_set():
                # Labels first: read before the transactions are consumed, so their processing
                # is not counted in (or added to) the transactions' processing time, and, when
                # aligned, a transaction is released only once the labels due by its time were
                # read. Aligned, labels wait for the first transactions: until then there is no
                # event time to read them against.
                if (
                    self._labels is not None
                    and (merge is None or merge.has_reference())
                    and time.monotonic() >= next_labels
                ):
                    label_msgs = self._labels.consume(opts.batch_size, 0)
                    if label_msgs:
                        self._handle_labels(label_msgs)
                    if len(label_msgs) < opts.batch_size:  # a full batch: more may be waiting
                        next_labels = time.monotonic() + opts.label_interval_s
                msgs = self._next_batch()
                received_ns = time.perf_counter_ns()
                self._health.beat()
                entries = self._read_transactions(msgs, received_ns) if msgs else []
                if merge is not None:
                    for entry in entries:
                        msg, result = entry[0], entry[1]
                        event_ms = None if isinstance(result, Rejection) else result.timestamp_ms
                        merge.add((msg.topic() or "", msg.partition() or 0), event_ms, entry)
                    entries = self._release(merge)
                if entries:
                    self._handle_transactions(entries)
                self._outputs.poll(0)
                self._store_released()
                now = time.monotonic()
                if self._feed is not None and now >= self._next_feed:
                    self._follow_models()  # between batches: a swap never splits a batch
                    self._next_feed = now + 0.2
                if now >= next_lag:
                    self._update_lag()
                    next_lag = now + opts.lag_every_s
                if now >= next_summary:
                    logger.info("%s", self.window.summary_line(now))
                    next_summary = now + opts.summary_every_s
        finally:
            self._close()

    def _close(self) -> None:
        self._drain(30.0)
        try:
            if not self._eos:
                self._commit()
        finally:
            self._consumer.close()
            if self._labels is not None:
                self._labels.close()
            if self._feed is not None:
                self._feed.close()
        logger.info("stopped %s", self.window.totals_line())
