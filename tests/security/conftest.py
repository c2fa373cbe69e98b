"""Secured local services for the security tests: Kafka with a SASL_SSL (SCRAM-SHA-512) listener
and Redis serving TLS only with ACL users, both with a throwaway CA made by ``openssl``.

Every module here gets its own broker and server (they are started with credentials the tests
must know), whatever ``FRAUDSTREAM_KAFKA_BOOTSTRAP`` or ``FRAUDSTREAM_REDIS_URL`` say.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from fraudstream.features.client import acl_rules
from fraudstream.services.kafka_jars import default_cache_dir
from fraudstream.services.local_kafka import SaslSslListener, start_local_kafka
from fraudstream.services.local_redis import RedisTls, RedisUser, start_local_redis
from fraudstream.settings import Secret
from tests.security.support import (
    KAFKA_USER,
    KEY_PREFIX,
    REDIS_ADMIN,
    REDIS_USER,
    Pki,
    SecureKafka,
    SecureRedis,
    make_pki,
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it."""
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def secure_kafka(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    """A local broker with a SASL_SSL listener; one SCRAM-SHA-512 user with a random password."""
    password = Secret(secrets.token_urlsafe(18))
    listener = SaslSslListener(pki.cert, pki.key, {KAFKA_USER: password})
    env = dict(os.environ)
    kafka = start_local_kafka(
        tmp_path_factory.mktemp("kafka"), env, cache_dir=default_cache_dir(env), sasl_ssl=listener
    )
    try:
        assert kafka.sasl_ssl_bootstrap is not None
        yield SecureKafka(kafka.sasl_ssl_bootstrap, password, pki.ca)
    finally:
        kafka.stop()


@pytest.fixture(scope="module")
def secure_redis(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureRedis]:
    """redis-server on TLS only, ``default`` user off, the detector's user limited to its
    key prefix and the feature engine's commands (:func:`acl_rules`)."""
    password, admin = Secret(secrets.token_urlsafe(18)), Secret(secrets.token_urlsafe(18))
    users = (
        RedisUser(REDIS_USER, password, acl_rules(KEY_PREFIX)),
        RedisUser(REDIS_ADMIN, admin, "~* &* +@all"),
    )
    server = start_local_redis(
        tmp_path_factory.mktemp("redis"), os.environ,
        tls=RedisTls(pki.cert, pki.key, pki.ca), users=users,
    )  # fmt: skip
    try:
        yield SecureRedis(server.url, password, admin)
    finally:
        server.stop()
