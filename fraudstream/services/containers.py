"""Kafka and Redis in Docker: detection, testcontainers for tests, plain containers for ``up``.

Detection is one ``GET /_ping`` on the engine's socket with a short timeout, so a machine
without an engine costs a failed ``connect`` and never hangs. Attached containers (tests, the
bench) go through testcontainers, whose reaper removes them even if Python is killed;
``services up`` must outlive its process, so it starts labelled containers with the Docker SDK
and records their ids instead. Both come from the same image and environment below.

``docker`` and ``testcontainers`` are the optional ``docker`` extra and ship no type
information usable here, so they are imported lazily with :mod:`importlib` when an engine
answers; a machine without Docker never imports them.
"""

from __future__ import annotations

import importlib
import logging
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fraudstream.errors import KafkaClientError, ServiceError
from fraudstream.services.endpoints import KAFKA_IMAGE, KAFKA_VERSION, REDIS_IMAGE
from fraudstream.services.local_kafka import new_cluster_id
from fraudstream.services.probe import RedisAddress, redis_info, redis_ping
from fraudstream.services.process import free_ports
from fraudstream.stream import admin

__all__ = ["ContainerService", "docker_answers", "start_kafka_container", "start_redis_container"]

logger = logging.getLogger(__name__)

_DEFAULT_SOCKET = "/var/run/docker.sock"
LABEL = "org.fraudstream.services"
_REDIS_PORT = 6379


@dataclass(frozen=True, slots=True)
class ContainerService:
    """A running container: its address, version and a way to remove it."""

    address: str
    version: str
    container_id: str
    handle: Any  # a testcontainers DockerContainer (attached) or a docker SDK Container

    def stop(self) -> None:
        """Remove the container (and its anonymous volumes)."""
        if hasattr(self.handle, "get_wrapped_container"):
            self.handle.stop()
        else:
            self.handle.remove(force=True, v=True)


def docker_answers(env: Mapping[str, str], timeout_s: float = 1.0) -> bool:
    """Whether a Docker engine answers ``/_ping`` at ``DOCKER_HOST`` or the default socket."""
    host = env.get("DOCKER_HOST") or f"unix://{_DEFAULT_SOCKET}"
    parts = urlsplit(host)
    try:
        if parts.scheme == "unix":
            if not Path(parts.path).exists():
                return False
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout_s)
            sock.connect(parts.path)
        elif parts.scheme == "tcp" and not env.get("DOCKER_TLS_VERIFY") and parts.hostname:
            sock = socket.create_connection((parts.hostname, parts.port or 2375), timeout_s)
        else:  # ssh://, TLS, named pipes: let the Docker SDK speak, bounded by the timeout
            return _sdk_ping(env, timeout_s)
        with sock:
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            status = sock.recv(64).split(b"\r\n", 1)[0]
    except OSError:
        return False
    return status.startswith(b"HTTP/") and b" 200" in status


def _sdk_ping(env: Mapping[str, str], timeout_s: float) -> bool:
    try:
        docker = importlib.import_module("docker")
        client = docker.from_env(environment=dict(env), timeout=max(1, round(timeout_s)))
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # any failure of an optional probe means "no engine"
        return False


def docker_host_name(env: Mapping[str, str]) -> str:
    """The address where published container ports are reached from this machine."""
    parts = urlsplit(env.get("DOCKER_HOST", ""))
    if parts.scheme in ("tcp", "ssh") and parts.hostname:
        return parts.hostname
    return "127.0.0.1"


def kafka_environment(host: str, port: int) -> dict[str, str]:
    """The apache/kafka image settings for one KRaft broker+controller published on ``port``.

    The client listener uses the same port inside and outside the container, so the address
    the broker advertises is the one the host reaches; BROKER and CONTROLLER stay internal.
    """
    return {
        "CLUSTER_ID": new_cluster_id(),
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": f"PLAINTEXT://:{port},BROKER://:19092,CONTROLLER://:9093",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://{host}:{port},BROKER://localhost:19092",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": (
            "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,BROKER:PLAINTEXT"
        ),
        "KAFKA_INTER_BROKER_LISTENER_NAME": "BROKER",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
        "KAFKA_NUM_PARTITIONS": "1",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
        "KAFKA_MIN_INSYNC_REPLICAS": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
    }


def redis_command(aof: bool) -> list[str]:
    """The ``redis-server`` command line for the container, with or without the AOF."""
    persistence = ["--appendonly", "yes", "--appendfsync", "everysec"] if aof else []
    return ["redis-server", "--save", "", *persistence]


