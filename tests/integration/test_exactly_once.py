"""The exactly-once guarantee on a real broker: each batch's outputs and offsets commit in one
Kafka transaction, so a read_committed consumer sees one Score per transaction through a crash
between produce and commit, and through an aborted transaction that is redone."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from confluent_kafka import KafkaError, KafkaException, Producer

from fraudstream.events import DeadLetter, decode_score
from fraudstream.settings import KafkaSettings, LimitSettings, TopicSettings
from fraudstream.stream.loop import DetectorLoop, LoopOptions
from fraudstream.stream.metrics import DetectorMetrics, HealthState
from tests.support import AmountScorer, CountingLearner, read_values

pytestmark = pytest.mark.kafka

N_VALID = 400
BAD = [b"not json", b'{"transaction_id": "x"}']


def _topics(tmp_topic: Callable[..., str]) -> TopicSettings:
    return TopicSettings(
        transactions=tmp_topic(2), labels=tmp_topic(), scores=tmp_topic(), flags=tmp_topic(),
        dead_letters=tmp_topic(),
    )  # fmt: skip


def _publish(bootstrap: str, topics: TopicSettings) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(N_VALID):
        tx = {"transaction_id": f"t{i}", "card_id": f"c{i % 13}", "amount": (i * 37) % 1000,
              "timestamp": 1522540831000 + i}  # fmt: skip
        producer.produce(topics.transactions, orjson.dumps(tx), f"c{i % 13}".encode())
        if i in (10, 300):
            producer.produce(topics.transactions, BAD[i // 300], b"bad")
    producer.produce(topics.labels, b'{"transaction_id":"t1","is_fraud":true}')
    assert producer.flush(10) == 0


def _read(bootstrap: str, topic: str, isolation: str, expected: int) -> list[bytes]:
    config = {"bootstrap.servers": bootstrap, "isolation.level": isolation}
    return read_values(config, topic, expected, timeout_s=30)


def _loop(bootstrap: str, topics: TopicSettings, group: str, scorer: AmountScorer,
          metrics: DetectorMetrics | None = None, labels: bool = True) -> DetectorLoop:  # fmt: skip
    return DetectorLoop(
        KafkaSettings(bootstrap=bootstrap), topics, LimitSettings(), scorer,
        CountingLearner() if labels else None,
        metrics or DetectorMetrics(), HealthState(model_loaded=True),
        LoopOptions(group_id=group, batch_size=50, guarantee="exactly-once",
                    instance_id="test", idle_after_s=1.0),
    )  # fmt: skip


def _run(loop: DetectorLoop, done: Callable[[], bool]) -> BaseException | None:
    """Run ``loop`` until ``done`` or until it fails; returns what it failed with."""
    failure: list[BaseException] = []
    stop = threading.Event()

    def target() -> None:
        try:
            loop.run(stop)
        except BaseException as exc:  # handed to the test
            failure.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    deadline = time.monotonic() + 60
    while not done() and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(30)
    assert not thread.is_alive()
    return failure[0] if failure else None


def _assert_once_each(bootstrap: str, topics: TopicSettings) -> list[bytes]:
    committed = _read(bootstrap, topics.scores, "read_committed", N_VALID)
    ids = [decode_score(v).transaction_id for v in committed]
    assert sorted(ids) == sorted(f"t{i}" for i in range(N_VALID))  # each once, none missing
    dead = [DeadLetter.from_json(v) for v in _read(bootstrap, topics.dead_letters,
                                                   "read_committed", len(BAD))]  # fmt: skip
    assert sorted(d.value for d in dead) == sorted(BAD)
    return committed


def test_a_crash_between_produce_and_commit_leaves_each_score_once_for_read_committed(
    kafka_bootstrap: str, tmp_topic: Callable[..., str]
) -> None:
    topics = _topics(tmp_topic)
    _publish(kafka_bootstrap, topics)
    group = f"g-{uuid.uuid4().hex[:8]}"
    scorer = AmountScorer()
    first = _loop(kafka_bootstrap, topics, group, scorer)
    commit = first._outputs.commit
    commits = 0

    def crash_on_third(*args: Any) -> bool:
        nonlocal commits
        commits += args[0] is first._consumer  # transaction batches, not label batches
        if commits == 3:  # the third batch's outputs are produced; the process "dies"
            raise RuntimeError("simulated crash before commit")
        return commit(*args)

    first._outputs.commit = crash_on_third  # type: ignore[method-assign]
    failure = _run(first, lambda: False)
    assert isinstance(failure, RuntimeError)
    # The crashed batch's Scores reached the log, but in a transaction never committed.
    assert len(_read(kafka_bootstrap, topics.scores, "read_uncommitted", 1)) > 0

    again = AmountScorer()  # same transactional id: init_transactions aborts the open one
    second = _loop(kafka_bootstrap, topics, group, again)
    ids = {f"t{i}" for i in range(N_VALID)}
    assert _run(second, lambda: ids <= set(scorer.seen) | set(again.seen)) is None
    committed = _assert_once_each(kafka_bootstrap, topics)
    uncommitted = _read(kafka_bootstrap, topics.scores, "read_uncommitted", N_VALID)
    assert len(uncommitted) > len(committed)  # the aborted Scores are there, just never seen


class AbortOnce:
    """A producer whose first commit fails as an abortable transaction error would."""

    def __init__(self, producer: Producer) -> None:
        self._producer = producer
        self.failed = False

    def commit_transaction(self, *args: Any) -> None:
        if not self.failed:
            self.failed = True
            err = KafkaError(KafkaError._FENCED, "injected", txn_requires_abort=True)
            raise KafkaException(err)
        self._producer.commit_transaction(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._producer, name)


def test_an_aborted_transaction_is_rewound_and_redone(
    kafka_bootstrap: str, tmp_topic: Callable[..., str]
) -> None:
    topics = _topics(tmp_topic)
    _publish(kafka_bootstrap, topics)
    scorer, metrics = AmountScorer(), DetectorMetrics()
    # No labels consumer: the first transaction committed is a batch of transactions.
    loop = _loop(kafka_bootstrap, topics, f"g-{uuid.uuid4().hex[:8]}", scorer, metrics, False)
    wrapper = AbortOnce(loop._outputs._producer)
    loop._outputs._producer = wrapper  # type: ignore[assignment]
    ids = {f"t{i}" for i in range(N_VALID)}
    assert _run(loop, lambda: ids <= set(scorer.seen)) is None
    assert wrapper.failed
    assert metrics.aborted_transactions._value.get() == 1
    assert len(scorer.seen) > N_VALID  # the aborted batch was scored again
    _assert_once_each(kafka_bootstrap, topics)
