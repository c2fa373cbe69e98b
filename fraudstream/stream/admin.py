"""Cluster administration: wait for a broker to answer, create and delete topics.

Used by the services module (readiness), the test fixtures (one topic per test) and the
detector at startup (its topics, since brokers run with topic auto-creation off). Every call
is a real request through confluent-kafka's AdminClient; errors become ``KafkaClientError``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic  # the typed home of confluent_kafka.admin.NewTopic

from fraudstream.errors import ConfigError, KafkaClientError
from fraudstream.settings import KafkaSettings, Secret
from fraudstream.stream.config import client_config

__all__ = ["create_topics", "delete_topics", "wait_until_ready"]

logger = logging.getLogger(__name__)

_ATTEMPT_S = 2.0
# Errors no retry mends: bad credentials or mechanism, a certificate that does not verify.
_REFUSED = (KafkaError._AUTHENTICATION, KafkaError._SSL)


class _Discard:
    """librdkafka's log lines of a short-lived admin client go nowhere (confluent-kafka calls
    ``log(level, fmt, *args)``): the expected "connection refused" of a starting broker is noise,
    and what matters reaches the caller as the request's error or through ``error_cb``."""

    def log(self, *_args: object) -> None:
        return None


class _Admin:
    """An AdminClient that remembers the client-level errors librdkafka reports.

    Raises:
        ConfigError: librdkafka refused the settings (a SASL mechanism without a user, say).
    """

    def __init__(
        self,
        bootstrap: str,
        extra_config: Mapping[str, str] | None,
        sasl_password: Secret | None,
    ) -> None:
        settings = KafkaSettings(
            bootstrap=bootstrap, extra=dict(extra_config or {}), sasl_password=sasl_password
        )
        config: dict[str, str | int | float | bool] = {**client_config(settings, "admin")}
        self.bootstrap = bootstrap
        self.errors: list[KafkaError] = []
        try:
            self.client = AdminClient(config, logger=_Discard(), error_cb=self.errors.append)
        except KafkaException as exc:  # librdkafka refused the settings (e.g. SASL, no user)
            raise ConfigError(f"kafka client settings refused: {exc}") from exc

    def brokers(self, timeout_s: float) -> int:
        """Ask for metadata until it names a broker; return how many it names.

        Raises:
            KafkaClientError: the broker refused the login or the TLS handshake, or no answer
                came within ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                msg = f"kafka at {self.bootstrap} did not answer a metadata request within "
                raise KafkaClientError(f"{msg}{timeout_s:.0f} s; last error: {last}")
            try:
                metadata = self.client.list_topics(timeout=min(_ATTEMPT_S, remaining))
            except KafkaException as exc:
                last = exc
                self.client.poll(0)  # serves error_cb: why the attempt failed
                refused = [e for e in self.errors if e.code() in _REFUSED]
                if refused:
                    raise KafkaClientError(
                        f"kafka at {self.bootstrap} refused the connection (check the "
                        f"credentials, SASL mechanism and CA): {refused[-1].str()}"
                    ) from exc
                time.sleep(min(0.2, max(remaining - 0.01, 0.0)))
                continue
            if metadata.brokers:
                return len(metadata.brokers)


def wait_until_ready(
    bootstrap: str,
    timeout_s: float = 60.0,
    extra_config: Mapping[str, str] | None = None,
    *,
    sasl_password: Secret | None = None,
) -> int:
    """Send metadata requests until the cluster answers with at least one broker.

    Args:
        bootstrap: ``host:port[,host:port...]``.
        timeout_s: give up after this long.
        extra_config: librdkafka settings passed through (TLS, SASL).
        sasl_password: the SASL password, when ``extra_config`` configures SASL.

    Returns:
        The number of brokers in the answer.

    Raises:
        KafkaClientError: no answer within ``timeout_s``, or (at once) the broker refused the
            credentials or the TLS handshake.
    """
    brokers = _Admin(bootstrap, extra_config, sasl_password).brokers(timeout_s)
    logger.debug("kafka ready bootstrap=%s brokers=%d", bootstrap, brokers)
    return brokers


def create_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int = 1,
    *,
    replication_factor: int = 1,
    config: Mapping[str, str] | None = None,
    extra_config: Mapping[str, str] | None = None,
    sasl_password: Secret | None = None,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create topics that do not exist yet and wait until each has a leader for every partition.

    Idempotent: a topic that already exists is left as it is (its partition count unchecked).

    Args:
        bootstrap: ``host:port[,host:port...]``.
        names: topic names.
        partitions: partitions per new topic.
        replication_factor: replicas per partition (1 on a single local broker).
        config: topic-level settings for new topics, e.g. ``{"retention.ms": "3600000"}``.
        extra_config: librdkafka client settings passed through.
        sasl_password: the SASL password, when ``extra_config`` configures SASL.
        timeout_s: the budget for the request and for the leaders to appear.

    Returns:
        The names this call created.

    Raises:
        KafkaClientError: a topic could not be created, leaders did not appear in time, or
            (at once) the broker refused the credentials or the TLS handshake.
    """
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return []
    admin = _Admin(bootstrap, extra_config, sasl_password)
    # A metadata answer first: a refused login fails here, clearly, instead of as a timeout
    # of the creation request below.
    admin.brokers(timeout_s)
    client = admin.client
    new = [
        NewTopic(name, num_partitions=partitions, replication_factor=replication_factor,
                 config=dict(config or {}))
        for name in wanted
    ]  # fmt: skip
    created: list[str] = []
    futures = client.create_topics(new, operation_timeout=timeout_s, request_timeout=timeout_s)
    for name, future in futures.items():
        try:
            future.result()
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise KafkaClientError(f"could not create topic {name!r}: {exc}") from exc
        created.append(name)
    _wait_for_leaders(client, wanted, timeout_s)
    if created:
        logger.info("created topics=%s partitions=%d", ",".join(created), partitions)
    return created


def delete_topics(
    bootstrap: str,
    names: Iterable[str],
    *,
    extra_config: Mapping[str, str] | None = None,
    sasl_password: Secret | None = None,
    timeout_s: float = 30.0,
) -> list[str]:
    """Delete topics; one that does not exist is not an error. Returns the names deleted.

    Raises:
        KafkaClientError: the broker refused a deletion for another reason.
    """
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return []
    client = _Admin(bootstrap, extra_config, sasl_password).client
    deleted: list[str] = []
    futures = client.delete_topics(wanted, operation_timeout=timeout_s, request_timeout=timeout_s)
    for name, future in futures.items():
        try:
            future.result()
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                continue
            raise KafkaClientError(f"could not delete topic {name!r}: {exc}") from exc
        deleted.append(name)
    return deleted


def _wait_for_leaders(client: AdminClient, names: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    pending = set(names)
    while pending:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            msg = f"topics without a leader after {timeout_s:.0f} s: {', '.join(sorted(pending))}"
            raise KafkaClientError(msg)
        try:
            metadata = client.list_topics(timeout=min(_ATTEMPT_S, remaining))
        except KafkaException:
            continue
        for name in list(pending):
            topic = metadata.topics.get(name)
            if topic is None or topic.error is not None or not topic.partitions:
                continue
            if all(p.leader >= 0 and p.error is None for p in topic.partitions.values()):
                pending.discard(name)
        if pending:
            time.sleep(0.05)
