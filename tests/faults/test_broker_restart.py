"""The Kafka broker stopped for 5 s and started again mid-stream (its own broker, same data and
port): the detector and the publisher reconnect by themselves, every transaction gets its Score,
a repeated Score is the same Score again, and the detector never exits."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from bench.procs import detector_env
from fraudstream.services.kafka_jars import default_cache_dir
from fraudstream.services.local_kafka import start_local_kafka
from fraudstream.settings import KafkaSettings, TopicSettings
from fraudstream.simulator import SimulatorConfig, iter_records, simulate
from fraudstream.stream import admin
from fraudstream.stream.publish import Publisher, publish_stream
from tests.faults.support import Outputs, finish, start_detector, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(400)]

RATE = 500
SECONDS = 40


def test_a_broker_restart_mid_stream_loses_nothing_and_the_detector_resumes(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    work = tmp_path / "kafka"
    broker = start_local_kafka(work, os.environ, cache_dir=default_cache_dir(os.environ))
    topics = TopicSettings(transactions="tx", labels="labels", scores="scores", flags="flags",
                           dead_letters="dlq")  # fmt: skip
    admin.create_topics(broker.bootstrap, topics.names(), 3)
    records = list(iter_records(simulate(SimulatorConfig(customers=500, terminals=1000, days=60))))
    records = records[: RATE * SECONDS]
    start_ms = time.time_ns() // 1_000_000
    for i, record in enumerate(records):  # live traffic: each event at its intended send time
        record["timestamp"] = start_ms + i * 1000 // RATE
    outputs = Outputs(broker.bootstrap, topics, "read_uncommitted")
    env = detector_env(broker.bootstrap, redis_url, redis_prefix, topics, instance_id="d-0")
    log = tmp_path / "detector.log"
    child = start_detector(env, log)
    publisher = threading.Thread(
        target=publish_stream,
        args=(records, Publisher(KafkaSettings(bootstrap=broker.bootstrap)), topics),
        kwargs={"rate": RATE, "label_delay_ms": None, "start": time.monotonic() + 3.0},
    )
    try:
        publisher.start()
        wait_for(lambda: outputs.counts()[0] >= 5 * RATE, 60, "the first Scores")
        broker.stop()  # a controlled shutdown, as a rolling restart does
        time.sleep(5)
        broker = start_local_kafka(work, os.environ, cache_dir=default_cache_dir(os.environ),
                                   port=broker.port)  # fmt: skip
        publisher.join(SECONDS + 120)
        wait_for(lambda: outputs.counts()[0] == len(records), 180, "every Score")
        assert child.poll() is None, log.read_text()[-3000:]  # reconnected, never exited
        child.send_signal(signal.SIGTERM)
        assert child.wait(60) == 0, log.read_text()[-3000:]
    finally:
        finish(outputs, child)
        broker.stop()
    repeated = outputs.total_scores() - len(records)
    print(f"broker restart: {repeated} repeated Scores")
    assert set(outputs.scores) == {str(r["transaction_id"]) for r in records}
    for tx_id, scores in outputs.scores.items():  # a repeat is the same Score again
        assert all(s["features"] == scores[0]["features"] for s in scores), tx_id
    assert "Traceback" not in log.read_text()
