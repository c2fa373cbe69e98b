"""Resolve Kafka and Redis for one run: env var, else a container, else a local process.

Each service resolves on its own, in the order the style guide fixes for tests, the demo and
the bench alike:

1. ``FRAUDSTREAM_KAFKA_BOOTSTRAP`` / ``FRAUDSTREAM_REDIS_URL`` if set (checked, never started);
2. a testcontainers container when a Docker engine answers;
3. a local process: ``redis-server``, or Kafka from its Maven Central jars with Java.

``FRAUDSTREAM_SERVICES_MODE=local`` (or ``container``) skips the Docker check (or insists on it).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from fraudstream.errors import ConfigError, KafkaClientError, ServiceError
from fraudstream.services.containers import (
    docker_answers,
    start_kafka_container,
    start_redis_container,
)
from fraudstream.services.endpoints import (
    KAFKA_BOOTSTRAP_ENV,
    MODE_ENV,
    REDIS_URL_ENV,
    Mode,
    Origin,
    ServiceEndpoints,
)
from fraudstream.services.kafka_jars import default_cache_dir
from fraudstream.services.local_kafka import start_local_kafka
from fraudstream.services.local_redis import start_local_redis
from fraudstream.services.probe import RedisAddress, redis_info, redis_ping
from fraudstream.stream import admin

__all__ = [
    "Endpoint",
    "ServicePlan",
    "check_env_kafka",
    "check_env_redis",
    "plan_services",
    "running_kafka",
    "running_redis",
    "running_services",
]

logger = logging.getLogger(__name__)

UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class ServicePlan:
    """Where each service will come from, decided without starting anything."""

    kafka: Origin
    redis: Origin

    def describe(self) -> str:
        """One line, e.g. ``kafka from local, redis from env``."""
        return f"kafka from {self.kafka}, redis from {self.redis}"


def service_mode(env: Mapping[str, str]) -> Mode:
    """Read ``FRAUDSTREAM_SERVICES_MODE`` (default ``auto``).

    Raises:
        ConfigError: the value is not one of ``auto``, ``container``, ``local``.
    """
    raw = env.get(MODE_ENV) or "auto"
    if raw in ("auto", "container", "local"):
        return cast(Mode, raw)
    raise ConfigError(f"expected {MODE_ENV} to be one of auto, container, local; got {raw!r}")


def plan_services(env: Mapping[str, str]) -> ServicePlan:
    """Decide each service's origin (at most one short Docker ping).

    Raises:
        ConfigError: ``FRAUDSTREAM_SERVICES_MODE`` is invalid.
        ServiceError: the mode is ``container`` but no Docker engine answers.
    """
    mode = service_mode(env)
    need_start = not env.get(KAFKA_BOOTSTRAP_ENV) or not env.get(REDIS_URL_ENV)
    fallback: Origin = "local"
    if need_start and mode != "local":
        if docker_answers(env):
            fallback = "container"
        elif mode == "container":
            raise ServiceError(f"{MODE_ENV}=container but no Docker engine answers")
    kafka: Origin = "env" if env.get(KAFKA_BOOTSTRAP_ENV) else fallback
    redis: Origin = "env" if env.get(REDIS_URL_ENV) else fallback
    return ServicePlan(kafka, redis)


def check_env_kafka(
    bootstrap: str, extra_config: Mapping[str, str] | None = None, timeout_s: float = 30.0
) -> None:
    """Check that the broker named by ``FRAUDSTREAM_KAFKA_BOOTSTRAP`` answers.

    Raises:
        ServiceError: it did not answer a metadata request in time.
    """
    try:
        admin.wait_until_ready(bootstrap, timeout_s=timeout_s, extra_config=extra_config)
    except KafkaClientError as exc:
        raise ServiceError(f"{KAFKA_BOOTSTRAP_ENV}={bootstrap} does not answer: {exc}") from exc


def check_env_redis(url: str, timeout_s: float = 30.0) -> str:
    """Check that the server named by ``FRAUDSTREAM_REDIS_URL`` answers; return its version.

    Raises:
        ConfigError: the URL is malformed.
        ServiceError: it did not answer ``PING`` in time.
    """
    address = RedisAddress.from_url(url)
    deadline = time.monotonic() + timeout_s
    while not redis_ping(address):
        if time.monotonic() >= deadline:
            where = f"{address.host}:{address.port}"
            msg = f"{REDIS_URL_ENV} names {where}, which did not answer PING in {timeout_s:.0f} s"
            raise ServiceError(msg)
        time.sleep(0.2)
    try:
        return redis_info(address).get("redis_version", UNKNOWN)
    except (OSError, ValueError):
        return UNKNOWN


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One resolved service: its address (bootstrap list or Redis URL), version and origin."""

    address: str
    version: str
    origin: Origin