def start_kafka_container(
    env: Mapping[str, str], *, detached: bool = False, timeout_s: float = 180.0
) -> ContainerService:
    """Start ``apache/kafka`` and wait until it answers a metadata request.

    Raises:
        ServiceError: the container did not start or did not answer; quotes its last log lines.
    """
    host = docker_host_name(env)
    port = free_ports(1)[0]
    environment = kafka_environment(host, port)
    handle = _run(env, KAFKA_IMAGE, environment, None, {port: port}, detached)
    bootstrap = f"{host}:{port}"
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin.wait_until_ready(bootstrap, timeout_s=2.0)
            break
        except KafkaClientError:
            _fail_if_exited(handle, "kafka")
            if time.monotonic() >= deadline:
                _remove(handle)
                raise ServiceError(
                    f"kafka container {KAFKA_IMAGE} did not answer at {bootstrap} within "
                    f"{timeout_s:.0f} s; last lines:\n{_logs(handle)}"
                ) from None
    logger.info("kafka container started bootstrap=%s image=%s", bootstrap, KAFKA_IMAGE)
    return ContainerService(bootstrap, KAFKA_VERSION, _container_id(handle), handle)


def start_redis_container(
    env: Mapping[str, str], *, aof: bool = False, detached: bool = False, timeout_s: float = 60.0
) -> ContainerService:
    """Start ``redis:7`` on a published port and wait for ``PING``.

    Raises:
        ServiceError: the container did not start or did not answer; quotes its last log lines.
    """
    host = docker_host_name(env)
    port = free_ports(1)[0]
    handle = _run(env, REDIS_IMAGE, {}, redis_command(aof), {_REDIS_PORT: port}, detached)
    address = RedisAddress(host, port)
    deadline = time.monotonic() + timeout_s
    while not redis_ping(address):
        _fail_if_exited(handle, "redis")
        if time.monotonic() >= deadline:
            _remove(handle)
            msg = f"redis container did not answer PING at {host}:{port} within {timeout_s:.0f} s"
            raise ServiceError(f"{msg}; last lines:\n{_logs(handle)}")
        time.sleep(0.1)
    version = redis_info(address).get("redis_version", "unknown")
    url = f"redis://{host}:{port}/0"
    logger.info("redis container started url=%s version=%s aof=%s", url, version, aof)
    return ContainerService(url, version, _container_id(handle), handle)


def _run(
    env: Mapping[str, str],
    image: str,
    environment: dict[str, str],
    command: list[str] | None,
    ports: dict[int, int],
    detached: bool,
) -> Any:
    try:
        if detached:
            docker = importlib.import_module("docker")
            client = docker.from_env(environment=dict(env), timeout=60)
            return client.containers.run(
                image,
                command=command,
                environment=environment,
                ports={f"{inner}/tcp": outer for inner, outer in ports.items()},
                labels={LABEL: "up"},
                detach=True,
            )
        container_module = importlib.import_module("testcontainers.core.container")
        container = container_module.DockerContainer(image, command=command, env=environment)
        for inner, outer in ports.items():
            container.with_bind_ports(inner, outer)
        return container.start()
    except ImportError as exc:
        msg = (
            "a Docker engine answers but testcontainers is missing: pip install fraudstream[docker]"
        )
        raise ServiceError(msg) from exc
    except Exception as exc:  # the Docker SDK's errors (pull, create, start) end up here
        raise ServiceError(f"could not start container {image}: {exc}") from exc


def _wrapped(handle: Any) -> Any:
    return handle.get_wrapped_container() if hasattr(handle, "get_wrapped_container") else handle


def _container_id(handle: Any) -> str:
    return str(_wrapped(handle).id)


def _fail_if_exited(handle: Any, name: str) -> None:
    container = _wrapped(handle)
    container.reload()
    if container.status in ("exited", "dead"):
        logs = _logs(handle)
        _remove(handle)
        raise ServiceError(f"{name} container exited during startup; last lines:\n{logs}")


def _logs(handle: Any, lines: int = 15) -> str:
    try:
        raw: bytes = _wrapped(handle).logs(tail=lines)
    except Exception as exc:  # logs are best effort in an error path
        return f"(logs unavailable: {exc})"
    return raw.decode("utf-8", errors="replace").rstrip() or "(no output)"


def _remove(handle: Any) -> None:
    try:
        _wrapped(handle).remove(force=True, v=True)
    except Exception as exc:  # already gone, or the engine went away
        logger.warning("could not remove container error=%s", exc)


def remove_container(env: Mapping[str, str], container_id: str) -> bool:
    """Remove a container started by ``services up``; return whether it existed."""
    docker = importlib.import_module("docker")
    client = docker.from_env(environment=dict(env), timeout=60)
    try:
        client.containers.get(container_id).remove(force=True, v=True)
    except docker.errors.NotFound:
        return False
    finally:
        client.close()
    return True


def container_running(env: Mapping[str, str], container_id: str) -> bool:
    """Whether a container started by ``services up`` is still running."""
    try:
        docker = importlib.import_module("docker")
        client = docker.from_env(environment=dict(env), timeout=10)
        try:
            return bool(client.containers.get(container_id).status == "running")
        finally:
            client.close()
    except Exception:  # gone, or no engine: either way not running
        return False
