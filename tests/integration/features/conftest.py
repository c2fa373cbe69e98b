"""Redis fixtures for the feature engine: a store factory and a local three-master cluster.

The single server comes from the shared ``redis_url`` fixture (tests/conftest.py). The cluster
is started here from the same ``redis-server`` binary: three masters in cluster mode on free
ports in a temporary directory, joined with ``redis-cli --cluster create``.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from fraudstream.features import FeatureConfig, RedisFeatureStore


def _free_port() -> int:
    """A free port whose cluster-bus twin (port + 10000) is free and valid too."""
    rng = random.Random()
    while True:
        port = rng.randrange(20_000, 30_000)
        try:
            for candidate in (port, port + 10_000):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port


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


@pytest.fixture(scope="session")
def redis_cluster_url() -> Iterator[str]:
    """URL of a local three-master Redis Cluster (skips when redis-server/cli are missing)."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        pytest.skip("redis-server and redis-cli are needed for the cluster test")
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="fs-cluster-") as tmp:
        ports = [_free_port() for _ in range(3)]
        try:
            for port in ports:
                d = Path(tmp) / str(port)
                d.mkdir()
                procs.append(
                    subprocess.Popen(
                        [server, "--port", str(port), "--cluster-enabled", "yes",
                         "--cluster-config-file", "nodes.conf", "--save", "", "--appendonly",
                         "no", "--dir", str(d), "--bind", "127.0.0.1"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    )
                )  # fmt: skip
            for port in ports:
                _wait_ping(port)
            subprocess.run(
                [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
                 "--cluster-replicas", "0", "--cluster-yes"],
                check=True, capture_output=True, timeout=60,
            )  # fmt: skip
            _wait_cluster_ok(ports[0])
            yield f"redis://127.0.0.1:{ports[0]}"
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(timeout=10)


def _wait_ping(port: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis(host="127.0.0.1", port=port).ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _wait_cluster_ok(port: int) -> None:
    deadline = time.monotonic() + 20
    client = redis.Redis(host="127.0.0.1", port=port)
    while client.execute_command("CLUSTER INFO").get("cluster_state") != "ok":
        if time.monotonic() > deadline:
            raise TimeoutError(f"cluster on port {port} never reached cluster_state:ok")
        time.sleep(0.1)


@pytest.fixture
def cluster_client(redis_cluster_url: str) -> Iterator[RedisCluster]:
    """A cluster client; the cluster is flushed afterwards."""
    client = RedisCluster.from_url(redis_cluster_url)
    yield client
    client.flushall(target_nodes=RedisCluster.PRIMARIES)
    client.close()