@contextmanager
def running_kafka(
    env: Mapping[str, str],
    *,
    cache_dir: Path | None = None,
    work_dir: Path | None = None,
    kafka_config: Mapping[str, str] | None = None,
) -> Iterator[Endpoint]:
    """Provide a Kafka broker for a ``with`` block; stop it afterwards if this call started it.

    Arguments as for :func:`running_services`.
    """
    origin = plan_services(env).kafka
    if origin == "env":
        bootstrap = env[KAFKA_BOOTSTRAP_ENV]
        check_env_kafka(bootstrap, kafka_config)
        yield Endpoint(bootstrap, UNKNOWN, origin)
        return
    if origin == "container":
        box = start_kafka_container(env)
        try:
            yield Endpoint(box.address, box.version, origin)
        finally:
            box.stop()
        return
    cache = cache_dir if cache_dir is not None else default_cache_dir(env)
    with _work_dir(work_dir, "kafka") as base:
        kafka = start_local_kafka(base, env, cache_dir=cache)
        try:
            yield Endpoint(kafka.bootstrap, kafka.version, origin)
        finally:
            kafka.stop()


@contextmanager
def running_redis(
    env: Mapping[str, str], *, aof: bool = False, work_dir: Path | None = None
) -> Iterator[Endpoint]:
    """Provide a Redis server for a ``with`` block; stop it afterwards if this call started it.

    Arguments as for :func:`running_services` (``aof`` is its ``redis_aof``).
    """
    origin = plan_services(env).redis
    if origin == "env":
        url = env[REDIS_URL_ENV]
        yield Endpoint(url, check_env_redis(url), origin)
        return
    if origin == "container":
        box = start_redis_container(env, aof=aof)
        try:
            yield Endpoint(box.address, box.version, origin)
        finally:
            box.stop()
        return
    with _work_dir(work_dir, "redis") as base:
        redis = start_local_redis(base, env, aof=aof)
        try:
            yield Endpoint(redis.url, redis.version, origin)
        finally:
            redis.stop()


@contextmanager
def running_services(
    env: Mapping[str, str],
    *,
    cache_dir: Path | None = None,
    redis_aof: bool = False,
    work_dir: Path | None = None,
    kafka_config: Mapping[str, str] | None = None,
) -> Iterator[ServiceEndpoints]:
    """Provide Kafka and Redis for the duration of a ``with`` block, then stop what it started.

    Args:
        env: the process environment (pass ``os.environ``); the ``FRAUDSTREAM_*`` variables
            choose the services, and local processes inherit it.
        cache_dir: where Kafka's jars are cached; default ``FRAUDSTREAM_CACHE_DIR``, else
            ``$XDG_CACHE_HOME/fraudstream``, else ``~/.cache/fraudstream``.
        redis_aof: run a started Redis with ``appendonly yes`` and ``appendfsync everysec``.
        work_dir: where local processes keep data and logs (``kafka/``, ``redis/``), kept
            afterwards. Default: temporary directories removed on exit.
        kafka_config: librdkafka settings for checking an env-provided broker (TLS, SASL).

    Raises:
        ServiceError: a service could not be started or reached; names the log to read.
    """
    with (
        running_redis(env, aof=redis_aof, work_dir=work_dir) as redis,
        running_kafka(
            env, cache_dir=cache_dir, work_dir=work_dir, kafka_config=kafka_config
        ) as kafka,
    ):
        endpoints = ServiceEndpoints(
            kafka.address, redis.address, kafka.version, redis.version, kafka.origin, redis.origin
        )
        logger.info("services ready %s", endpoints.describe())
        yield endpoints


@contextmanager
def _work_dir(given: Path | None, name: str) -> Iterator[Path]:
    """``given/name`` (kept), or a temporary directory removed afterwards."""
    if given is not None:
        yield given / name
        return
    temp = Path(tempfile.mkdtemp(prefix=f"fraudstream-{name}-"))
    try:
        yield temp
    finally:
        shutil.rmtree(temp, ignore_errors=True)
