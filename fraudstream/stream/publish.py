"""Publish transactions at a steady rate, with each label released after a delay in event time.

Used by ``fraudstream simulate --publish`` and, later, the demo and the benchmarks. Pacing is
open-loop: record *i* is due at ``start + i / rate`` whatever happened before, so a slow broker
shows up as lag, not as a silently lower rate.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

import orjson
from confluent_kafka import KafkaError, Message, Producer

from fraudstream.errors import KafkaClientError
from fraudstream.settings import KafkaSettings, TopicSettings
from fraudstream.stream.config import client_config

__all__ = ["PublishStats", "Publisher", "RecordSink", "publish_stream"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class PublishStats:
    """What a publish run sent and what the broker acknowledged."""

    transactions: int = 0
    labels: int = 0
    delivered: int = 0
    failed: int = 0
    behind_schedule_s: float = 0.0


class RecordSink(Protocol):
    """Where :func:`publish_stream` sends records: a :class:`Publisher` in production."""

    stats: PublishStats

    def send(self, topic: str, value: bytes, key: bytes | None = None) -> None: ...
    def poll(self) -> None: ...
    def flush(self, timeout_s: float = 30.0) -> int: ...


class Publisher:
    """A producer that counts deliveries and fails loudly on fatal client errors."""

    def __init__(self, settings: KafkaSettings, *, extra: Mapping[str, str] | None = None) -> None:
        config = client_config(settings, "producer")
        config.update(extra or {})
        self._producer = Producer(config)
        self.stats = PublishStats()

    def _on_delivery(self, err: KafkaError | None, _msg: Message) -> None:
        if err is None:
            self.stats.delivered += 1
            return
        self.stats.failed += 1
        if err.fatal():
            raise KafkaClientError(f"fatal producer error: {err}")
        logger.warning("delivery failed error=%s", err)

    def send(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        """Queue one record; when the local queue is full, serve callbacks and retry."""
        while True:
            try:
                self._producer.produce(topic, value, key, on_delivery=self._on_delivery)
                return
            except BufferError:
                self._producer.poll(0.05)

    def poll(self) -> None:
        """Serve delivery callbacks without blocking."""
        self._producer.poll(0)

    def flush(self, timeout_s: float = 30.0) -> int:
        """Wait for every queued record; return how many are still undelivered."""
        remaining: int = self._producer.flush(timeout_s)
        return remaining


def publish_stream(
    records: Iterable[Mapping[str, object]],
    publisher: RecordSink,
    topics: TopicSettings,
    *,
    rate: float | None,
    label_delay_ms: int | None,
    drain_labels: bool = True,
    on_progress: Callable[[int], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    start: float | None = None,
) -> PublishStats:
    """Publish wire transactions (with ``is_fraud``) and their labels.

    Each input record is a wire Transaction dict plus the evaluation fields ``is_fraud`` and
    ``fraud_scenario``, which are stripped before publishing. With ``label_delay_ms`` set, a Label
    for every transaction is published once the *event time* of the stream reaches the
    transaction's time plus the delay (so a replay at any rate releases labels at the same point
    of the stream); ``label_time`` is that due time. With ``rate`` set, transactions are paced
    open-loop at that many per second: record ``i`` is due at ``start + i / rate`` on ``clock``
    (``start`` defaults to now; a benchmark passes its own to measure from the intended send
    time), and a publisher that falls behind sends at once, never shifting the schedule.
    """
    pending: list[tuple[int, str, bytes, bytes]] = []  # (due_ms, tx id, key, label bytes)
    if start is None:
        start = clock()
    interval = 1.0 / rate if rate else 0.0
    stats = publisher.stats
    for i, record in enumerate(records):
        if interval:
            due = start + i * interval
            ahead = due - clock()
            if ahead > 0.0005:
                sleep(ahead)
            elif ahead < 0:
                stats.behind_schedule_s = max(stats.behind_schedule_s, -ahead)
        event_ms = record["timestamp"]
        if not isinstance(event_ms, int):
            raise TypeError(f"expected epoch-ms integer timestamps; got {event_ms!r}")
        # Release every label whose due time the stream's event time has reached, before this
        # transaction: the detector never sees a label earlier than it would live.
        while pending and pending[0][0] <= event_ms:
            _, _, label_key, label = heapq.heappop(pending)
            publisher.send(topics.labels, label, label_key)
            stats.labels += 1
        tx = {k: v for k, v in record.items() if k not in ("is_fraud", "fraud_scenario")}
        key = str(record["card_id"]).encode()
        publisher.send(topics.transactions, orjson.dumps(tx), key)
        stats.transactions += 1
        if label_delay_ms is not None:
            due_ms = event_ms + label_delay_ms
            label_obj = {
                "transaction_id": record["transaction_id"],
                "is_fraud": bool(record["is_fraud"]),
                "card_id": record["card_id"],
                "label_time": due_ms,
                "source": "analyst",
            }
            heapq.heappush(
                pending, (due_ms, str(record["transaction_id"]), key, orjson.dumps(label_obj))
            )
        if i % 1000 == 999:
            publisher.poll()
            if on_progress is not None:
                on_progress(1000)
    if drain_labels:
        while pending:
            _, _, label_key, label = heapq.heappop(pending)
            publisher.send(topics.labels, label, label_key)
            stats.labels += 1
    undelivered = publisher.flush()
    if undelivered:
        raise KafkaClientError(f"{undelivered} records were not delivered before the timeout")
    logger.info(
        "published transactions=%d labels=%d delivered=%d failed=%d",
        stats.transactions,
        stats.labels,
        stats.delivered,
        stats.failed,
    )
    return stats
