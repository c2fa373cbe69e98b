"""Redis fixtures for the feature engine: a store factory and clients.

The single server comes from the shared ``redis_url`` fixture, the cluster from the shared
``redis_cluster_url`` fixture (both in tests/conftest.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
import redis
from redis.cluster import RedisCluster

from fraudstream.features import FeatureConfig, RedisFeatureStore


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client of the session's Redis."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def make_store(redis_client: redis.Redis) -> Iterator[Callable[[FeatureConfig], RedisFeatureStore]]:
    """``make_store(config)`` -> a store on a fresh key prefix, deleted afterwards."""
    prefixes: list[str] = []

    def make(config: FeatureConfig) -> RedisFeatureStore:
        prefix = f"test-{uuid.uuid4().hex[:12]}"
        prefixes.append(prefix)
        return RedisFeatureStore(redis_client, _with_prefix(config, prefix))

    yield make
    for prefix in prefixes:
        found = list(redis_client.scan_iter(match=f"{prefix}:*", count=1000))
        if found:
            redis_client.unlink(*found)


def _with_prefix(config: FeatureConfig, prefix: str) -> FeatureConfig:
    from dataclasses import replace

    return replace(config, key_prefix=prefix)


@pytest.fixture
def cluster_client(redis_cluster_url: str) -> Iterator[RedisCluster]:
    """A cluster client; the cluster is flushed afterwards."""
    client = RedisCluster.from_url(redis_cluster_url)
    yield client
    client.flushall(target_nodes=RedisCluster.PRIMARIES)
    client.close()
