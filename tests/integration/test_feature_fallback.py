"""The budget fallback on a real redis-server that is paused (SIGSTOP) or stopped: every
transaction still gets a Score, marked and counted, and none of them is learned from."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fraudstream.app import FALLBACK_SUFFIX, Detector, build_scorer, local_features
from fraudstream.errors import FeatureStoreError
from fraudstream.events import Label, Transaction
from fraudstream.features import FeatureConfig, RedisFeatureStore
from fraudstream.features.client import redis_client
from fraudstream.services.local_redis import LocalRedis, start_local_redis
from fraudstream.settings import ModelSettings, RedisSettings
from fraudstream.stream.metrics import DetectorMetrics

pytestmark = pytest.mark.redis

T0 = 1_700_000_000_000


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[LocalRedis]:
    """A redis-server of this test alone: it gets paused and stopped."""
    server = start_local_redis(tmp_path, os.environ)
    try:
        yield server
    finally:
        if server.process.is_running():
            os.kill(server.process.pid, signal.SIGCONT)
            server.stop()


def _detector(url: str) -> tuple[Detector, DetectorMetrics]:
    config = FeatureConfig(key_prefix="fallback:")
    store = RedisFeatureStore(redis_client(RedisSettings(url=url, timeout_ms=50)), config)
    metrics = DetectorMetrics()
    scorer = build_scorer(ModelSettings(), config.record_ttl_ms)
    return Detector(store, scorer, metrics, fallback=local_features(config)), metrics


def _batch(start: int, n: int = 5) -> list[Transaction]:
    return [
        Transaction(f"tx{i}", f"card{i % 2}", 10.0 + i, T0 + i * 60_000, terminal_id="t1")
        for i in range(start, start + n)
    ]


def _fallback_count(metrics: DetectorMetrics) -> float:
    return metrics.registry.get_sample_value("fraudstream_fallback_scores_total") or 0.0


def test_paused_redis_still_yields_one_marked_score_per_transaction(
    own_redis: LocalRedis,
) -> None:
    detector, metrics = _detector(own_redis.url)
    normal = detector.score_batch(_batch(0), time.perf_counter_ns())
    assert not any(s.model_version.endswith(FALLBACK_SUFFIX) for s in normal)

    os.kill(own_redis.process.pid, signal.SIGSTOP)
    started = time.monotonic()
    paused = detector.score_batch(_batch(5), time.perf_counter_ns())
    again = detector.score_batch(_batch(10), time.perf_counter_ns())  # store not retried yet
    elapsed = time.monotonic() - started
    learned = detector.learn([Label("tx5", True, label_time_ms=T0)])
    os.kill(own_redis.process.pid, signal.SIGCONT)

    assert [s.transaction_id for s in paused + again] == [f"tx{i}" for i in range(5, 15)]
    assert all(s.model_version.endswith(FALLBACK_SUFFIX) for s in paused + again)
    assert all(0.0 <= s.score <= 1.0 for s in paused + again)
    assert paused[0].features["amount"] == 15.0
    assert paused[0].features["tx_count_30d_by_card"] == 1.0  # neutral: no history
    assert _fallback_count(metrics) == 10 == detector.fallbacks
    assert elapsed < 1.0  # two timeouts at most (the store reruns once), not redis-py's retries
    assert learned == {"store_unavailable": 1}

    # A label for a fallback transaction is never learned from its fallback vector.
    detector.scorer.advance(T0 + 10 * 86_400_000)
    assert detector.scorer.learner.stats.learned == 0
    assert detector.scorer.learner.stats.unknown == 1


def test_stopped_redis_still_yields_marked_scores(own_redis: LocalRedis) -> None:
    detector, metrics = _detector(own_redis.url)
    own_redis.stop()
    scores = detector.score_batch(_batch(0, 3), time.perf_counter_ns())
    assert len(scores) == 3
    assert all(s.model_version.endswith(FALLBACK_SUFFIX) for s in scores)
    assert _fallback_count(metrics) == 3


def test_without_fallback_a_store_failure_propagates(own_redis: LocalRedis) -> None:
    detector, _ = _detector(own_redis.url)
    detector.fallback = None
    own_redis.stop()
    with pytest.raises(FeatureStoreError):
        detector.score_batch(_batch(0, 2), time.perf_counter_ns())


def test_fallback_transactions_join_the_aggregates_once_redis_answers_again(
    own_redis: LocalRedis,
) -> None:
    detector, metrics = _detector(own_redis.url)
    detector.score_batch(_batch(0), time.perf_counter_ns())  # tx0..tx4 recorded
    own_redis.stop()
    down = detector.score_batch(_batch(5), time.perf_counter_ns())  # tx5..tx9 on fallback
    assert all(s.model_version.endswith(FALLBACK_SUFFIX) for s in down)
    restarted = start_local_redis(own_redis.work_dir, os.environ, port=own_redis.port)
    try:
        time.sleep(1.1)  # past the probe interval: the next batch tries the store again
        back = detector.score_batch(_batch(10, 1), time.perf_counter_ns())  # tx10, card0
        # Redis came back empty (no AOF): card0 now holds its fallback-scored tx6 and tx8, then
        # tx10; without the recording it would count tx10 alone.
        assert not back[0].model_version.endswith(FALLBACK_SUFFIX)
        assert back[0].features["tx_count_1d_by_card"] == 3.0
        assert metrics.registry.get_sample_value("fraudstream_fallback_recorded_total") == 5
        # Recorded once: scoring them again (a redelivery) changes nothing.
        detector.score_batch(_batch(5), time.perf_counter_ns())
        again = detector.score_batch(
            [Transaction("tx12", "card0", 1.0, T0 + 12 * 60_000, terminal_id="t1")],
            time.perf_counter_ns(),
        )
        assert again[0].features["tx_count_1d_by_card"] == 4.0
    finally:
        assert isinstance(detector.store, RedisFeatureStore)
        detector.store.client.close()
        restarted.stop()
