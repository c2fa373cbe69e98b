"""Replays change nothing, every key has a TTL, the cluster gives the single-node answers."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
import redis
from redis.cluster import RedisCluster

from fraudstream.events import Label, Transaction
from fraudstream.features import FeatureConfig, LabelStats, RedisFeatureStore
from fraudstream.features.base import terminal_float
from fraudstream.features.config import HOUR_MS
from fraudstream.features.memory import MemoryFeatureStore

from .streams import T0

pytestmark = pytest.mark.redis


def _stream(n: int, seed: int = 7) -> list[Transaction]:
    rng = random.Random(seed)
    return [
        Transaction(f"x{i}", f"c{rng.randrange(30)}", rng.randrange(1, 20_000) / 100,
                    T0 + i * 600_000 + rng.randrange(-HOUR_MS, HOUR_MS),
                    f"t{rng.randrange(12)}" if rng.random() < 0.95 else None,
                    channel=rng.choice(["card_present", "card_not_present"]),
                    lat=rng.uniform(40, 50), lon=rng.uniform(0, 10))
        for i in range(n)
    ]  # fmt: skip


def _state(client: redis.Redis, prefix: str) -> dict[bytes, bytes]:
    return {k: client.dump(k) for k in client.scan_iter(match=f"{prefix}:*", count=1000)}


def test_replaying_any_slice_leaves_every_aggregate_unchanged(
    make_store: Callable[[FeatureConfig], RedisFeatureStore], redis_client: redis.Redis
) -> None:
    store = make_store(FeatureConfig())
    txs = _stream(600)
    first: list[dict[str, float]] = []
    for i in range(0, len(txs), 50):
        first += store.features_for(txs[i : i + 50])
    labels = [Label(tx.transaction_id, i % 7 == 0) for i, tx in enumerate(txs[:300])]
    assert store.apply_labels(labels) == LabelStats(applied=300)
    before = _state(redis_client, store.config.key_prefix)
    for lo, hi in [(0, 600), (123, 171), (599, 600), (10, 400)]:
        assert store.features_for(txs[lo:hi]) == first[lo:hi]
        assert store.apply_labels(labels[lo:hi]).applied == 0
    assert _state(redis_client, store.config.key_prefix) == before
    assert store.stats.replays == 600 + 48 + 1 + 390


def test_an_id_reused_by_another_transaction_is_a_conflict_and_changes_nothing(
    make_store: Callable[[FeatureConfig], RedisFeatureStore], redis_client: redis.Redis
) -> None:
    store, oracle = make_store(FeatureConfig()), MemoryFeatureStore(FeatureConfig())
    txs = _stream(200)
    assert store.features_for(txs) == oracle.features_for(txs)
    before = _state(redis_client, store.config.key_prefix)
    a, b, c = txs[5], txs[50], txs[120]
    reused = [
        a,  # a redelivery: not a conflict
        Transaction(b.transaction_id, b.card_id, b.amount + 1, b.timestamp_ms, b.terminal_id),
        Transaction(c.transaction_id, c.card_id, c.amount, c.timestamp_ms + 1, c.terminal_id),
        Transaction(a.transaction_id, a.card_id, a.amount, a.timestamp_ms, "elsewhere"),
    ]
    got = store.features_for(reused)
    assert store.conflicts == [1, 2, 3]
    assert oracle.features_for(reused) == got
    assert oracle.conflicts == [1, 2, 3]
    assert store.stats.conflicts == 3
    assert got[1:3] == store.features_for([b, c])  # the first transaction's features
    assert store.conflicts == []
    assert _state(redis_client, store.config.key_prefix) == before


def test_every_key_has_a_ttl(
    make_store: Callable[[FeatureConfig], RedisFeatureStore], redis_client: redis.Redis
) -> None:
    store = make_store(FeatureConfig())
    txs = _stream(200)
    store.features_for(txs)
    store.apply_labels([Label(tx.transaction_id, True) for tx in txs])
    ttls = [
        redis_client.pttl(k) for k in redis_client.scan_iter(match=f"{store.config.key_prefix}:*")
    ]
    assert len(ttls) > 200  # a record per transaction, plus the entities
    assert all(ttl > 0 for ttl in ttls)


def test_a_transaction_costs_one_record_key_on_a_single_redis(
    make_store: Callable[[FeatureConfig], RedisFeatureStore], redis_client: redis.Redis
) -> None:
    store = make_store(FeatureConfig())
    txs = _stream(300)
    store.features_for(txs)
    keys = {k.decode() for k in redis_client.scan_iter(match=f"{store.config.key_prefix}:*")}
    records = {k for k in keys if "{x:" in k}
    assert len(records) == len(txs)
    assert not any(":x:" in k for k in keys)  # per-entity markers are for Redis Cluster only
    entities = {tx.card_id for tx in txs} | {tx.terminal_id for tx in txs if tx.terminal_id}
    assert len(keys - records) <= 3 * len(entities)


def test_script_is_reloaded_after_the_server_forgets_it(
    make_store: Callable[[FeatureConfig], RedisFeatureStore], redis_client: redis.Redis
) -> None:
    store = make_store(FeatureConfig())
    txs = _stream(20)
    first = store.features_for(txs[:10])
    redis_client.script_flush()
    assert store.features_for(txs)[:10] == first


def test_a_large_batch_runs_as_pipelined_chunks_with_the_oracle_results(
    make_store: Callable[[FeatureConfig], RedisFeatureStore], redis_client: redis.Redis
) -> None:
    store = make_store(FeatureConfig())
    oracle = MemoryFeatureStore(store.config)
    txs = _stream(400, seed=5)
    batch = txs[:300] + txs[40:140]  # redeliveries of earlier chunks of the same batch
    assert store.features_for(batch) == oracle.features_for(batch)
    redis_client.script_flush()  # forgotten mid-stream: every chunk of the next batch reruns
    assert store.features_for(txs[250:]) == oracle.features_for(txs[250:])
    assert store.stats == oracle.stats
    assert store.features_for([]) == []


@pytest.mark.parametrize("poll_us", [1, 1_000_000])  # gives up and blocks / polls until read
def test_busy_polling_for_the_replies_gives_the_oracle_results(
    make_store: Callable[[FeatureConfig], RedisFeatureStore],
    redis_client: redis.Redis,
    poll_us: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    polls: list[float] = []
    can_read = redis.connection.AbstractConnection.can_read

    def counted(self: redis.connection.AbstractConnection, timeout: float = 0) -> bool:
        polls.append(timeout)
        return can_read(self, timeout)

    monkeypatch.setattr(redis.connection.AbstractConnection, "can_read", counted)
    store = RedisFeatureStore(
        redis_client, make_store(FeatureConfig()).config, busy_poll_us=poll_us
    )
    oracle = MemoryFeatureStore(store.config)
    txs = _stream(300, seed=9)
    for batch in (txs[:20], txs[20:220], txs[220:], txs[100:130]):  # chunked; replays last
        assert store.features_for(batch) == oracle.features_for(batch)
    assert store.stats == oracle.stats
    # every one of the 12 replies was polled for (redis-py itself polls once per checkout)
    assert len(polls) >= 4 + 12
    assert set(polls) == {0}


def test_first_use_ignores_a_terminal_id_found_in_another_field(
    make_store: Callable[[FeatureConfig], RedisFeatureStore],
) -> None:
    # The engine searches the card's log bytes for the terminal: an event time equal to the
    # terminal's hash puts the same bytes in a time field, which must not count as a use.
    store = make_store(FeatureConfig())
    t0 = int(terminal_float("tA"))
    txs = [
        Transaction("u0", "c", 1.0, t0, "tB"),
        Transaction("u1", "c", 1.0, t0 + HOUR_MS, "tA"),
        Transaction("u2", "c", 1.0, t0 + 2 * HOUR_MS, "tA"),
    ]
    first_use = [f["terminal_first_use_30d_by_card"] for f in store.features_for(txs)]
    assert first_use == [1.0, 1.0, 0.0]
    assert store.snapshot(["u1"])["u1"] == MemoryFeatureStore(store.config).features_for(txs)[1]


def test_cluster_gives_the_single_node_results(
    make_store: Callable[[FeatureConfig], RedisFeatureStore], cluster_client: RedisCluster
) -> None:
    single = make_store(FeatureConfig())
    cluster = RedisFeatureStore(cluster_client, FeatureConfig())
    txs = _stream(400, seed=3)
    labels = [Label(tx.transaction_id, i % 5 == 0) for i, tx in enumerate(txs)]
    for i in range(0, 400, 40):
        batch = txs[i : i + 40] + txs[max(0, i - 5) : i]  # with redeliveries
        assert cluster.features_for(batch) == single.features_for(batch)
        assert cluster.apply_labels(labels[:i]) == single.apply_labels(labels[:i])
    ids = [tx.transaction_id for tx in txs]
    assert cluster.snapshot(ids) == single.snapshot(ids)
    assert cluster.stats == single.stats
    slots = {cluster_client.keyslot(k) for k in cluster_client.scan_iter(match="fs:*")}
    assert len(slots) > 50
