"""`kill -9` of the detector at random points, many times, during a stream of 100,000
transactions (plus bad records): afterwards every transaction has its Score and every bad record
its dead letter, nothing is lost, and every aggregate in Redis equals an offline recomputation
from the input (no transaction counted twice or missed). At-least-once may repeat a Score, with
the same id and the same features; exactly-once shows each once to a read_committed reader."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections.abc import Callable
from functools import partial
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
    wire,
)

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(600)]

N_TX = 100_000
N_BAD = 1_000


def _bad(i: int, good: bytes) -> bytes:
    kind = i % 4
    if kind == 0:
        return b"not json %d" % i
    if kind == 1:
        return good[: len(good) // 2]  # truncated
    if kind == 2:
        return orjson.dumps({"transaction_id": f"bad-{i}", "amount": 1.0})  # fields missing
    return orjson.dumps({"transaction_id": f"bad-{i}", "card_id": "c", "amount": "lots",
                         "timestamp": 1522540831000})  # fmt: skip


def _scored_or_exited(outputs: Outputs, target: int, child: subprocess.Popen[bytes]) -> bool:
    return outputs.counts()[0] >= target or child.poll() is not None


@pytest.mark.parametrize(("guarantee", "kills"), [("at-least-once", 6), ("exactly-once", 4)])
def test_killed_again_and_again_the_detector_loses_nothing_and_counts_each_transaction_once(
    guarantee: str,
    kills: int,
    kafka_bootstrap: str,
    redis_url: str,
    redis_prefix: str,
    tmp_topics: Callable[..., TopicSettings],
    tmp_path: Path,
) -> None:
    topics = tmp_topics()
    config = SimulatorConfig(customers=1000, terminals=2000, days=55, seed=7)
    records = list(iter_records(simulate(config)))[:N_TX]
    valid = valid_transactions(records)
    rng = random.Random(11)
    sends = [wire(r) for r in records]
    for i in range(N_BAD):  # bad records at random places of the stream
        sends.insert(rng.randrange(len(sends)), (_bad(i, sends[i][0]), b"bad"))
    publish_raw(kafka_bootstrap, topics.transactions, sends)

    isolation = "read_committed" if guarantee == "exactly-once" else "read_uncommitted"
    outputs = Outputs(kafka_bootstrap, topics, isolation)
    # A stable instance id, as a pod name would be: a restart rejoins at once (static membership)
    env = detector_env(kafka_bootstrap, redis_url, redis_prefix, topics, guarantee=guarantee,
                       instance_id="detector-0")  # fmt: skip
    log = tmp_path / "detector.log"
    killed_at: list[int] = []
    child: subprocess.Popen[bytes] | None = None
    started = time.monotonic()
    try:
        for _ in range(kills):
            child = start_detector(env, log)
            target = outputs.counts()[0] + rng.randrange(6_000, 14_000)
            wait_for(partial(_scored_or_exited, outputs, target, child), 120, f"{target} scored")
            assert child.poll() is None, log.read_text()[-3000:]
            child.send_signal(signal.SIGKILL)  # wherever it is: mid-batch, mid-commit
            child.wait(30)
            killed_at.append(outputs.counts()[0])
        child = start_detector(env, log)
        wait_for(lambda: outputs.counts() == (N_TX, N_BAD), 240,
                 f"{N_TX} scored and {N_BAD} dead letters")  # fmt: skip
        child.send_signal(signal.SIGTERM)
        assert child.wait(60) == 0, log.read_text()[-3000:]
    finally:
        finish(outputs, child)

    took = time.monotonic() - started
    print(f"{guarantee}: {took:.0f} s; killed at {killed_at} distinct scores; "
          f"{outputs.total_scores() - N_TX} repeated Scores")  # fmt: skip
    assert set(outputs.scores) == {tx.transaction_id for tx in valid}
    assert len(outputs.dead) == N_BAD
    if guarantee == "exactly-once":
        assert outputs.total_scores() == N_TX  # each Score once for read_committed
        assert set(outputs.dead.values()) == {1}
    else:
        for tx_id, scores in outputs.scores.items():  # a repeat is the same Score again
            assert all(s["features"] == scores[0]["features"] for s in scores), tx_id
            assert all(s["score"] == scores[0]["score"] for s in scores), tx_id
    assert aggregate_mismatches(redis_url, redis_prefix, valid) == []
