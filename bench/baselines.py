"""The throughput benchmark's baselines: the in-process limit and a naive implementation.

- In-process: the same features (the in-memory peer of the Redis engine, Python dicts) and the
  same scorer, fed decoded transactions and labels from memory: no Kafka, no Redis, no JSON.
- Naive: one record per ``poll()``, one Redis round trip per transaction and per label, and a
  synchronous produce (produce, then flush) per Score.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka import Consumer, Producer

from bench.procs import PARTITIONS, cleanup_run, feature_config, fresh_run, publish_backlog
from fraudstream import services
from fraudstream.app import Detector, build_scorer
from fraudstream.events import (
    Label,
    Score,
    Transaction,
    decode_label,
    decode_transaction,
    encode_score,
)
from fraudstream.features import MemoryFeatureStore, RedisFeatureStore
from fraudstream.features.client import redis_client
from fraudstream.settings import KafkaSettings, RedisSettings, Settings, TopicSettings
from fraudstream.stream import admin
from fraudstream.stream.config import client_config
from fraudstream.stream.publish import PublishStats, publish_stream

__all__ = ["run_in_process", "run_naive"]

STEADY_END = 0.9  # a measured window ends when this share of the input is done


class _ListSink:
    """A :class:`~fraudstream.stream.publish.RecordSink` keeping what would be published."""

    def __init__(self) -> None:
        self.stats = PublishStats()
        self.sent: list[tuple[str, bytes]] = []

    def send(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        self.sent.append((topic, value))

    def poll(self) -> None:
        """Nothing to serve."""

    def flush(self, timeout_s: float = 30.0) -> int:
        return 0


def run_in_process(
    records: Sequence[Mapping[str, object]],
    batch_size: int,
    label_delay_ms: int,
    settings: Settings,
) -> dict[str, Any]:
    """The in-process limit: memory features, the same scorer, decoded input, no I/O."""
    sink = _ListSink()
    topics = TopicSettings()
    publish_stream(
        records, sink, topics, rate=None, label_delay_ms=label_delay_ms, drain_labels=False
    )
    limits = settings.limits
    items: list[Transaction | Label] = []
    for topic, value in sink.sent:
        if topic == topics.transactions:
            tx = decode_transaction(value, limits)
            if isinstance(tx, Transaction):
                items.append(tx)
        else:
            label = decode_label(value, limits)
            if isinstance(label, Label):
                items.append(label)
    n = sum(isinstance(x, Transaction) for x in items)
    detector = Detector(
        MemoryFeatureStore(feature_config("mem", settings)),
        build_scorer(settings.model, settings.features.record_ttl_ms),
    )
    marks = (int(0.1 * n), int(STEADY_END * n))
    seen: list[tuple[int, float]] = []  # (transactions done, perf_counter) at each mark
    done = 0
    started = time.perf_counter()
    batch: list[Transaction] = []
    labels: list[Label] = []
    for item in [*items, None]:
        if isinstance(item, Label):
            labels.append(item)
            continue
        if item is not None:
            batch.append(item)
        if len(batch) < batch_size and item is not None:
            continue
        # Labels published before this batch's last transaction are learned first, as the
        # detector's aligned label consumer would have them by then.
        if labels:
            detector.learn(labels)
            labels = []
        if batch:
            detector.score_batch(batch, time.perf_counter_ns())
            done += len(batch)
            batch = []
        while len(seen) < len(marks) and done >= marks[len(seen)]:
            seen.append((done, time.perf_counter()))
    (d0, t0), (d1, t1) = seen
    if d1 == d0:  # too few batches for a middle: the whole run
        d0, t0 = 0, started
    return {
        "batch_size": batch_size,
        "transactions": n,
        "tx_per_s": round((d1 - d0) / max(t1 - t0, 1e-9), 1),
    }


def run_naive(
    endpoints: services.ServiceEndpoints,
    records: Sequence[Mapping[str, object]],
    label_delay_ms: int,
    warmup_s: float,
    seconds: float,
    settings: Settings,
) -> dict[str, Any]:
    """A naive consumer: one record per ``poll()``, one Redis call each, a flush per Score."""
    run, topics = fresh_run("tp-naive")
    bootstrap = endpoints.kafka_bootstrap
    admin.create_topics(bootstrap, topics.names(), PARTITIONS)
    kafka = KafkaSettings(bootstrap=bootstrap)
    limits = settings.limits
    try:
        publish_backlog(bootstrap, topics, records, label_delay_ms)
        store = RedisFeatureStore(
            redis_client(RedisSettings(url=endpoints.redis_url, key_prefix=run)),
            feature_config(run, settings),
        )
        detector = Detector(store, build_scorer(settings.model, settings.features.record_ttl_ms))
        consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": run, "auto.offset.reset": "earliest"}
        )
        consumer.subscribe([topics.transactions, topics.labels])
        producer = Producer(client_config(kafka, "producer"))
        scored = counted = 0
        first = counted_from = end = last = 0.0
        give_up = time.monotonic() + 60.0  # joining the group and the first fetch
        try:
            while time.monotonic() < (end if first else give_up):
                msg = consumer.poll(0.1)
                if msg is None or msg.error() is not None:
                    if msg is None and scored >= len(records):
                        break  # the whole backlog is done before the time is up
                    continue
                value = msg.value() or b""
                if msg.topic() == topics.labels:
                    label = decode_label(value, limits)
                    if isinstance(label, Label):
                        detector.learn([label])  # one Redis round trip per label
                    continue
                tx = decode_transaction(value, limits)
                if not isinstance(tx, Transaction):
                    continue
                [score] = detector.score_batch([tx], time.perf_counter_ns())  # one round trip
                if not isinstance(score, Score):
                    continue  # an id reused by another transaction: the loop dead-letters it
                out = encode_score(score)
                producer.produce(topics.scores, out, msg.key())
                if score.flagged:
                    producer.produce(topics.flags, out, msg.key())
                producer.flush(30)  # synchronous: wait for the broker's ack of this Score
                scored += 1
                last = time.monotonic()
                if not first:
                    first, counted_from, end = last, last + warmup_s, last + warmup_s + seconds
                elif last > counted_from:
                    counted += 1
        finally:
            consumer.close()
        window = min(last, end) - counted_from
    finally:
        cleanup_run(endpoints, topics, run)
    return {
        "scored": scored,
        "window_s": round(window, 2),
        "tx_per_s": round(counted / max(window, 1e-9), 1),
    }
