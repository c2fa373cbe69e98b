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
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from fraudstream.errors import KafkaClientError
from fraudstream.events import (
    DeadLetter,
    Label,
    Rejection,
    Score,
    Transaction,
    decode_label,
    decode_transaction,
    encode_score,
)
from fraudstream.settings import Guarantee, KafkaSettings, LimitSettings, TopicSettings
from fraudstream.stream.align import EventTimeMerge, Source
from fraudstream.stream.config import client_config
from fraudstream.stream.metrics import DetectorMetrics, HealthState
from fraudstream.stream.models import ModelFeed
from fraudstream.stream.offsets import OffsetTracker, PendingBatch
from fraudstream.stream.summary import LatencyWindow

__all__ = [
    "BatchScorer",
    "DetectorLoop",
    "LabelLearner",
    "LoopOptions",
    "ModelSink",
    "dead_letter_of",
]

logger = logging.getLogger(__name__)

_Entry = tuple[Message, Transaction | Rejection, int]  # consumed record, decoded, consumed at


class BatchScorer(Protocol):
    """Scores a batch of valid transactions (features + model), one result each, in order: a
    Score, or a Rejection for a transaction refused only at scoring (an id reused)."""

    def score_batch(
        self, batch: Sequence[Transaction], received_ns: int
    ) -> Sequence[Score | Rejection]: ...


class ModelSink(Protocol):
    """Takes a published model version (signed bytes) and swaps it in if it verifies."""

    def offer_model(self, blob: bytes) -> None: ...


class LabelLearner(Protocol):
    """Takes labels from the feedback topic; returns counts by outcome (applied, unknown...)."""

    def learn(self, labels: Sequence[Label]) -> dict[str, int]: ...


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


