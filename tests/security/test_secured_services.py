"""`fraudstream detect` on secured services: Kafka over TLS with SCRAM-SHA-512 logins (SASL_SSL)
and Redis over TLS with a least-privilege ACL user. Secrets come from files or variables, never
show in the log, and a wrong one stops the detector at start with a clear error."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from fraudstream.app import FALLBACK_SUFFIX
from fraudstream.errors import ModelError
from fraudstream.events import decode_score
from fraudstream.model import CheckpointStore
from fraudstream.settings import TopicSettings
from fraudstream.simulator import SimulatorConfig, iter_records, simulate
from fraudstream.stream.config import client_config
from fraudstream.stream.publish import Publisher, publish_stream
from tests.security.support import KEY_PREFIX, REDIS_ADMIN, SecureKafka, SecureRedis
from tests.support import read_values

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]

DAY_MS = 86_400_000


def _topics(run: str) -> TopicSettings:
    return TopicSettings(f"{run}.transactions", f"{run}.labels", f"{run}.scores", f"{run}.flags",
                         f"{run}.dlq")  # fmt: skip


def _detector_env(kafka: SecureKafka, redis_server: SecureRedis, run: str) -> dict[str, str]:
    """This process's environment without any FRAUDSTREAM_* variable, then the run's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUDSTREAM_")}
    topics = _topics(run)
    env.update(kafka.env())
    env.update({
        "FRAUDSTREAM_REDIS_URL": redis_server.user_url(),
        "FRAUDSTREAM_REDIS_KEY_PREFIX": KEY_PREFIX,
        "FRAUDSTREAM_GROUP_ID": run,
        "FRAUDSTREAM_TOPIC_TRANSACTIONS": topics.transactions,
        "FRAUDSTREAM_TOPIC_LABELS": topics.labels,
        "FRAUDSTREAM_TOPIC_SCORES": topics.scores,
        "FRAUDSTREAM_TOPIC_FLAGS": topics.flags,
        "FRAUDSTREAM_TOPIC_DEAD_LETTERS": topics.dead_letters,
    })  # fmt: skip
    return env


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    # DEBUG: the most the detector ever logs, so the most chances for a secret to leak.
    argv = [sys.executable, "-m", "fraudstream", "--log-level", "DEBUG", "detect",
            "--metrics-port", "0"]  # fmt: skip
    with log.open("wb") as fh:  # the child keeps its own descriptor
        return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=fh)


def _wait_for_line(proc: subprocess.Popen[bytes], log: Path, text: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in log.read_text(errors="replace"):
        assert proc.poll() is None, f"detector exited early ({proc.returncode}):\n{log.read_text()}"
        assert time.monotonic() < deadline, f"no {text!r} in time:\n{log.read_text()}"
        time.sleep(0.1)


def _read_scores(kafka: SecureKafka, topic: str, expected: int, timeout_s: float) -> list[bytes]:
    """Every value on ``topic`` read over SASL_SSL; one more second after ``expected`` arrived."""
    return read_values(client_config(kafka.settings(), "consumer"), topic, expected, timeout_s)


@pytest.fixture
def stopped() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Detector processes to kill after the test, whatever happened."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_detector_scores_every_transaction_over_sasl_ssl_with_features_in_tls_redis(
    secure_kafka: SecureKafka,
    secure_redis: SecureRedis,
    tmp_path: Path,
    stopped: list[subprocess.Popen[bytes]],
) -> None:
    run = f"sec-{uuid.uuid4().hex[:8]}"
    topics = _topics(run)
    env = _detector_env(secure_kafka, secure_redis, run)
    # Every secret from a file, each with the trailing newline an editor or `echo` leaves.
    checkpoint_key = "ck-" + uuid.uuid4().hex
    for name, value in [("KAFKA_SASL_PASSWORD", secure_kafka.password.get()),
                        ("REDIS_PASSWORD", secure_redis.password.get()),
                        ("MODEL_CHECKPOINT_KEY", checkpoint_key)]:  # fmt: skip
        path = tmp_path / name.lower()
        path.write_text(value + "\n")
        env[f"FRAUDSTREAM_{name}_FILE"] = str(path)
    env["FRAUDSTREAM_MODEL_CHECKPOINT_DIR"] = str(tmp_path / "checkpoints")
    log = tmp_path / "detector.log"
    proc = _start(env, log)
    stopped.append(proc)
    # The detector creates its topics (admin client over SASL_SSL), then starts the loop.
    _wait_for_line(proc, log, "started metrics=", timeout_s=60)

    records = list(iter_records(simulate(SimulatorConfig(customers=40, terminals=80, days=7))))
    stats = publish_stream(records, Publisher(secure_kafka.settings()), topics, rate=None,
                           label_delay_ms=DAY_MS)  # fmt: skip
    assert (stats.transactions, stats.failed) == (len(records), 0)
    scores = [decode_score(v) for v in _read_scores(secure_kafka, topics.scores, len(records), 90)]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    text = log.read_text(errors="replace")

    assert 200 < len(records) < 500
    assert sorted(s.transaction_id for s in scores) == sorted(
        str(r["transaction_id"]) for r in records
    )  # one Score per transaction, read back from the secured broker
    # Features came from Redis (a failing store would mark every Score "-fallback") ...
    assert not [s for s in scores if s.model_version.endswith(FALLBACK_SUFFIX)]
    assert max(s.features["tx_count_1d_by_card"] for s in scores) > 1
    admin = redis.Redis.from_url(secure_redis.user_url(REDIS_ADMIN),
                                 password=secure_redis.admin_password.get())  # fmt: skip
    try:  # ... and stayed there, under the detector's prefix
        assert sum(1 for _ in admin.scan_iter(match=f"{KEY_PREFIX}:*", count=1000)) > len(records)
    finally:
        admin.close()
    assert f"created topics={topics.transactions}" in text
    assert "started metrics=http://127.0.0.1:" in text  # metrics bound to loopback by default
    # The checkpoint key came from its file: the checkpoint verifies with it and no other.
    checkpoints = tmp_path / "checkpoints"
    CheckpointStore(checkpoints, key=checkpoint_key.encode()).load()  # or ModelError
    with pytest.raises(ModelError):
        CheckpointStore(checkpoints, key=b"another key").load()
    for secret in (secure_kafka.password.get(), secure_redis.password.get(), checkpoint_key):
        assert secret not in text


