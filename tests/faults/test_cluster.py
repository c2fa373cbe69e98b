"""The detector on a three-master Redis Cluster: killed with SIGKILL mid-stream and started
again, it scores every transaction, and the aggregates spread over the cluster's nodes count
each transaction once."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.procs import detector_env
from fraudstream.settings import TopicSettings
from fraudstream.simulator import SimulatorConfig, iter_records, simulate
from tests.faults.support import (
    Outputs,
    aggregate_mismatches,
    finish,
    publish_raw,
    start_detector,
    valid_transactions,
    wait_for,
    wire,
)

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]

N_TX = 20_000


def test_on_a_redis_cluster_a_killed_detector_loses_nothing_and_counts_each_once(
    kafka_bootstrap: str,
    redis_cluster_url: str,
    tmp_topics: Callable[..., TopicSettings],
    tmp_path: Path,
) -> None:
    topics = tmp_topics()
    records = list(iter_records(simulate(SimulatorConfig(customers=300, terminals=600, days=40))))
    records = records[:N_TX]
    publish_raw(kafka_bootstrap, topics.transactions, map(wire, records))
    env = detector_env(kafka_bootstrap, redis_cluster_url, "cluster", topics,
                       redis_cluster="true", instance_id="d-0")  # fmt: skip
    outputs = Outputs(kafka_bootstrap, topics, "read_uncommitted")
    log = tmp_path / "detector.log"
    child = start_detector(env, log)
    try:
        wait_for(lambda: outputs.counts()[0] >= N_TX // 3 or child.poll() is not None, 120,
                 "a third scored")  # fmt: skip
        assert child.poll() is None, log.read_text()[-3000:]
        child.send_signal(signal.SIGKILL)
        child.wait(30)
        child = start_detector(env, log)
        wait_for(lambda: outputs.counts()[0] == N_TX, 180, "every Score")
        child.send_signal(signal.SIGTERM)
        assert child.wait(60) == 0, log.read_text()[-3000:]
    finally:
        finish(outputs, child)
    assert not any(s["model_version"].endswith("-fallback")
                   for scores in outputs.scores.values() for s in scores)  # fmt: skip
    mismatches = aggregate_mismatches(
        redis_cluster_url, "cluster", valid_transactions(records), cluster=True
    )
    assert mismatches == []
