"""The detector end to end on real Kafka and Redis: every valid transaction scored once, every
bad record dead-lettered, flags are the scores above the threshold, labels move the model."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import orjson
import pytest
from confluent_kafka import Producer

from fraudstream import app
from fraudstream.events import DeadLetter, decode_score
from fraudstream.settings import (
    DetectorSettings,
    KafkaSettings,
    RedisSettings,
    Settings,
    TopicSettings,
)
from fraudstream.simulator import SimulatorConfig, iter_records, simulate
from fraudstream.stream.publish import Publisher, publish_stream

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]

DAY_MS = 86_400_000


def test_detector_scores_every_valid_transaction_once_and_learns_from_labels(
    kafka_bootstrap: str,
    redis_url: str,
    redis_prefix: str,
    tmp_topics: Callable[..., TopicSettings],
    read_topic: Callable[..., list[bytes]],
) -> None:
    topics = tmp_topics()
    kafka = KafkaSettings(bootstrap=kafka_bootstrap)
    records = list(iter_records(simulate(SimulatorConfig(customers=60, terminals=120, days=40))))
    # 40 days of payments, each label published 7 days of event time after its transaction.
    publish_stream(records, Publisher(kafka), topics, rate=None, label_delay_ms=7 * DAY_MS)
    bad = [
        b"{",
        b'{"transaction_id":"z","card_id":"c","amount":"9","timestamp":1}',
        b'{"transaction_id":"z","card_id":"c","amount":1e999,"timestamp":1}',
        b"\x00\xff",
    ]
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for value in bad:
        producer.produce(topics.transactions, value, b"bad")
    assert producer.flush(10) == 0

    settings = Settings(
        kafka=kafka, redis=RedisSettings(url=redis_url, key_prefix=redis_prefix.rstrip(":")),
        topics=topics, detector=DetectorSettings(group_id=f"g-{uuid.uuid4().hex[:8]}"),
    )  # fmt: skip
    runtime = app.build(settings)
    first_version = str(runtime.detector.scorer.model.version)
    stop = threading.Event()
    thread = threading.Thread(target=runtime.run, args=(stop,))
    thread.start()
    deadline = time.monotonic() + 240
    while runtime.loop.scored < len(records):
        assert time.monotonic() < deadline, "detector did not score everything in time"
        assert not runtime.failed
        time.sleep(0.2)
    stop.set()
    thread.join(60)
    assert not runtime.failed

    scores = [decode_score(v) for v in read_topic(topics.scores, len(records))]
    ids = [s.transaction_id for s in scores]
    assert sorted(ids) == sorted(str(r["transaction_id"]) for r in records)  # once each
    flags = [decode_score(v) for v in read_topic(topics.flags, 1)]
    assert {f.transaction_id for f in flags} == {s.transaction_id for s in scores if s.flagged}
    assert all(s.flagged == (s.score >= s.threshold) for s in scores)
    assert all(f.reasons and f.model_version for f in flags)
    dead = [DeadLetter.from_json(v) for v in read_topic(topics.dead_letters, 4)]
    assert sorted(d.value or b"" for d in dead) == sorted(bad)

    # Labels moved the model: its version changed, and so did the scores it gives.
    assert runtime.detector.scorer.learner.stats.learned > 0
    assert str(runtime.detector.scorer.model.version) != first_version
    versions = {s.model_version for s in scores}
    assert len(versions) > 1
    early = [s.score for s in scores if s.model_version == first_version]
    assert len(set(early)) <= 2 < len({s.score for s in scores})
    assert all(orjson.loads(orjson.dumps(s.features)) == s.features for s in scores[:10])
