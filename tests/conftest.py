"""Shared fixtures: Kafka and Redis resolved like everywhere else, started on first use.

``kafka_bootstrap`` and ``redis_url`` start (or find, from ``FRAUDSTREAM_*`` variables) one
broker and one server for the whole session, each only when a test asks for it. Tests stay
apart through ``tmp_topic`` (a fresh topic per call) and ``redis_prefix`` (a key prefix per
test). The header says where the services will come from; the summary names the versions.
"""

from __future__ import annotations

import os
import random
import re
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
from hypothesis import settings

from fraudstream.errors import FraudstreamError
from fraudstream.services import (
    Endpoint,
    ServiceEndpoints,
    plan_services,
    running_kafka,
    running_redis,
)
from fraudstream.settings import TopicSettings, redact_url
from fraudstream.stream import admin
from fraudstream.stream.models import MODEL_TOPIC_CONFIG
from tests.support import read_values

# Property tests check behaviour, not speed: no per-example deadline, so a busy CI machine
# cannot turn a slow example into a failure; failing examples are printed for reproduction.
settings.register_profile("fraudstream", deadline=None, print_blob=True)
settings.load_profile("fraudstream")

_USED = pytest.StashKey[dict[str, Endpoint]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_USED] = {}


def pytest_report_header(config: pytest.Config) -> list[str]:
    try:
        plan = plan_services(os.environ)
    except FraudstreamError as exc:
        return [f"fraudstream services: unresolvable ({exc})"]
    return [f"fraudstream services: {plan.describe()}; started on first use, versions at the end"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    used = terminalreporter.config.stash.get(_USED, {})
    if not used:
        return
    terminalreporter.write_sep("-", "fraudstream services used")
    for name, endpoint in sorted(used.items()):
        terminalreporter.write_line(
            f"{name} {endpoint.version} ({endpoint.origin}, {redact_url(endpoint.address)})"
        )


@pytest.fixture(scope="session")
def kafka_service(pytestconfig: pytest.Config) -> Iterator[Endpoint]:
    """The session's Kafka broker (env var, container or local process)."""
    with running_kafka(os.environ) as endpoint:
        pytestconfig.stash[_USED]["kafka"] = endpoint
        yield endpoint


@pytest.fixture(scope="session")
def redis_service(pytestconfig: pytest.Config) -> Iterator[Endpoint]:
    """The session's Redis server (env var, container or local process)."""
    with running_redis(os.environ) as endpoint:
        pytestconfig.stash[_USED]["redis"] = endpoint
        yield endpoint


@pytest.fixture(scope="session")
def services(kafka_service: Endpoint, redis_service: Endpoint) -> ServiceEndpoints:
    """Both services, as :func:`fraudstream.services.running_services` would return them."""
    return ServiceEndpoints(
        kafka_service.address,
        redis_service.address,
        kafka_service.version,
        redis_service.version,
        kafka_service.origin,
        redis_service.origin,
    )


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_service: Endpoint) -> str:
    """``host:port`` of the session's broker."""
    return kafka_service.address


@pytest.fixture(scope="session")
def redis_url(redis_service: Endpoint) -> str:
    """``redis://`` URL of the session's server."""
    return redis_service.address


def _slug(text: str, limit: int) -> str:
    return re.sub(r"[^a-zA-Z0-9._-]+", "-", text).strip("-._")[:limit] or "t"


@pytest.fixture(scope="session")
def redis_cluster_url() -> Iterator[str]:
    """URL of a local three-master Redis Cluster, started on first use.

    Three ``redis-server`` processes in cluster mode on free ports in a temporary
    directory, joined with ``redis-cli --cluster create`` (skips when either is missing).
    """
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
def tmp_topic(request: pytest.FixtureRequest, kafka_bootstrap: str) -> Iterator[Callable[..., str]]:
    """A factory: ``tmp_topic(partitions=1, config=None) -> name`` creates a fresh topic.

    Names carry the test name and a random suffix; the topics are deleted afterwards.
    """
    created: list[str] = []
    base = _slug(request.node.name, 60)

    def make(partitions: int = 1, config: dict[str, str] | None = None) -> str:
        name = f"test-{base}-{uuid.uuid4().hex[:10]}"
        admin.create_topics(kafka_bootstrap, [name], partitions, config=config)
        created.append(name)
        return name

    yield make
    if created:
        admin.delete_topics(kafka_bootstrap, created)


@pytest.fixture
def tmp_topics(tmp_topic: Callable[..., str]) -> Callable[..., TopicSettings]:
    """``tmp_topics(transactions=3, labels=1, models=False)`` -> fresh topics of a detector run.

    Every topic comes from ``tmp_topic`` (deleted afterwards); ``models`` adds a compacted model
    topic for the scorer and trainer roles.
    """

    def make(transactions: int = 3, labels: int = 1, models: bool = False) -> TopicSettings:
        extra = {"models": tmp_topic(1, MODEL_TOPIC_CONFIG)} if models else {}
        return TopicSettings(
            transactions=tmp_topic(transactions), labels=tmp_topic(labels), scores=tmp_topic(),
            flags=tmp_topic(), dead_letters=tmp_topic(), **extra,
        )  # fmt: skip

    return make


@pytest.fixture
def redis_prefix(request: pytest.FixtureRequest, redis_url: str) -> Iterator[str]:
    """A key prefix unique to this test; its keys are deleted afterwards."""
    prefix = f"test:{_slug(request.node.name, 40)}:{uuid.uuid4().hex[:10]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.unlink(*keys)
    finally:
        client.close()


@pytest.fixture
def read_topic(kafka_bootstrap: str) -> Callable[..., list[bytes]]:
    """``read_topic(topic, expected, timeout_s=60)``: every value on ``topic``, from the start.

    Reads until ``expected`` values arrived (or the timeout), then one more second, so a test
    also sees anything beyond what it expected (a duplicate output, say).
    """

    def read(topic: str, expected: int, timeout_s: float = 60.0) -> list[bytes]:
        return read_values({"bootstrap.servers": kafka_bootstrap}, topic, expected, timeout_s)

    return read