def test_the_detectors_redis_user_can_reach_nothing_else(secure_redis: SecureRedis) -> None:
    """The ACL that the feature engine runs under: its prefix, its commands, nothing more."""
    client = redis.Redis.from_url(secure_redis.user_url(), password=secure_redis.password.get())
    try:
        assert client.ping()
        client.set(f"{KEY_PREFIX}:probe", b"1")
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.set("elsewhere", b"1")
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.flushall()
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.keys("*")
    finally:
        client.close()
    anonymous = redis.Redis.from_url(secure_redis.url)  # the default user is off
    with pytest.raises(redis.AuthenticationError):
        anonymous.ping()
    plain_url = secure_redis.url.partition("?")[0].replace("rediss://", "redis://", 1)
    plain = redis.Redis.from_url(plain_url, socket_timeout=5)
    with pytest.raises(redis.ConnectionError):  # no plain-text port: TLS only
        plain.ping()


@pytest.mark.parametrize(
    ("service", "create_topics"),
    [("kafka", "true"), ("kafka", "false"), ("redis", "false")],
    ids=["kafka-creating-topics", "kafka", "redis"],
)
def test_a_wrong_password_stops_the_detector_at_start_with_a_clear_error(
    secure_kafka: SecureKafka,
    secure_redis: SecureRedis,
    tmp_path: Path,
    stopped: list[subprocess.Popen[bytes]],
    service: str,
    create_topics: str,
) -> None:
    env = _detector_env(secure_kafka, secure_redis, f"sec-{uuid.uuid4().hex[:8]}")
    wrong = "wrong-" + uuid.uuid4().hex
    env["FRAUDSTREAM_CREATE_TOPICS"] = create_topics
    env["FRAUDSTREAM_KAFKA_SASL_PASSWORD"] = secure_kafka.password.get()
    env["FRAUDSTREAM_REDIS_PASSWORD"] = secure_redis.password.get()
    variable = {"kafka": "KAFKA_SASL_PASSWORD", "redis": "REDIS_PASSWORD"}[service]
    env[f"FRAUDSTREAM_{variable}"] = wrong
    log = tmp_path / "detector.log"
    started = time.monotonic()
    proc = _start(env, log)
    stopped.append(proc)
    code = proc.wait(60)  # not forever: a refused login is not retried
    elapsed = time.monotonic() - started
    text = log.read_text(errors="replace")
    assert code == 3, text
    assert elapsed < 30
    if service == "kafka":
        assert f"kafka at {secure_kafka.bootstrap} refused the connection" in text
        assert "SASL authentication error" in text
    else:
        assert "refused the login" in text
        assert "FRAUDSTREAM_REDIS_PASSWORD" in text
    for secret in (wrong, secure_kafka.password.get(), secure_redis.password.get()):
        assert secret not in text
