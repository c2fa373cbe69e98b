"""The all-in-one detector with checkpoints, killed with labels learned since its checkpoint:
restored, it reads the labels on from what the checkpoint has, so the model learns each label
once in its history, none lost, none twice, and a bad label read again is not dead-lettered
again (real Kafka, Redis and processes)."""

from __future__ import annotations

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
VERSION = "fraudstream_model_version"  # the model's updates: one per label learned here
LEARNED = 'fraudstream_model_learning{outcome="learned"}'


def _learn_until(bootstrap: str, topics: TopicSettings, url: str, tail: list[object],
                 version: int) -> None:  # fmt: skip
    """Publish later transactions one by one (they move the labels' watermark) until the
    model's version reaches ``version``."""
    while tail and metric(url, VERSION) < version:
        publish_raw(bootstrap, topics.transactions, [wire(tail.pop(0))])  # type: ignore[arg-type]
        time.sleep(0.05)
    wait_for(lambda: metric(url, VERSION) >= version, 30, f"model version {version}")


def test_a_killed_detector_relearns_the_labels_since_its_checkpoint_once(
    kafka_bootstrap: str,
    redis_url: str,
    redis_prefix: str,
    tmp_topics: Callable[..., TopicSettings],
    tmp_path: Path,
) -> None:
    topics = tmp_topics(transactions=2, labels=1)
    records = list(iter_records(simulate(SimulatorConfig(customers=100, terminals=200, days=40))))
    scored = records[:2000]
    last: int = scored[-1]["timestamp"]  # type: ignore[assignment]
    tail: list[object] = [r for r in records if r["timestamp"] > last + 2 * DAY_MS]  # type: ignore[operator]
    assert len(tail) > 600
    env = detector_env(kafka_bootstrap, redis_url, redis_prefix, topics,
                       model_negative_rate="1.0", model_checkpoint_dir=str(tmp_path / "ckpt"),
                       model_checkpoint_every_ms="3600000")  # fmt: skip
    outputs = Outputs(kafka_bootstrap, topics, "read_uncommitted")
    first = second = third = None
    try:
        # 1. Score, learn the first 1,000 labels, stop gracefully: the checkpoint has them.
        first = start_detector(env, tmp_path / "first.log")
        publish_raw(kafka_bootstrap, topics.transactions, map(wire, scored))
        wait_for(lambda: outputs.counts()[0] == len(scored), 120, "the Scores")
        publish_raw(kafka_bootstrap, topics.labels, label_records(scored[:1000], DAY_MS))
        _learn_until(kafka_bootstrap, topics, metrics_url(tmp_path / "first.log"), tail, 1000)
        first.send_signal(signal.SIGTERM)
        assert first.wait(60) == 0

        # 2. Restored, it learns the next 1,000 (their vectors come back from Redis: this
        # process never scored them), their offsets are committed, and it is killed before any
        # checkpoint has them.
        second = start_detector(env, tmp_path / "second.log")
        url = metrics_url(tmp_path / "second.log")
        bad = [(b"not a label %d" % i, b"k") for i in range(5)]
        publish_raw(kafka_bootstrap, topics.labels, bad + label_records(scored[1000:], DAY_MS))
        _learn_until(kafka_bootstrap, topics, url, tail, 2000)
        assert metric(url, LEARNED) == 1000
        wait_for(lambda: outputs.counts()[1] == len(bad), 30, "the bad labels' dead letters")
        time.sleep(3)  # the labels' offsets are committed every second
        second.kill()
        second.wait(30)

        # 3. Restored from the same checkpoint, it reads the labels on from where that
        # checkpoint was, not from the committed offsets: the 1,000 are learned again, once.
        third = start_detector(env, tmp_path / "third.log")
        url = metrics_url(tmp_path / "third.log")
        _learn_until(kafka_bootstrap, topics, url, tail, 2000)
        time.sleep(6)  # one more metrics export: a second learning would show
        assert metric(url, VERSION) == 2000
        assert metric(url, LEARNED) == 1000
        assert metric(url, 'fraudstream_model_learning{outcome="unknown"}') == 0
        assert sorted(outputs.dead.values()) == [1] * len(bad)  # read twice, dead-lettered once
        third.send_signal(signal.SIGTERM)
        assert third.wait(60) == 0
    finally:
        finish(outputs, first, second, third)
