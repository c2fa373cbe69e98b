"""The Redis engine (Lua) against the in-memory oracle on random streams, on a real Redis."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings

from fraudstream.features import FeatureConfig, MemoryFeatureStore, RedisFeatureStore
from fraudstream.features.config import DAY_MS, HOUR_MS

from .streams import Step, streams

pytestmark = pytest.mark.redis

# Small caps, a short horizon and one-hour lateness so folding, pruning and late events all
# happen within a few dozen transactions (terminals_cap is unused by both stores).
TIGHT = FeatureConfig(
    allowed_lateness_ms=HOUR_MS,
    label_delay_ms=DAY_MS,
    exact_cap=6,
    fold_bucket_ms=2 * DAY_MS,
    terminals_cap=2,
)


def _run_both(store: RedisFeatureStore, steps: list[Step]) -> None:
    oracle = MemoryFeatureStore(store.config)
    for step in steps:
        assert store.features_for(step.transactions) == oracle.features_for(step.transactions)
        assert store.apply_labels(step.labels) == oracle.apply_labels(step.labels)
    assert store.stats == oracle.stats
    ids = [tx.transaction_id for step in steps for tx in step.transactions] + ["unknown"]
    assert store.snapshot(ids) == oracle.snapshot(ids)


@pytest.mark.parametrize("config", [FeatureConfig(), TIGHT], ids=["default", "tight"])
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=streams())
def test_redis_store_equals_memory_oracle_on_random_streams(
    make_store: Callable[[FeatureConfig], RedisFeatureStore], config: FeatureConfig,
    steps: list[Step],
) -> None:  # fmt: skip
    _run_both(make_store(config), steps)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=streams(max_steps=30))
def test_redis_store_equals_memory_oracle_on_long_streams(
    make_store: Callable[[FeatureConfig], RedisFeatureStore], steps: list[Step]
) -> None:
    _run_both(make_store(TIGHT), steps)
