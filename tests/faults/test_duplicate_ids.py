"""Transaction ids used twice: an exact repeat (a producer's redelivery) is scored again with
the same features; another transaction reusing an id is dead-lettered as `duplicate_id` and
changes no aggregate (real Kafka, Redis and `fraudstream detect`)."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import orjson
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
)

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]


def test_a_reused_id_is_dead_lettered_and_an_exact_repeat_scored_the_same(
    kafka_bootstrap: str,
    redis_url: str,
    redis_prefix: str,
    tmp_topics: Callable[..., TopicSettings],
    tmp_path: Path,
) -> None:
    topics = tmp_topics()
    records = list(iter_records(simulate(SimulatorConfig(customers=100, terminals=200, days=10))))
    records = records[:1000]
    wire = [{k: v for k, v in r.items() if k not in ("is_fraud", "fraud_scenario")}
            for r in records]  # fmt: skip
    repeats = wire[::10]  # 100 exact repeats
    reused = [{**r, "amount": float(r["amount"]) + 1.0} for r in wire[5::10]]  # type: ignore[arg-type]
    # Same key (card) as the first use: the same partition, so the first one is read first.
    sends = [(orjson.dumps(r), str(r["card_id"]).encode()) for r in wire + repeats + reused]
    publish_raw(kafka_bootstrap, topics.transactions, sends)

    outputs = Outputs(kafka_bootstrap, topics, "read_uncommitted")
    log = tmp_path / "detector.log"
    child = start_detector(detector_env(kafka_bootstrap, redis_url, redis_prefix, topics), log)
    try:
        wait_for(lambda: outputs.counts() == (len(wire), len(reused)), 120, "every output")
        wait_for(lambda: outputs.total_scores() >= len(wire) + len(repeats), 30, "the repeats")
        child.send_signal(signal.SIGTERM)
        assert child.wait(60) == 0, log.read_text()[-3000:]
    finally:
        finish(outputs, child)
    assert outputs.total_scores() == len(wire) + len(repeats)
    for r in repeats:
        first, again = outputs.scores[str(r["transaction_id"])]
        assert again["features"] == first["features"]
    for r in wire[5::10]:  # the first use keeps its Score; the reuse got a dead letter
        [score] = outputs.scores[str(r["transaction_id"])]
        assert score["features"]["amount"] == r["amount"]
    assert set(outputs.dead_reasons.values()) == {"duplicate_id"}
    assert aggregate_mismatches(redis_url, redis_prefix, valid_transactions(records)) == []
