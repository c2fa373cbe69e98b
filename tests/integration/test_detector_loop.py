"""The run loop on a real broker: one Score per valid record, one dead letter per bad one,
flags for the flagged, offsets committed only for what was delivered."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence

import orjson
import pytest
from confluent_kafka import Producer

from fraudstream.events import DeadLetter, Label, Score, Transaction, decode_score
from fraudstream.settings import KafkaSettings, LimitSettings, TopicSettings
from fraudstream.stream.loop import DetectorLoop, LoopOptions
from fraudstream.stream.metrics import DetectorMetrics, HealthState
from tests.support import AmountScorer, CountingLearner

pytestmark = pytest.mark.kafka


def _run_until(loop: DetectorLoop, done: Callable[[], bool], timeout_s: float = 60.0) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=loop.run, args=(stop,))
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(30)
    assert not thread.is_alive()


def test_valid_records_get_one_score_bad_ones_one_dead_letter_and_flags_follow_scores(
    kafka_bootstrap: str, tmp_topic: Callable[..., str], read_topic: Callable[..., list[bytes]]
) -> None:
    topics = TopicSettings(
        transactions=tmp_topic(3), labels=tmp_topic(), scores=tmp_topic(), flags=tmp_topic(),
        dead_letters=tmp_topic(),
    )  # fmt: skip
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    bad = [b"not json", b'{"transaction_id": "x"}', b"\xff\xfe", b'{"transaction_id":"b",'
           b'"card_id":"c","amount":-3,"timestamp":1522540831000}']  # fmt: skip
    n_valid = 300
    for i in range(n_valid):
        tx = {"transaction_id": f"t{i}", "card_id": f"c{i % 17}", "amount": (i * 37) % 1000,
              "timestamp": 1522540831000 + i}  # fmt: skip
        producer.produce(topics.transactions, orjson.dumps(tx), f"c{i % 17}".encode())
        if i % 75 == 0:
            producer.produce(topics.transactions, bad[i // 75], b"bad")
    producer.produce(topics.labels, b'{"transaction_id":"t1","is_fraud":true}')
    producer.produce(topics.labels, b'{"transaction_id":"t2"}')
    assert producer.flush(10) == 0

    scorer, learner = AmountScorer(), CountingLearner()
    metrics, health = DetectorMetrics(), HealthState(model_loaded=True)
    group = f"g-{uuid.uuid4().hex[:8]}"
    loop = DetectorLoop(
        KafkaSettings(bootstrap=kafka_bootstrap), topics, LimitSettings(), scorer, learner,
        metrics, health, LoopOptions(group_id=group, batch_size=64),
    )  # fmt: skip
    _run_until(loop, lambda: len(scorer.seen) >= n_valid and len(learner.labels) >= 1)
    assert health.assigned

    scores = [decode_score(v) for v in read_topic(topics.scores, n_valid)]
    assert sorted(s.transaction_id for s in scores) == sorted(f"t{i}" for i in range(n_valid))
    flags = [decode_score(v) for v in read_topic(topics.flags, 1)]
    assert sorted(f.transaction_id for f in flags) == sorted(
        s.transaction_id for s in scores if s.score >= 0.5
    )
    dead = [DeadLetter.from_json(v) for v in read_topic(topics.dead_letters, 5)]
    assert sorted(d.reason for d in dead) == sorted(
        ["invalid_json", "missing_field", "not_utf8", "negative_amount", "missing_field"]
    )
    assert sorted(d.value for d in dead if d.source_topic == topics.transactions) == sorted(bad)
    assert [lb.transaction_id for lb in learner.labels] == ["t1"]

    # Everything was committed: a new member of the same group gets nothing again.
    again = AmountScorer()
    loop2 = DetectorLoop(
        KafkaSettings(bootstrap=kafka_bootstrap), topics, LimitSettings(), again, None,
        DetectorMetrics(), HealthState(), LoopOptions(group_id=group, batch_size=64),
    )  # fmt: skip
    stop_at = time.monotonic() + 6
    _run_until(loop2, lambda: time.monotonic() > stop_at, timeout_s=10)
    assert again.seen == []


def test_labels_are_read_in_few_large_batches_and_a_backlog_without_waiting(
    kafka_bootstrap: str, tmp_topics: Callable[..., TopicSettings]
) -> None:
    """Labels trickling in are read every ``label_interval_s`` (not one small batch per loop
    turn); a backlog of full batches is read back to back, not one batch per interval."""
    topics = tmp_topics()
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 0})
    for i in range(300):  # the backlog: 5 batches of 64, before the loop starts
        label = {"transaction_id": f"b{i}", "is_fraud": False}
        producer.produce(topics.labels, orjson.dumps(label))
    assert producer.flush(10) == 0
    learner = CountingLearner()
    loop = DetectorLoop(
        KafkaSettings(bootstrap=kafka_bootstrap), topics, LimitSettings(), AmountScorer(),
        learner, DetectorMetrics(), HealthState(),
        LoopOptions(group_id=f"g-{uuid.uuid4().hex[:8]}", batch_size=64, align=False,
                    label_interval_s=1.0),
    )  # fmt: skip
    stop = threading.Event()
    thread = threading.Thread(target=loop.run, args=(stop,))
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while len(learner.labels) < 300 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(learner.labels) == 300
        backlog_calls = len(learner.calls)
        for i in range(200):  # then a trickle: one label every 10 ms for 2 s
            label = {"transaction_id": f"t{i}", "is_fraud": False}
            producer.produce(topics.labels, orjson.dumps(label))
            producer.poll(0)
            time.sleep(0.01)
        assert producer.flush(10) == 0
        while len(learner.labels) < 500 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join(30)
    assert len(learner.labels) == 500
    # The backlog: full batches back to back, then its remainder, well within one interval
    # (at one batch per interval it would take 4 s).
    assert learner.calls[:4] == [64, 64, 64, 64], learner.calls
    assert backlog_calls <= 6
    assert learner.times[backlog_calls - 1] - learner.times[0] < 0.9, learner.times
    trickle = learner.calls[backlog_calls:]
    # 2 s of trickle at one read per second: about 3 reads, never one per label or per turn
    assert 2 <= len(trickle) <= 5, trickle


class EventTimeRecorder:
    """Records the event time of every transaction scored and of every label learned."""

    def __init__(self) -> None:
        self.tx_ms: list[int] = []
        self.labels_at: list[tuple[int, int]] = []  # (label_time, newest tx time scored then)

    def score_batch(self, batch: Sequence[Transaction], received_ns: int) -> list[Score]:
        self.tx_ms.extend(tx.timestamp_ms for tx in batch)
        return [
            Score(tx.transaction_id, tx.card_id, 0.0, False, 0.5, "0-test", (), {},
                  tx.timestamp_ms, 0, 0)
            for tx in batch
        ]  # fmt: skip

    def learn(
        self, labels: Sequence[Label], positions: Mapping[tuple[str, int], int] | None = None
    ) -> dict[str, int]:
        newest = max(self.tx_ms, default=0)
        self.labels_at.extend((lb.label_time_ms or 0, newest) for lb in labels)
        return {"applied": len(labels)}

    def resume_offset(self, topic: str, partition: int) -> int | None:
        return None


@pytest.mark.parametrize("max_skew_ms", [0, None], ids=["aligned", "unaligned"])
def test_a_backlog_is_consumed_in_event_time_order_across_partitions_and_labels(
    kafka_bootstrap: str, tmp_topic: Callable[..., str], max_skew_ms: int | None
) -> None:
    """A replayed backlog: 3 partitions and a labels topic, each spanning 10 days of event time.

    Aligned with no skew allowed, transactions are scored in event-time order across the
    partitions, every label is read before any transaction past its label time is scored, and
    labels lead by at most a day (and one batch); unaligned (the control) librdkafka hands out
    whole partitions and the skew is days.
    """
    day, hour = 86_400_000, 3_600_000
    topics = TopicSettings(
        transactions=tmp_topic(3), labels=tmp_topic(), scores=tmp_topic(), flags=tmp_topic(),
        dead_letters=tmp_topic(),
    )  # fmt: skip
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 20})
    per_partition, t0 = 1200, 1_522_540_800_000
    step = 10 * day // per_partition  # 12 min
    for p in range(3):
        for i in range(per_partition):
            tx = {"transaction_id": f"t{p}-{i}", "card_id": f"c{p}", "amount": 1.0,
                  "timestamp": t0 + i * step + p}  # fmt: skip
            producer.produce(topics.transactions, orjson.dumps(tx), partition=p)
    for i in range(per_partition):  # label times from day 7 on: within the stream's span
        lb = {"transaction_id": f"t0-{i}", "is_fraud": False, "label_time": t0 + 7 * day + i * step}
        producer.produce(topics.labels, orjson.dumps(lb))
    producer.flush(30)
    recorder = EventTimeRecorder()
    batch = 50
    loop = DetectorLoop(
        KafkaSettings(bootstrap=kafka_bootstrap), topics, LimitSettings(), recorder, recorder,
        DetectorMetrics(), HealthState(),
        LoopOptions(group_id=f"g-{uuid.uuid4().hex[:8]}", batch_size=batch,
                    align=max_skew_ms is not None, max_skew_ms=max_skew_ms or 0),
    )  # fmt: skip
    _run_until(
        loop,
        lambda: (
            len(recorder.tx_ms) >= 3 * per_partition and len(recorder.labels_at) >= per_partition
        ),
        timeout_s=90,
    )
    assert len(recorder.tx_ms) == 3 * per_partition
    newest, worst = 0, 0
    for t in recorder.tx_ms:
        worst = max(worst, newest - t)
        newest = max(newest, t)
    # A label read behind the transactions is late (it misses scores it should have informed);
    # one read ahead only waits for its watermark, so labels may lead by up to a day (plus the
    # batch that crossed the line); the first batch, read before any transaction, and labels
    # past the transactions' end are read freely.
    assert len(recorder.labels_at) == per_partition
    label_lag = max(newest_tx - lt for lt, newest_tx in recorder.labels_at)
    end = max(recorder.tx_ms)
    lead = LoopOptions().label_lead_ms + batch * step
    ahead = sum(lt - nt > lead for lt, nt in recorder.labels_at if lt <= end)
    if max_skew_ms is not None:
        assert worst == 0, f"transaction skew {worst / hour:.1f} h"
        assert label_lag <= LoopOptions().label_lag_ms, f"labels {label_lag / hour:.1f} h late"
        # Pausing is decided every 10 ms: a fast loop reads a few batches past the line.
        assert ahead <= 4 * batch
    else:
        assert worst > 2 * day
