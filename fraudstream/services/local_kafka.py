"""A single-node Apache Kafka in KRaft combined mode (broker and controller in one JVM).

It runs from the Maven Central jars (:mod:`fraudstream.services.kafka_jars`) with Java 17+,
listening on two free loopback ports: PLAINTEXT for clients and CONTROLLER for the quorum.
With a :class:`SaslSslListener` it opens a third, ``SASL_SSL`` (TLS with SCRAM-SHA-512 logins),
for clients that must authenticate; the PLAINTEXT one stays, on loopback, for the broker itself
and the readiness check. No authorizer runs: a user who logs in may do anything.
Topic auto-creation is off, as in ``docker-compose.yml``: topics are created explicitly with
:func:`fraudstream.stream.admin.create_topics`, so a misspelt topic fails instead of quietly
appearing with default settings.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fraudstream.errors import ConfigError, KafkaClientError, ServiceError
from fraudstream.services.endpoints import JAVA_ENV, KAFKA_VERSION
from fraudstream.services.kafka_jars import ensure_kafka_jars
from fraudstream.services.probe import tcp_open
from fraudstream.services.process import (
    LocalProcess,
    free_ports,
    log_excerpt,
    run_to_completion,
    write_private,
)
from fraudstream.settings import Secret
from fraudstream.stream import admin

__all__ = ["SCRAM_MECHANISM", "LocalKafka", "SaslSslListener", "find_java", "start_local_kafka"]

logger = logging.getLogger(__name__)

_HOST = "127.0.0.1"
_HEAP = ("-Xms256m", "-Xmx1g")
SCRAM_MECHANISM = "SCRAM-SHA-512"
# What the storage tool's --add-scram parser takes unquoted: no ',', '=', '[', ']' or quotes.
_SCRAM_TEXT = re.compile(r"[A-Za-z0-9_.~@+-]+")

# WARN and above to stdout, which the process writes into kafka.log in its work dir.
_LOG4J2 = """status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.target = SYSTEM_OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = OUT
"""


@dataclass(frozen=True, slots=True)
class SaslSslListener:
    """An extra client listener with TLS and SCRAM-SHA-512 logins.

    Args:
        cert: the broker's PEM certificate (chain), valid for 127.0.0.1.
        key: its unencrypted PEM (PKCS#8) private key.
        users: SCRAM-SHA-512 user name -> password, written into the metadata log when the
            storage is formatted (so only on a fresh ``data/``). Names and passwords are
            limited to letters, digits and ``_.~@+-``. The passwords are on the format
            command's line (visible to ``ps``) while it runs: for a throwaway local broker only.
    """

    cert: Path
    key: Path
    users: Mapping[str, Secret]

    def __post_init__(self) -> None:
        for name, password in self.users.items():
            if not _SCRAM_TEXT.fullmatch(name) or not _SCRAM_TEXT.fullmatch(password.get()):
                raise ConfigError(
                    f"expected a SCRAM user name and password of letters, digits and _.~@+-; "
                    f"got user {name!r}"
                )


@dataclass(frozen=True, slots=True)
class LocalKafka:
    """A running local broker: its bootstrap address, version, process and files.

    ``sasl_ssl_bootstrap`` is the TLS + SCRAM listener's address when one was asked for.
    """

    bootstrap: str
    version: str
    port: int
    controller_port: int
    process: LocalProcess
    work_dir: Path
    sasl_ssl_bootstrap: str | None = None

    def stop(self) -> None:
        """Shut the broker down (SIGTERM is a controlled shutdown), then reap it."""
        self.process.stop()


def find_java(env: Mapping[str, str]) -> str:
    """Return the ``java`` to run: ``FRAUDSTREAM_JAVA``, ``$JAVA_HOME/bin/java`` or ``PATH``.

    Raises:
        ServiceError: none was found.
    """
    explicit = env.get(JAVA_ENV)
    if explicit:
        candidate: str | None = explicit
    elif env.get("JAVA_HOME"):
        candidate = str(Path(env["JAVA_HOME"]) / "bin" / "java")
    else:
        candidate = shutil.which("java", path=env.get("PATH", os.defpath))
    if not candidate or not os.access(candidate, os.X_OK):
        msg = (
            f"java not found (checked {JAVA_ENV}, JAVA_HOME, PATH; got {candidate!r}); "
            "install Java 17+ (Debian: apt-get install openjdk-17-jre-headless)"
        )
        raise ServiceError(msg)
    return candidate


def new_cluster_id() -> str:
    """A random KRaft cluster id: 16 bytes, URL-safe base64 without padding (22 characters).

    >>> len(new_cluster_id())
    22
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        if not text.startswith("-"):  # would read as a command-line flag
            return text


def _server_properties(
    data_dir: Path, port: int, controller_port: int, secure: tuple[int, Path] | None = None
) -> str:
    listeners = f"PLAINTEXT://{_HOST}:{port},CONTROLLER://{_HOST}:{controller_port}"
    advertised = f"PLAINTEXT://{_HOST}:{port}"
    protocols = "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    tls: dict[str, str] = {}
    if secure is not None:
        secure_port, keystore = secure
        listeners += f",SASL_SSL://{_HOST}:{secure_port}"
        advertised += f",SASL_SSL://{_HOST}:{secure_port}"
        protocols += ",SASL_SSL:SASL_SSL"
        # Broker and controller keep talking PLAINTEXT on loopback; only clients log in.
        name = "listener.name.sasl_ssl"
        tls = {
            f"{name}.sasl.enabled.mechanisms": SCRAM_MECHANISM,
            f"{name}.{SCRAM_MECHANISM.lower()}.sasl.jaas.config":
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            f"{name}.ssl.keystore.type": "PEM",
            f"{name}.ssl.keystore.location": str(keystore),
        }  # fmt: skip
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{_HOST}:{controller_port}",
        "listeners": listeners,
        "advertised.listeners": advertised,
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": protocols,
        **tls,
        "log.dirs": str(data_dir),
        "num.partitions": "1",
        "auto.create.topics.enable": "false",
        # One broker: every internal topic must fit on it.
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "min.insync.replicas": "1",
        # Tests and demos start consumers at once; do not wait for more members to join.
        "group.initial.rebalance.delay.ms": "0",
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def start_local_kafka(
    work_dir: Path,
    env: Mapping[str, str],
    *,
    cache_dir: Path,
    port: int | None = None,
    detached: bool = False,
    timeout_s: float = 120.0,
    sasl_ssl: SaslSslListener | None = None,
) -> LocalKafka:
    """Format storage under ``work_dir`` (once) and start the broker on free loopback ports.

    Args:
        work_dir: holds ``server.properties``, ``log4j2.properties``, ``data/`` and the logs
            ``format.log`` and ``kafka.log``; an already formatted ``data/`` is reused.
        env: the child's environment; also locates ``java`` and ``mvn``.
        cache_dir: where the Kafka jars are cached (fetched with Maven the first time).
        port: a fixed client (PLAINTEXT) port instead of a free one.
        detached: keep running after this Python process exits.
        timeout_s: how long to wait for a metadata answer.
        sasl_ssl: also open a TLS + SCRAM-SHA-512 listener on a free port, for these users.

    Raises:
        ServiceError: java or the jars are missing, formatting failed, the broker exited or it
            did not answer in time; the message names the log file and quotes its last lines.
    """
    java = find_java(env)
    libs = ensure_kafka_jars(cache_dir, env)
    work_dir = work_dir.resolve()
    data_dir = work_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    ports = free_ports(3, _HOST)
    client_port = port if port is not None else ports[0]
    controller_port, secure_port = [p for p in ports if p != client_port][:2]
    secure: tuple[int, Path] | None = None
    if sasl_ssl is not None:
        secure = (secure_port, _write_keystore(work_dir, sasl_ssl))
    config = work_dir / "server.properties"
    config.write_text(
        _server_properties(data_dir, client_port, controller_port, secure), encoding="utf-8"
    )
    log4j = work_dir / "log4j2.properties"
    log4j.write_text(_LOG4J2, encoding="utf-8")
    jvm = [java, f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{libs}{os.sep}*"]

    if not (data_dir / "meta.properties").exists():  # formatted once; a restart reuses it
        format_argv = [*jvm, "kafka.tools.StorageTool", "format", "--ignore-formatted"]
        format_argv += ["-t", new_cluster_id(), "-c", str(config)]
        for user, password in (sasl_ssl.users if sasl_ssl is not None else {}).items():
            format_argv += [
                "--add-scram", f"{SCRAM_MECHANISM}=[name={user},password={password.get()}]"
            ]  # fmt: skip
        run_to_completion("kafka storage format", format_argv, env, work_dir / "format.log", 120.0)

    log_file = work_dir / "kafka.log"
    argv = [jvm[0], *_HEAP, *jvm[1:], "kafka.Kafka", str(config)]
    process = LocalProcess.spawn("kafka", argv, env, log_file, detached=detached)
    bootstrap = f"{_HOST}:{client_port}"
    # The listener opens once the broker has caught up with the metadata log; the admin
    # request then proves it answers Kafka's protocol, not just TCP.
    process.wait_ready(lambda: tcp_open(_HOST, client_port), timeout_s, f"listener {bootstrap}")
    try:
        admin.wait_until_ready(bootstrap, timeout_s=30.0)
    except KafkaClientError as exc:
        process.stop()
        msg = f"kafka at {bootstrap} accepted connections but did not answer metadata: {exc}; "
        msg += f"log {log_file}, last lines:\n{log_excerpt(log_file)}"
        raise ServiceError(msg) from exc
    secure_bootstrap = f"{_HOST}:{secure_port}" if secure is not None else None
    if secure_bootstrap is not None:  # opens with the PLAINTEXT listener: a quick check
        process.wait_ready(lambda: tcp_open(_HOST, secure_port), 10.0, secure_bootstrap)
    logger.info(
        "kafka started bootstrap=%s sasl_ssl=%s version=%s pid=%d",
        bootstrap, secure_bootstrap, KAFKA_VERSION, process.pid,
    )  # fmt: skip
    return LocalKafka(
        bootstrap, KAFKA_VERSION, client_port, controller_port, process, work_dir, secure_bootstrap
    )


def _write_keystore(work_dir: Path, listener: SaslSslListener) -> Path:
    """The PEM keystore Kafka reads: the private key, then the certificate chain (mode 0600)."""
    try:
        text = listener.key.read_text(encoding="ascii") + listener.cert.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ServiceError(f"could not read the listener's key or certificate: {exc}") from exc
    if "-----BEGIN PRIVATE KEY-----" not in text:
        raise ConfigError(
            f"expected an unencrypted PKCS#8 PEM key (BEGIN PRIVATE KEY) in {listener.key}"
        )
    return write_private(work_dir / "listener-keystore.pem", text)
