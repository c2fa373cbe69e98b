"""The services module against real processes: round trips, lifecycle, startup failures."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from confluent_kafka import Consumer, Producer

from fraudstream.errors import ConfigError, ServiceError
from fraudstream.services import (
    Endpoint,
    export_lines,
    running_services,
    services_down,
    services_status,
    services_up,
)
from fraudstream.services.containers import docker_answers, kafka_environment
from fraudstream.services.kafka_jars import default_cache_dir
from fraudstream.services.local_kafka import start_local_kafka
from fraudstream.services.local_redis import start_local_redis
from fraudstream.services.resolve import plan_services


def _local_env(**extra: str) -> dict[str, str]:
    """The test process's environment without FRAUDSTREAM_* service choices, forced local."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUDSTREAM_")}
    if "FRAUDSTREAM_CACHE_DIR" in os.environ:
        env["FRAUDSTREAM_CACHE_DIR"] = os.environ["FRAUDSTREAM_CACHE_DIR"]
    env["FRAUDSTREAM_SERVICES_MODE"] = "local"
    env.update(extra)
    return env


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").exists() and " Z " in Path(f"/proc/{pid}/stat").read_text()


@pytest.mark.kafka
def test_message_round_trips_through_the_broker(
    kafka_bootstrap: str, tmp_topic: Callable[..., str]
) -> None:
    topic = tmp_topic()
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(topic, key=b"card-1", value=b'{"amount": 12.5}')
    assert producer.flush(10) == 0

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": f"test-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.subscribe([topic])
        message = None
        for _ in range(60):
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                break
        assert message is not None
        assert message.error() is None
        assert (message.key(), message.value()) == (b"card-1", b'{"amount": 12.5}')
    finally:
        consumer.close()


@pytest.mark.redis
def test_redis_answers_ping_and_round_trips_a_value(redis_url: str, redis_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.ping() is True
        client.set(f"{redis_prefix}k", b"v", ex=60)
        assert client.get(f"{redis_prefix}k") == b"v"
    finally:
        client.close()


@pytest.mark.kafka
@pytest.mark.redis
def test_env_variables_win_and_nothing_is_started(
    kafka_service: Endpoint, redis_service: Endpoint
) -> None:
    env = {
        "FRAUDSTREAM_KAFKA_BOOTSTRAP": kafka_service.address,
        "FRAUDSTREAM_REDIS_URL": redis_service.address,
        "FRAUDSTREAM_SERVICES_MODE": "container",  # would fail if anything were started
    }
    with running_services(env) as endpoints:
        assert (endpoints.kafka_origin, endpoints.redis_origin) == ("env", "env")
        assert endpoints.kafka_bootstrap == kafka_service.address
        assert endpoints.redis_url == redis_service.address
        assert endpoints.redis_version == redis_service.version


def test_unknown_services_mode_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="FRAUDSTREAM_SERVICES_MODE"):
        plan_services({"FRAUDSTREAM_SERVICES_MODE": "cloud"})


