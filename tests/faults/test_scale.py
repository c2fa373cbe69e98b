"""Horizontal scale on real Kafka and Redis: three scorer processes in one consumer group on six
partitions (the third joins mid-stream: a rebalance) and one trainer that learns from the labels
and publishes model versions. Nothing is lost, no transaction is counted twice in the shared
aggregates, and every scorer ends on the trainer's newest version."""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.procs import detector_env
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

RATE = 300
SECONDS = 40


def _last(pattern: str, path: Path) -> str | None:
    found = re.findall(pattern, path.read_text())
    return found[-1] if found else None


def test_three_scorers_and_a_trainer_share_the_work_and_converge_on_one_model(
    kafka_bootstrap: str,
    redis_url: str,
    redis_prefix: str,
    tmp_topics: Callable[..., TopicSettings],
    tmp_path: Path,
) -> None:
    topics = tmp_topics(transactions=6, labels=2, models=True)
    records = list(iter_records(simulate(SimulatorConfig(customers=400, terminals=800, days=60))))
    records = records[: RATE * SECONDS]
    start_ms = time.time_ns() // 1_000_000 + 8_000
    for i, record in enumerate(records):  # live traffic: each event at its intended send time
        record["timestamp"] = start_ms + i * 1000 // RATE
    common = {"model_checkpoint_key": "scale-test-key", "model_negative_rate": "1.0",
              "model_publish_every_ms": "1000"}  # fmt: skip
    env = detector_env(kafka_bootstrap, redis_url, redis_prefix, topics, **common)
    outputs = Outputs(kafka_bootstrap, topics, "read_uncommitted")
    procs: list[subprocess.Popen[bytes]] = []
    logs = [tmp_path / f"scorer-{i}.log" for i in range(3)]
    trainer_log = tmp_path / "trainer.log"
    publisher = threading.Thread(
        target=publish_stream,
        args=(records, Publisher(KafkaSettings(bootstrap=kafka_bootstrap)), topics),
        kwargs={"rate": RATE, "label_delay_ms": 3_000, "start": time.monotonic() + 8.0},
    )
    try:
        procs.append(start_detector({**env, "FRAUDSTREAM_ROLE": "trainer"}, trainer_log))
        for i in range(2):
            procs.append(start_detector({**env, "FRAUDSTREAM_ROLE": "scorer",
                                         "FRAUDSTREAM_INSTANCE_ID": f"s{i}"}, logs[i]))  # fmt: skip
        publisher.start()
        wait_for(lambda: outputs.counts()[0] >= 12 * RATE, 90, "a third of the stream")
        procs.append(
            start_detector(
                {**env, "FRAUDSTREAM_ROLE": "scorer", "FRAUDSTREAM_INSTANCE_ID": "s2"}, logs[2]
            )
        )  # rebalance
        publisher.join(SECONDS + 60)
        wait_for(lambda: outputs.counts()[0] == len(records), 120, "every Score")

        # The trainer publishes what it learned; every scorer swaps the newest version in.
        def converged() -> bool:
            newest = _last(r"model version packed version=(\S+)", trainer_log)
            return newest is not None and all(
                _last(r"model swapped old=\S+ new=(\S+)", log) == newest for log in logs
            )

        wait_for(converged, 60, "every scorer on the trainer's newest version")
        assert all(p.poll() is None for p in procs), [p.returncode for p in procs]
        for p in procs:
            p.send_signal(signal.SIGTERM)
        assert [p.wait(60) for p in procs] == [0, 0, 0, 0]
    finally:
        finish(outputs, *procs)

    newest = _last(r"model version packed version=(\S+)", trainer_log)
    assert newest is not None
    updates = int(re.match(r"\w+-u(\d+)", newest).group(1))  # type: ignore[union-attr]
    print(f"scale: newest version {newest}; {outputs.total_scores() - len(records)} repeated")
    assert updates > len(records) // 2  # most labels were learned (some arrive before scoring)
    assert all("assigned partitions" in log.read_text() for log in logs)
    assert set(outputs.scores) == {str(r["transaction_id"]) for r in records}
    for tx_id, scores in outputs.scores.items():  # a repeat (rebalance) is the same Score again
        assert all(s["features"] == scores[0]["features"] for s in scores), tx_id
    assert aggregate_mismatches(redis_url, redis_prefix, valid_transactions(records)) == []
