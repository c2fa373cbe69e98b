"""The benchmark's ablations speak the engine's protocol on the engine's keys: the floor script
computes nothing (``python -m bench features --floor``); the free-search engine writes what the
engine does, with empty windows (``--free-searches``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from bench.features import _AblatedStore
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

    floor = _AblatedStore(redis_client, engine.config, 0, "floor")
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


def test_free_search_engine_writes_the_engines_state_with_empty_windows(
    make_store: Callable[[FeatureConfig], RedisFeatureStore], redis_client: redis.Redis
) -> None:
    engine = make_store(FeatureConfig())
    free = _AblatedStore(redis_client, make_store(FeatureConfig()).config, 0, "free-searches")
    day = 86_400_000
    stream = [  # in order, over 60 days: long enough that the logs are searched and pruned
        Transaction(f"x{i}", f"c{i % 2}", 5.0 + i % 7, T0 + i * day // 3, f"t{i % 3}")
        for i in range(180)
    ]
    for at in range(0, len(stream), 30):
        engine_out = engine.features_for(stream[at : at + 30])
        free_out = free.features_for(stream[at : at + 30])

    def state(store: RedisFeatureStore) -> dict[str, bytes]:
        prefix = store.config.key_prefix
        found = {}
        for key in redis_client.scan_iter(match=f"{prefix}:{{[ct]:*"):
            value = redis_client.get(key)
            assert value is not None
            # the base's first 8 bytes are the wall time of its last TTL refresh
            found[key.decode()[len(prefix) :]] = value[8:] if b":R" not in key else value
        return found

    assert len(state(engine)) == 2 * 2 + 3  # two cards (base and sums), three terminals
    sums = redis_client.strlen(k.card_base(engine.config.key_prefix, "c0") + ":R")
    assert sums < 72 * 90  # 72 B per record: the card's 90 transactions were pruned
    assert state(free) == state(engine)
    last_engine, last_free = engine_out[-1], free_out[-1]
    assert last_free["amount"] == last_engine["amount"]
    assert last_engine["tx_count_7d_by_card"] > 1
    assert last_free["tx_count_7d_by_card"] == 1  # the transaction itself: the windows are empty