@pytest.mark.kafka
@pytest.mark.redis
@pytest.mark.slow
def test_up_status_down_leaves_no_process_behind(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    env = _local_env()
    endpoints = services_up(env, state_dir)
    try:
        assert (endpoints.kafka_origin, endpoints.redis_origin) == ("local", "local")
        assert "export FRAUDSTREAM_KAFKA_BOOTSTRAP=" in export_lines(endpoints)
        status = services_status(state_dir)
        assert status.all_running, str(status)
        pids = [s.pid for s in status.services if s.pid is not None]
        assert len(pids) == 2
        assert services_up(env, state_dir) == endpoints  # a second `up` finds them running
    finally:
        lines = services_down(state_dir)
    assert len(lines) == 2
    assert all(line.startswith("stopped") for line in lines), lines
    assert all(_gone(pid) for pid in pids)
    assert not services_status(state_dir).services
    assert not (state_dir / "kafka").exists()
    assert not (state_dir / "redis").exists()
    assert services_down(state_dir) == []


@pytest.mark.redis
def test_redis_on_a_taken_port_fails_naming_its_log(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServiceError, match=r"redis exited during startup") as info:
            start_local_redis(tmp_path, _local_env(), port=port)
    message = str(info.value)
    assert str(tmp_path / "redis.log") in message
    assert "in use" in message.lower()


@pytest.mark.redis
def test_local_redis_with_aof_keeps_writes_across_a_restart(tmp_path: Path) -> None:
    first = start_local_redis(tmp_path, _local_env(), aof=True)
    try:
        client = redis.Redis.from_url(first.url)
        client.set("durable", b"yes")
        client.close()
    finally:
        first.stop()
    assert any((tmp_path / "data").rglob("*.aof"))
    second = start_local_redis(tmp_path, _local_env(), aof=True)
    try:
        client = redis.Redis.from_url(second.url)
        assert client.get("durable") == b"yes"
        client.close()
    finally:
        second.stop()


@pytest.mark.kafka
def test_broker_that_dies_during_startup_fails_naming_its_log(tmp_path: Path) -> None:
    fake_java = tmp_path / "java"
    fake_java.write_text(
        "#!/bin/sh\n"
        'case "$*" in *StorageTool*) exit 0 ;; esac\n'
        'echo "fake broker: cannot allocate heap" >&2\n'
        "exit 7\n"
    )
    fake_java.chmod(fake_java.stat().st_mode | stat.S_IXUSR)
    env = _local_env(FRAUDSTREAM_JAVA=str(fake_java))
    with pytest.raises(ServiceError, match="kafka exited during startup") as info:
        start_local_kafka(tmp_path / "kafka", env, cache_dir=default_cache_dir(env))
    message = str(info.value)
    assert str(tmp_path / "kafka" / "kafka.log") in message
    assert "fake broker: cannot allocate heap" in message


@pytest.mark.kafka
@pytest.mark.redis
def test_local_services_are_reachable_and_removed_afterwards(tmp_path: Path) -> None:
    work = tmp_path / "work"
    with running_services(_local_env(), work_dir=work) as endpoints:
        assert endpoints.kafka_version == "4.1.1"
        assert endpoints.redis_version.startswith(("6.", "7.", "8."))
        client = redis.Redis.from_url(endpoints.redis_url)
        assert client.ping() is True
        client.close()
        assert (work / "kafka" / "kafka.log").exists()
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(endpoints.redis_url, socket_connect_timeout=1).ping()


def _unix_server(path: str, reply: bytes | None) -> socket.socket:
    """A listening Unix socket; with ``reply``, one thread answers the first request."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen()
    if reply is not None:

        def answer() -> None:
            conn, _ = server.accept()
            with conn:
                conn.recv(1024)
                conn.sendall(reply)

        threading.Thread(target=answer, daemon=True).start()
    return server


def test_docker_detection_is_quick_with_or_without_an_engine() -> None:
    short = Path(tempfile.mkdtemp(prefix="fs-"))  # Unix socket paths must stay short
    try:
        missing = {"DOCKER_HOST": f"unix://{short}/missing.sock"}
        started = time.monotonic()
        assert docker_answers(missing) is False
        assert time.monotonic() - started < 0.5

        silent_path = str(short / "silent.sock")
        with _unix_server(silent_path, None):
            started = time.monotonic()
            assert docker_answers({"DOCKER_HOST": f"unix://{silent_path}"}, 0.3) is False
            assert time.monotonic() - started < 2.0

        engine_path = str(short / "engine.sock")
        with _unix_server(engine_path, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK"):
            assert docker_answers({"DOCKER_HOST": f"unix://{engine_path}"}) is True
    finally:
        shutil.rmtree(short, ignore_errors=True)


def test_container_kafka_advertises_the_published_port() -> None:
    env = kafka_environment("127.0.0.1", 41234)
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "PLAINTEXT://:41234" in env["KAFKA_LISTENERS"]
    assert "PLAINTEXT://127.0.0.1:41234" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert len(env["CLUSTER_ID"]) == 22
