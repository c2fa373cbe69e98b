"""Build the Redis client from :class:`fraudstream.settings.RedisSettings`.

``redis://`` or ``rediss://`` (TLS) URLs, an ACL user in the URL (``redis://user@host``) and the
password from its own secret setting, so it never sits in a URL that might be logged.
"""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from fraudstream.errors import ConfigError, FeatureStoreError
from fraudstream.settings import RedisSettings, redact_url

__all__ = ["redis_client"]


def redis_client(settings: RedisSettings, *, ping: bool = True) -> redis.Redis:
    """A connected ``redis.Redis`` (hiredis parser when installed).

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
    client = redis.Redis.from_url(
        settings.url, socket_keepalive=True, socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 0), **kwargs,
    )  # fmt: skip
    if ping:
        try:
            client.ping()
        except redis.RedisError as exc:
            raise FeatureStoreError(
                f"redis at {redact_url(settings.url)} did not answer: {exc}"
            ) from exc
    return client
