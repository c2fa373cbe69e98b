"""Build the Redis client from :class:`fraudstream.settings.RedisSettings`.

``redis://`` or ``rediss://`` (TLS) URLs, an ACL user in the URL (``redis://user@host``) and the
password from its own secret setting, so it never sits in a URL that might be logged. TLS
options ride in the URL's query as redis-py reads them: ``?ssl_ca_certs=/path/ca.pem`` for a
private CA, ``ssl_certfile`` and ``ssl_keyfile`` for a client certificate.
"""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from fraudstream.errors import ConfigError, FeatureStoreError
from fraudstream.settings import RedisSettings, redact_url

__all__ = ["COMMANDS", "acl_rules", "redis_client"]

# Every command fraudstream sends: PING (start), SCRIPT LOAD and EVALSHA (features, labels), GET
# (pipelined reads), and what engine.lua calls; scripts run with the caller's ACL rights.
COMMANDS = ("ping", "script|load", "evalsha", "get", "set", "append", "getrange", "setrange",
            "pexpire", "time", "del")  # fmt: skip


def acl_rules(key_prefix: str) -> str:
    """The least a fraudstream ACL user needs: its prefix's keys and :data:`COMMANDS` only.

    For ``ACL SETUSER <name> on ><password> <rules>`` or a ``user`` line of an ACL file.

    >>> acl_rules("fs").split()[:6]
    ['resetkeys', '~fs:*', 'resetchannels', '-@all', '+ping', '+script|load']
    """
    return f"resetkeys ~{key_prefix}:* resetchannels -@all " + " ".join(f"+{c}" for c in COMMANDS)


def redis_client(settings: RedisSettings, *, ping: bool = True) -> redis.Redis | RedisCluster:
    """A connected ``redis.Redis``, or a ``RedisCluster`` with ``settings.cluster`` (hiredis
    parser when installed). A cluster client finds every node from the one in the URL.

    Raises:
        ConfigError: no URL is configured.
        FeatureStoreError: the server does not answer or refuses the credentials.
    """
    if not settings.url:
        raise ConfigError(
            "redis URL is not set; expected FRAUDSTREAM_REDIS_URL or --redis-url "
            "(or run `fraudstream services up`)"
        )
    password = settings.password.get() if settings.password is not None else None
    kwargs = {"password": password} if password is not None else {}
    timeout_s = settings.timeout_ms / 1000
    # No client-side retries: redis-py's default retries a timeout ten times with backoff,
    # seconds of stall on the hot path. The store reruns a failed batch once itself, and the
    # detector decides what a failure means (it falls back and probes again later).
    client: redis.Redis | RedisCluster
    if settings.cluster:
        client = RedisCluster.from_url(
            settings.url, socket_keepalive=True, socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 0), **kwargs,
        )  # fmt: skip
    else:
        client = redis.Redis.from_url(
            settings.url, socket_keepalive=True, socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 0), **kwargs,
        )  # fmt: skip
    if ping:
        try:
            client.ping()
        except redis.AuthenticationError as exc:  # WRONGPASS, or NOAUTH without a password
            raise FeatureStoreError(
                f"redis at {redact_url(settings.url)} refused the login ({exc}); check the user "
                "in the URL and FRAUDSTREAM_REDIS_PASSWORD"
            ) from exc
        except redis.RedisError as exc:
            raise FeatureStoreError(
                f"redis at {redact_url(settings.url)} did not answer: {exc}"
            ) from exc
    return client
