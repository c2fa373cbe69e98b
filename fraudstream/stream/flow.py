"""The consumers' side of the run loop: which records it owns, backlogs and pauses.

:class:`~fraudstream.stream.align.EventTimeMerge` decides from event times alone; this asks the
consumers whether a source has more on the broker than was read, and pauses and resumes the
partitions the merge's plan names.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from fraudstream.errors import KafkaClientError
from fraudstream.stream.align import Plan, Source
from fraudstream.stream.metrics import DetectorMetrics

__all__ = ["ConsumerFlow", "committed", "owned"]

logger = logging.getLogger(__name__)


class ConsumerFlow:
    """Backlogs and pauses of the detector's consumers, each found by the topic it reads."""

    def __init__(self, by_topic: dict[str, Consumer], metrics: DetectorMetrics) -> None:
        self._by_topic = by_topic
        self._metrics = metrics

    def backlog(self, source: Source) -> bool:
        """Whether the broker holds more of ``source`` than was read (cached watermarks)."""
        consumer = self._by_topic[source[0]]
        tp = TopicPartition(*source)
        low, high = consumer.get_watermark_offsets(tp, cached=True)
        if high < 0:
            return True  # not known yet: assume there is more
        position = consumer.position([tp])[0].offset
        return position < high if position >= 0 else low < high

    def apply(self, plan: Plan) -> None:
        """Pause and resume what the merge asks for (full queues, labels too far ahead)."""
        for sources, action in ((plan.pause, "pause"), (plan.resume, "resume")):
            by_topic: dict[str, list[TopicPartition]] = {}
            for topic, partition in sources:
                by_topic.setdefault(topic, []).append(TopicPartition(topic, partition))
            for topic, tps in by_topic.items():
                getattr(self._by_topic[topic], action)(tps)
        if plan.pause:
            self._metrics.alignment_pauses.inc(len(plan.pause))
            logger.debug("aligned pause=%s resume=%s", sorted(plan.pause), sorted(plan.resume))


def owned(msgs: list[Message], assigned: Collection[Source]) -> list[Message]:
    """The records of partitions still ``assigned``; consumer errors are logged and skipped.

    A ``consume()`` that serves a revocation part way returns the records it collected before
    it too: their partitions now belong to another member, which consumes them from the
    committed offsets, so they are not processed here (and their offsets never stored).
    """
    out: list[Message] = []
    foreign = 0
    for msg in msgs:
        err = msg.error()
        if err is not None:
            if err.fatal():
                raise KafkaClientError(f"fatal consumer error: {err}")
            logger.warning("consumer error=%s", err)
        elif (msg.topic(), msg.partition()) in assigned:
            out.append(msg)
        else:
            foreign += 1
    if foreign:
        logger.info("records of revoked partitions dropped count=%d", foreign)
    return out


def committed(consumer: Consumer, partitions: list[TopicPartition],
              timeout_s: float = 10.0) -> dict[Source, int]:  # fmt: skip
    """The group's committed offsets of ``partitions`` (those with one); ``{}`` if the broker
    does not answer in time (logged): callers then treat nothing as already handled."""
    try:
        found = consumer.committed(partitions, timeout=timeout_s)
    except KafkaException as exc:
        logger.warning("committed offsets unknown error=%s", exc)
        return {}
    return {(tp.topic, tp.partition): tp.offset for tp in found if tp.offset >= 0}
