"""What a caller gets back: the Kafka and Redis addresses, their versions and origins."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Literal

from fraudstream.settings import redact_url

__all__ = [
    "CACHE_DIR_ENV",
    "JAVA_ENV",
    "KAFKA_BOOTSTRAP_ENV",
    "KAFKA_IMAGE",
    "KAFKA_VERSION",
    "MODE_ENV",
    "REDIS_IMAGE",
    "REDIS_SERVER_ENV",
    "REDIS_URL_ENV",
    "Mode",
    "Origin",
    "ServiceEndpoints",
    "export_lines",
]

Origin = Literal["env", "container", "local"]
"""Where a service came from: an explicit env var, a testcontainers container, a local process."""

Mode = Literal["auto", "container", "local"]
"""How to start services that no env var names: containers when Docker answers, or forced."""

KAFKA_BOOTSTRAP_ENV = "FRAUDSTREAM_KAFKA_BOOTSTRAP"
REDIS_URL_ENV = "FRAUDSTREAM_REDIS_URL"
# Optional knobs, read from the mapping the caller passes (never from os.environ directly).
MODE_ENV = "FRAUDSTREAM_SERVICES_MODE"
CACHE_DIR_ENV = "FRAUDSTREAM_CACHE_DIR"
JAVA_ENV = "FRAUDSTREAM_JAVA"
REDIS_SERVER_ENV = "FRAUDSTREAM_REDIS_SERVER"

# One pinned Kafka for every origin: the local jars and the container image share the version.
KAFKA_VERSION = "4.1.1"
KAFKA_IMAGE = f"apache/kafka:{KAFKA_VERSION}"
REDIS_IMAGE = "redis:7"


@dataclass(frozen=True, slots=True)
class ServiceEndpoints:
    """How to reach the Kafka broker and the Redis server a run uses, and what they are."""

    kafka_bootstrap: str
    redis_url: str
    kafka_version: str
    redis_version: str
    kafka_origin: Origin
    redis_origin: Origin

    def describe(self) -> str:
        """One line for logs and test headers.

        >>> ServiceEndpoints("127.0.0.1:9092", "redis://127.0.0.1:6379/0", "4.1.1", "7.0.15",
        ...                  "local", "env").describe()
        'kafka 4.1.1 (local, 127.0.0.1:9092); redis 7.0.15 (env, redis://127.0.0.1:6379/0)'
        """
        return (
            f"kafka {self.kafka_version} ({self.kafka_origin}, {self.kafka_bootstrap}); "
            f"redis {self.redis_version} ({self.redis_origin}, {redact_url(self.redis_url)})"
        )


def export_lines(endpoints: ServiceEndpoints) -> str:
    """The ``export NAME=value`` lines that point a shell at these services (for ``eval``).

    >>> print(export_lines(ServiceEndpoints("127.0.0.1:9092", "redis://127.0.0.1:6379/0",
    ...                                     "4.1.1", "7.0.15", "local", "local")))
    export FRAUDSTREAM_KAFKA_BOOTSTRAP=127.0.0.1:9092
    export FRAUDSTREAM_REDIS_URL=redis://127.0.0.1:6379/0
    """
    return "\n".join(
        [
            f"export {KAFKA_BOOTSTRAP_ENV}={shlex.quote(endpoints.kafka_bootstrap)}",
            f"export {REDIS_URL_ENV}={shlex.quote(endpoints.redis_url)}",
        ]
    )
