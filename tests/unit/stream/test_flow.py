"""Which consumed records the loop owns (a revocation served inside ``consume()``), and the
committed offsets a restored labels consumer reads again below."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import OFFSET_INVALID, KafkaError, KafkaException, TopicPartition

from fraudstream.errors import KafkaClientError
from fraudstream.stream.flow import committed, owned


class _Record:
    """The three methods of a consumed ``Message`` that :func:`owned` reads."""

    def __init__(self, topic: str, partition: int, error: KafkaError | None = None) -> None:
        self._topic, self._partition, self._error = topic, partition, error

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def error(self) -> KafkaError | None:
        return self._error


def test_records_of_revoked_partitions_and_consumer_errors_are_not_processed() -> None:
    mine, revoked = _Record("tx", 0), _Record("tx", 3)
    transient = _Record("tx", 0, KafkaError(KafkaError._TRANSPORT))
    msgs: list[Any] = [mine, revoked, transient, _Record("labels", 0)]
    assert owned(msgs, {("tx", 0), ("labels", 0)}) == [mine, msgs[3]]


def test_a_fatal_consumer_error_stops_the_loop() -> None:
    fatal = _Record("tx", 0, KafkaError(KafkaError._FATAL, fatal=True))
    with pytest.raises(KafkaClientError, match="fatal consumer error"):
        owned([fatal], {("tx", 0)})  # type: ignore[list-item]


class _Committed:
    """A consumer whose group has committed offset 40 on partition 0 and nothing on 1."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        if self.fail:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT))
        return [TopicPartition(p.topic, p.partition, 40 if p.partition == 0 else OFFSET_INVALID)
                for p in partitions]  # fmt: skip


def test_committed_offsets_skip_partitions_without_one_and_a_silent_broker() -> None:
    tps = [TopicPartition("labels", 0), TopicPartition("labels", 1)]
    assert committed(_Committed(), tps) == {("labels", 0): 40}  # type: ignore[arg-type]
    assert committed(_Committed(fail=True), tps) == {}  # type: ignore[arg-type]
