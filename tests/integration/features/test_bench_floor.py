"""The benchmark's floor script speaks the engine's protocol on the engine's keys, and computes
nothing (``python -m bench features --floor``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from bench.features import _FloorStore
from fraudstream.events import Transaction
from fraudstream.features import FeatureConfig, RedisFeatureStore
from fraudstream.features import keys as k

from .streams import T0

pytestmark = pytest.mark.redis


def test_floor_script_answers_like_the_engine_without_computing_features(
    make_store: Callable[[FeatureConfig], RedisFeatureStore], redis_client: redis.Redis
) -> None:
    engine = make_store(FeatureConfig())
    history = [Transaction(f"h{i}", "c1", 10.0 + i, T0 + i * 60_000, "t1") for i in range(5)]
    assert engine.features_for(history)[-1]["tx_count_1d_by_card"] == 5
    prefix = engine.config.key_prefix
    card, term = k.card_base(prefix, "c1"), k.terminal_base(prefix, "t1")
    sizes = redis_client.strlen(card), redis_client.strlen(term)

    floor = _FloorStore(redis_client, engine.config, 0)
    batch = [
        Transaction("f1", "c1", 7.5, T0 + 600_000, "t1"),
        Transaction("f2", "c2", 3.0, T0 + 600_001, None),
    ]
    out = floor.features_for(batch)

    assert [list(x) for x in out] == [list(engine.names)] * 2
    assert [x["amount"] for x in out] == [7.5, 3.0]
    assert out[0]["tx_count_1d_by_card"] == 1  # neutral: the history is not read into features
    assert (redis_client.strlen(card), redis_client.strlen(term)) == sizes  # rewritten in place
    # the record went where the engine keeps it: the engine now sees a redelivery
    engine.features_for(batch[:1])
    assert engine.stats.replays == 1
