"""Helpers the benchmarks share: the detector as a child process, and CPU use of each process."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Mapping, Sequence

import psutil
import redis

from fraudstream import services
from fraudstream.features import FeatureConfig
from fraudstream.settings import KafkaSettings, Settings, TopicSettings
from fraudstream.simulator import SimulatorConfig
from fraudstream.stream import admin
from fraudstream.stream.publish import Publisher, PublishStats, publish_stream

__all__ = [
    "PARTITIONS",
    "QUICK_DATA",
    "broker_process",
    "cleanup_run",
    "cpu_seconds",
    "detector_env",
    "feature_config",
    "free_port",
    "fresh_run",
    "publish_backlog",
    "redis_cpu",
    "start_detector",
    "wait_ready",
]

PARTITIONS = 3  # of every benchmark topic
QUICK_DATA = SimulatorConfig(customers=300, terminals=600, days=30)  # --quick runs' payments


def free_port() -> int:
    """A TCP port free on localhost now (for the detector's metrics endpoint)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    """Wait until the detector child answers ``/readyz`` on ``port``; raise if it dies first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"detector exited with {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("detector not ready in time")


def broker_process(bootstrap: str) -> psutil.Process | None:
    """The local Kafka broker's process, found by its listening port (None if not local)."""
    port = int(bootstrap.rsplit(":", 1)[1])
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] != "java":
            continue
        try:
            if any(c.laddr.port == port and c.status == "LISTEN" for c in proc.net_connections()):
                return proc
        except (psutil.AccessDenied, psutil.NoSuchProcess):
            continue
    return None


def cpu_seconds(proc: psutil.Process | None) -> float | None:
    """User + system CPU seconds of ``proc`` so far (None if unknown or gone)."""
    if proc is None:
        return None
    try:
        t = proc.cpu_times()
        return float(t.user + t.system)
    except psutil.NoSuchProcess:
        return None


def redis_cpu(client: redis.Redis) -> float:
    """User + system CPU seconds of the Redis server so far (``INFO cpu``)."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def fresh_run(tag: str) -> tuple[str, TopicSettings]:
    run = f"{tag}-{uuid.uuid4().hex[:8]}"
    topics = TopicSettings(
        transactions=f"{run}-transactions",
        labels=f"{run}-labels",
        scores=f"{run}-scores",
        flags=f"{run}-flags",
        dead_letters=f"{run}-dlq",
    )
    return run, topics


def feature_config(prefix: str, settings: Settings) -> FeatureConfig:
    """The engine settings as ``app.build`` makes them, with a run's own key prefix."""
    return FeatureConfig(key_prefix=prefix, **dataclasses.asdict(settings.features))


def publish_backlog(
    bootstrap: str,
    topics: TopicSettings,
    records: Sequence[Mapping[str, object]],
    label_delay_ms: int,
) -> PublishStats:
    publisher = Publisher(KafkaSettings(bootstrap=bootstrap), extra={"linger.ms": "20"})
    return publish_stream(
        records, publisher, topics, rate=None, label_delay_ms=label_delay_ms, drain_labels=False
    )


def cleanup_run(endpoints: services.ServiceEndpoints, topics: TopicSettings, prefix: str) -> None:
    """Delete a run's topics and Redis keys, so runs never weigh on each other."""
    admin.delete_topics(endpoints.kafka_bootstrap, topics.names())
    client = redis.Redis.from_url(endpoints.redis_url)
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{prefix}:*", count=5000):
            batch.append(key)
            if len(batch) >= 5000:
                client.unlink(*batch)
                batch.clear()
        if batch:
            client.unlink(*batch)
    finally:
        client.close()


def detector_env(
    bootstrap: str, redis_url: str, run: str, topics: TopicSettings, **settings: str
) -> dict[str, str]:
    """The environment of a ``fraudstream detect`` child for one run: this process's variables,
    the services, the run's topics, key prefix and group, and ``settings`` as ``FRAUDSTREAM_<K>``.
    """
    env = {
        **os.environ,
        "FRAUDSTREAM_KAFKA_BOOTSTRAP": bootstrap,
        "FRAUDSTREAM_REDIS_URL": redis_url,
        "FRAUDSTREAM_REDIS_KEY_PREFIX": run,
        "FRAUDSTREAM_GROUP_ID": run,
        "FRAUDSTREAM_TOPIC_TRANSACTIONS": topics.transactions,
        "FRAUDSTREAM_TOPIC_LABELS": topics.labels,
        "FRAUDSTREAM_TOPIC_SCORES": topics.scores,
        "FRAUDSTREAM_TOPIC_FLAGS": topics.flags,
        "FRAUDSTREAM_TOPIC_DEAD_LETTERS": topics.dead_letters,
        "FRAUDSTREAM_TOPIC_MODELS": topics.models,
        "FRAUDSTREAM_CREATE_TOPICS": "false",
    }
    env.update({f"FRAUDSTREAM_{k.upper()}": v for k, v in settings.items()})
    return env


def start_detector(
    endpoints: services.ServiceEndpoints, topics: TopicSettings, run: str, batch_size: int
) -> tuple[subprocess.Popen[bytes], int]:
    """``fraudstream detect`` as its own process for one run, at ``batch_size``; and its
    metrics port."""
    port = free_port()
    env = detector_env(endpoints.kafka_bootstrap, endpoints.redis_url, run, topics,
                       batch_size=str(batch_size), metrics_port=str(port),
                       summary_every_s="3600")  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "fraudstream", "detect"], env=env, stderr=subprocess.DEVNULL
    )
    return proc, port
