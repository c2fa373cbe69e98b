"""Redis unavailable for 30 s (the process paused: connections hang), then restarted (its
append-only file replayed) while live traffic flows: the detector keeps scoring on its fallback,
loses nothing, recovers on its own, and the aggregates end up holding every transaction once."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.procs import detector_env
from fraudstream.app import FALLBACK_SUFFIX
from fraudstream.services.local_redis import start_local_redis
from fraudstream.settings import KafkaSettings, TopicSettings
from fraudstream.simulator import SimulatorConfig, iter_records, simulate
from fraudstream.stream.publish import Publisher, publish_stream
from tests.faults.support import (
    Outputs,
    aggregate_mismatches,
    finish,
    start_detector,
    valid_transactions,
    wait_for,
)

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(400)]

RATE = 500  # transactions per second, live: event time = intended send time
SECONDS = 70
PREFIX = "faults"


def test_redis_paused_30_s_then_restarted_loses_nothing_and_the_detector_recovers(
    kafka_bootstrap: str, tmp_topics: Callable[..., TopicSettings], tmp_path: Path
) -> None:
    topics = tmp_topics()
    records = list(iter_records(simulate(SimulatorConfig(customers=500, terminals=1000, days=80))))
    records = records[: RATE * SECONDS]
    start_ms = time.time_ns() // 1_000_000 + 5_000
    for i, record in enumerate(records):  # live traffic: each event at its intended send time
        record["timestamp"] = start_ms + i * 1000 // RATE
    valid = valid_transactions(records)
    redis_dir = tmp_path / "redis"
    server = start_local_redis(redis_dir, os.environ, aof=True)
    outputs = Outputs(kafka_bootstrap, topics, "read_uncommitted")
    env = detector_env(kafka_bootstrap, server.url, PREFIX, topics, instance_id="detector-0")
    log = tmp_path / "detector.log"
    child = start_detector(env, log)
    publisher = threading.Thread(
        target=publish_stream,
        args=(records, Publisher(KafkaSettings(bootstrap=kafka_bootstrap)), topics),
        kwargs={"rate": RATE, "label_delay_ms": None, "start": time.monotonic() + 5.0},
    )
    try:
        publisher.start()
        wait_for(lambda: outputs.counts()[0] >= 2 * RATE, 60, "the first Scores")
        os.kill(server.process.pid, signal.SIGSTOP)  # unavailable: every call times out
        time.sleep(30)
        os.kill(server.process.pid, signal.SIGCONT)
        time.sleep(10)
        server.stop()  # SIGTERM: the append-only file is complete
        server = start_local_redis(redis_dir, os.environ, aof=True, port=server.port)
        publisher.join(SECONDS + 30)
        wait_for(lambda: outputs.counts()[0] == len(records), 120, "every Score")
        assert child.poll() is None, log.read_text()[-3000:]  # never exited, never restarted
        child.send_signal(signal.SIGTERM)
        assert child.wait(60) == 0, log.read_text()[-3000:]
    finally:
        finish(outputs, child)
        if server.process.is_running():
            os.kill(server.process.pid, signal.SIGCONT)  # if the test failed while paused

    try:
        assert outputs.total_scores() == len(records)  # one each: nothing lost, nothing twice
        by_order = [outputs.scores[tx.transaction_id][0] for tx in valid]
        fallback = [s["model_version"].endswith(FALLBACK_SUFFIX) for s in by_order]
        print(f"{sum(fallback)} of {len(records)} Scores on the fallback")
        assert sum(fallback) >= 25 * RATE  # the pause: ~30 s of traffic scored on the fallback
        assert not any(fallback[-5 * RATE :])  # recovered on its own: the last 5 s are normal
        text = log.read_text()
        assert "feature store answers again" in text
        assert "Traceback" not in text
        # The fallback-scored transactions were recorded once Redis answered, and the restart
        # kept everything (AOF): every aggregate holds every transaction once.
        assert aggregate_mismatches(server.url, PREFIX, valid) == []
    finally:
        server.stop()
