"""Labels shuffled, duplicated and then replayed whole: the feature store applies each once,
the model learns each once, and the rest is counted as duplicates, on real Kafka and Redis."""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.procs import detector_env
from fraudstream.settings import TopicSettings
from fraudstream.simulator import SimulatorConfig, iter_records, simulate
from tests.faults.support import (
    Outputs,
    finish,
    label_records,
    metric,
    metrics_url,
    publish_raw,
    start_detector,
    wait_for,
    wire,
)

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]

DAY_MS = 86_400_000


def test_replayed_duplicated_shuffled_labels_are_learned_once_each(
    kafka_bootstrap: str,
    redis_url: str,
    redis_prefix: str,
    tmp_topics: Callable[..., TopicSettings],
    tmp_path: Path,
) -> None:
    topics = tmp_topics(transactions=2, labels=2)
    records = list(iter_records(simulate(SimulatorConfig(customers=100, terminals=200, days=30))))
    scored = records[:2000]
    last: int = scored[-1]["timestamp"]  # type: ignore[assignment]
    tail = [r for r in records if r["timestamp"] > last + 2 * DAY_MS]  # type: ignore[operator]
    assert len(tail) > 400
    env = detector_env(kafka_bootstrap, redis_url, redis_prefix, topics,
                       model_negative_rate="1.0")  # fmt: skip
    log = tmp_path / "detector.log"
    outputs = Outputs(kafka_bootstrap, topics, "read_uncommitted")
    child = start_detector(env, log)
    try:
        publish_raw(kafka_bootstrap, topics.transactions, map(wire, scored))
        wait_for(lambda: outputs.counts()[0] == len(scored), 120, "the first Scores")
        rng = random.Random(5)
        labels = label_records(scored, DAY_MS)
        first = labels + rng.sample(labels, 600)  # 600 duplicated
        rng.shuffle(first)  # and out of order
        publish_raw(kafka_bootstrap, topics.labels, first)
        publish_raw(kafka_bootstrap, topics.labels, labels)  # the whole feed replayed
        m = metrics_url(log)
        learned = 'fraudstream_model_learning{outcome="learned"}'
        for i, record in enumerate(tail):  # later transactions move the labels' watermark
            publish_raw(kafka_bootstrap, topics.transactions, [wire(record)])
            if metric(m, learned) >= len(scored) or i > 400:
                break
            time.sleep(0.05)
        wait_for(lambda: metric(m, learned) >= len(scored), 30, "labels learned")
        time.sleep(6)  # one more export period: a second learning would show
        published = len(first) + len(labels)
        assert metric(m, learned) == len(scored)
        assert metric(m, 'fraudstream_model_learning{outcome="duplicates"}') == published - len(
            scored
        )
        assert metric(m, 'fraudstream_labels_total{outcome="applied"}') == len(scored)
        assert metric(m, 'fraudstream_labels_total{outcome="duplicate"}') == published - len(scored)
        assert metric(m, "fraudstream_model_version") == len(scored)  # updates: one each
        child.send_signal(signal.SIGTERM)
        assert child.wait(60) == 0
    finally:
        finish(outputs, child)