@dataclass(frozen=True, slots=True)
class LoopOptions:
    """Tuning of the run loop."""

    group_id: str = "fraudstream-detector"
    batch_size: int = 500
    poll_timeout_s: float = 0.005
    budget_us: int = 1000
    summary_every_s: float = 10.0
    lag_every_s: float = 5.0
    align: bool = True  # event-time alignment of the inputs (stream/align.py)
    max_skew_ms: int = 21_600_000
    label_lead_ms: int = 86_400_000  # how far labels may run ahead of the transactions
    label_lag_ms: int = 60_000  # how far transactions may run ahead of labels still to read
    idle_after_s: float = 5.0
    # Labels are read at most this often (sooner while full batches are waiting): they are
    # days late anyway, and each label batch costs Redis round trips and, exactly-once, a
    # Kafka transaction, so few large batches cost far less than many small ones.
    label_interval_s: float = 0.1
    queue_cap: int = 5000  # records queued per partition before it is paused
    guarantee: Guarantee = "at-least-once"
    # This process's stable name: one per running process, kept across its restarts (a pod
    # name). Set, it is the consumers' group.instance.id (static membership: a restarted
    # process takes its partitions back at once instead of after the session timeout).
    # Exactly-once: the transactional.id is "{group_id}.{instance_id or host name}", so a
    # restart aborts what the crashed process left open.
    instance_id: str = ""
    transaction_timeout_s: float = 60.0  # how long a commit or abort may take before failing


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
        options: LoopOptions = LoopOptions(),
        models: ModelSink | None = None,
    ) -> None:
        self._topics = topics
        self._limits = limits
        self._scorer = scorer
        self._learner = learner
        self._metrics = metrics
        self._health = health
        self._options = options
        self._tracker = OffsetTracker()
        self._eos = options.guarantee == "exactly-once"
        producer_config = client_config(kafka, "producer")
        consumer_config = client_config(kafka, "consumer")
        if options.instance_id:
            consumer_config["group.instance.id"] = options.instance_id
        if self._eos:
            name = options.instance_id or socket.gethostname()
            producer_config["transactional.id"] = f"{options.group_id}.{name}"
            consumer_config["enable.auto.commit"] = False  # offsets go in the transactions
            consumer_config["isolation.level"] = "read_committed"
        self._producer = Producer(producer_config)
        if self._eos:
            try:  # fences an older process with this id and aborts what it left open
                self._producer.init_transactions(options.transaction_timeout_s)
            except KafkaException as exc:
                raise KafkaClientError(f"cannot start Kafka transactions: {exc}") from exc
            logger.info("exactly-once transactional.id=%s", producer_config["transactional.id"])
        self._consumer = Consumer({**consumer_config, "group.id": options.group_id})
        self._labels: Consumer | None = None
        if learner is not None:
            # Its own group: every detector process sees every label (one model per process
            # until a trainer role publishes versions).
            self._labels = Consumer({**consumer_config, "group.id": f"{options.group_id}.labels"})
        self._merge: EventTimeMerge[_Entry] | None = None
        if options.align:
            self._merge = EventTimeMerge(
                topics.labels if learner is not None else None,
                options.max_skew_ms,
                options.label_lead_ms,
                options.idle_after_s,
                options.label_lag_ms,
                options.queue_cap,
            )
        self.window = LatencyWindow()
        self.scored = 0  # Scores produced since start (the tests' and the view's progress)
        self._delivery_error: KafkaError | None = None
        self._assigned: set[Source] = set()  # both consumers' partitions, kept by the callbacks
        self._labels_joined = False  # the labels consumer has had an assignment
        self._by_topic = {topics.transactions: self._consumer}
        if self._labels is not None:
            self._by_topic[topics.labels] = self._labels
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

    # -- outputs ------------------------------------------------------------------------
    def _on_delivery(self, batch: PendingBatch, err: KafkaError | None, _msg: Message) -> None:
        if err is None:
            OffsetTracker.delivered(batch)
            return
        OffsetTracker.failed(batch)
        if self._eos:  # the transaction's commit fails on it and is aborted, then retried
            logger.warning("delivery failed in a transaction error=%s", err)
            return
        self._delivery_error = err
        logger.error("delivery failed error=%s", err)

    def _produce(
        self, topic: str, value: bytes, key: bytes | None, batch: PendingBatch, cb: partial[None],
        headers: list[tuple[str, str | bytes | None]] | None = None,
    ) -> None:  # fmt: skip
        OffsetTracker.expect(batch)
        while True:
            try:
                self._producer.produce(topic, value, key, on_delivery=cb, headers=headers)
                return
            except BufferError:
                # Local queue full: serve delivery reports (frees room), then retry.
                self._producer.poll(0.01)

    def _dead_letter(
        self, msg: Message, rejection: Rejection, batch: PendingBatch, cb: partial[None]
    ) -> None:
        dead = dead_letter_of(msg, rejection)
        self._produce(
            self._topics.dead_letters, dead.to_json(), msg.key(), batch, cb, dead.headers()
        )
        self._metrics.dead_letters.labels(dead.source_topic, rejection.reason).inc()

    # -- batches ------------------------------------------------------------------------
    def _read_transactions(self, msgs: list[Message], received_ns: int) -> list[_Entry]:
        """Decode a consumed batch (consumer errors are logged and skipped)."""
        entries: list[_Entry] = []
        limits = self._limits
        for msg in msgs:
            err = msg.error()
            if err is not None:
                if err.fatal():
                    raise KafkaClientError(f"fatal consumer error: {err}")
                logger.warning("consumer error=%s", err)
                continue
            entries.append((msg, decode_transaction(msg.value() or b"", limits), received_ns))
        return entries

    def _handle_transactions(self, entries: list[_Entry]) -> None:
        """Dead-letter the rejected, score the valid, produce; offsets follow delivery."""
        next_offsets: dict[tuple[str, int], int] = {}
        good: list[Transaction] = []
        good_msgs: list[Message] = []
        if self._eos:
            self._producer.begin_transaction()
        batch = self._tracker.open(next_offsets)
        cb = partial(self._on_delivery, batch)
        received_ns = min(e[2] for e in entries)  # a record that waited in the merge counts it
        for msg, result, _ in entries:
            next_offsets[(msg.topic() or "", msg.partition() or 0)] = (msg.offset() or 0) + 1
            if isinstance(result, Rejection):
                self._dead_letter(msg, result, batch, cb)
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
                    self._dead_letter(msg, outcome, batch, cb)
                else:
                    scores.append(outcome)
                    scored_msgs.append(msg)
            self._publish_scores(scores, scored_msgs, batch, cb, received_ns)
        OffsetTracker.seal(batch)
        if self._eos:
            self._commit_transaction(self._consumer, next_offsets)

    def _publish_scores(
        self, scores: Sequence[Score], msgs: Sequence[Message], batch: PendingBatch,
        cb: partial[None], received_ns: int,
    ) -> None:  # fmt: skip
        topics, m = self._topics, self._metrics
        budget_us = self._options.budget_us
        now_ms = time.time_ns() // 1_000_000
        flags = misses = 0
        for score, msg in zip(scores, msgs, strict=True):
            value = encode_score(score)
            key = msg.key()
            self._produce(topics.scores, value, key, batch, cb)
            if score.flagged:
                self._produce(topics.flags, value, key, batch, cb)
                flags += 1
            processing_us = (time.perf_counter_ns() - received_ns) // 1000
            self.window.add(processing_us)
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
            self.window.flags += flags
        if misses:
            m.budget_misses.inc(misses)
            self.window.misses += misses

    def _handle_labels(self, msgs: list[Message]) -> None:
        assert self._learner is not None
        labels: list[Label] = []
        next_offsets: dict[tuple[str, int], int] = {}
        if self._eos:
            self._producer.begin_transaction()
        batch = self._tracker.open(next_offsets)
        cb = partial(self._on_delivery, batch)
        for msg in msgs:
            if msg.error() is not None:
                logger.warning("labels consumer error=%s", msg.error())
                continue
            source = (msg.topic() or "", msg.partition() or 0)
            next_offsets[source] = (msg.offset() or 0) + 1
            result = decode_label(msg.value() or b"", self._limits)
            if isinstance(result, Rejection):
                self._dead_letter(msg, result, batch, cb)
                event_ms = None
            else:
                labels.append(result)
                event_ms = result.label_time_ms
            if self._merge is not None:
                self._merge.observe(source, event_ms)
        if labels:
            for outcome, n in self._learner.learn(labels).items():
                if n:
                    self._metrics.labels.labels(outcome).inc(n)
        # Sealed after learning: the labels' offsets are stored only once they were learned
        # (or dead-lettered and delivered).
        OffsetTracker.seal(batch)
        if self._eos:
            assert self._labels is not None
            self._commit_transaction(self._labels, next_offsets)

    # -- transactions (exactly-once) ----------------------------------------------------
    def _commit_transaction(
        self, consumer: Consumer, next_offsets: dict[tuple[str, int], int]
    ) -> None:
        """Commit the open transaction with ``consumer``'s offsets; abort and rewind if asked.

        Retriable errors are retried; an abortable one (a failed delivery, a timed-out
        transaction) aborts and rewinds ``consumer`` to its committed offsets, so the batch is
        consumed and produced again; anything else (fenced by a newer process) is fatal.
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
                return
            except KafkaException as exc:
                err: KafkaError = exc.args[0]
                if err.txn_requires_abort():
                    logger.warning("transaction aborted, batch will be redone error=%s", err)
                    self._abort_and_rewind(consumer)
                    return
                if not err.retriable() or attempt == 5:
                    raise KafkaClientError(f"transaction commit failed: {err}") from exc
                logger.warning("transaction commit retried attempt=%d error=%s", attempt, err)

    def _abort_and_rewind(self, consumer: Consumer) -> None:
        try:
            self._producer.abort_transaction(self._options.transaction_timeout_s)
        except KafkaException as exc:
            raise KafkaClientError(f"transaction abort failed: {exc}") from exc
        self._tracker.clear()
        assignment = consumer.assignment()
        if self._merge is not None:  # queued records are consumed again after the seek
            self._merge.forget((tp.topic, tp.partition) for tp in assignment)
        for tp in consumer.committed(assignment, timeout=self._options.transaction_timeout_s):
            if tp.offset < 0:  # nothing committed yet: auto.offset.reset is earliest
                tp.offset = OFFSET_BEGINNING
            consumer.seek(tp)
        self._metrics.aborted_transactions.inc()

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
        remaining = self._producer.flush(timeout_s)
        if remaining:
            logger.error("undelivered outputs after flush count=%d", remaining)
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

    def _backlog(self, source: Source) -> bool:
        """Whether the broker holds more of ``source`` than was read (cached watermarks)."""
        consumer = self._by_topic[source[0]]
        tp = TopicPartition(*source)
        low, high = consumer.get_watermark_offsets(tp, cached=True)
        if high < 0:
            return True  # not known yet: assume there is more
        position = consumer.position([tp])[0].offset
        return position < high if position >= 0 else low < high

    def _release(self, merge: EventTimeMerge[_Entry]) -> list[_Entry]:
        """Queued transactions the merge lets through now, and pauses/resumes it asks for."""
        now = time.monotonic()
        if now >= self._next_plan:  # also makes every assigned partition known to the merge
            self._next_plan = now + 0.01  # pauses (full queues, labels far ahead): no hurry
            self._apply_plan(merge)
        if (
            self._labels is not None
            and not self._labels_joined
            and now - self._run_started < self._options.idle_after_s
        ):
            return []  # the labels consumer has not joined yet: labels due first could be missed
        return merge.release(self._backlog, self._options.batch_size)

    def _apply_plan(self, merge: EventTimeMerge[_Entry]) -> None:
        """Pause and resume what the merge asks for (full queues, labels too far ahead)."""
        plan = merge.plan(self._assigned, self._backlog)
        for sources, action in ((plan.pause, "pause"), (plan.resume, "resume")):
            by_topic: dict[str, list[TopicPartition]] = {}
            for topic, partition in sources:
                by_topic.setdefault(topic, []).append(TopicPartition(topic, partition))
            for topic, tps in by_topic.items():
                getattr(self._by_topic[topic], action)(tps)
        if plan.pause:
            self._metrics.alignment_pauses.inc(len(plan.pause))
            logger.debug("aligned pause=%s resume=%s", sorted(plan.pause), sorted(plan.resume))

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
                self._producer.poll(0)
                if self._delivery_error is not None:
                    raise KafkaClientError(f"output delivery failed: {self._delivery_error}")
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
