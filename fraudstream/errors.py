"""The one exception tree of fraudstream.

Each class says when it is raised and what the operator does about it. A bad *record* is
never an exception: decoding returns a :class:`fraudstream.events.Rejection` that becomes a
dead letter. Exceptions are for infrastructure and configuration.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DecodeError",
    "FeatureStoreError",
    "FraudstreamError",
    "KafkaClientError",
    "ModelError",
    "ServiceError",
]


class FraudstreamError(Exception):
    """Root of every error fraudstream raises on purpose."""


class ConfigError(FraudstreamError):
    """A setting is missing or malformed.

    Raised while settings are built, before anything connects. Fix the named environment
    variable or flag and start again.
    """


class DecodeError(FraudstreamError):
    """A record could not be decoded where the caller asked for an exception.

    The hot path never raises it (it dead-letters instead); it is raised by the strict helpers
    used by tools and tests. ``reason`` is the machine-readable reason code.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class FeatureStoreError(FraudstreamError):
    """Redis, which holds the rolling aggregates, failed or answered unexpectedly.

    Check that Redis is reachable with the configured URL and credentials; the detector retries
    and then exits non-zero rather than score with unknown state.
    """


class ModelError(FraudstreamError):
    """The model could not be built, scored, learned, saved or restored.

    A refused checkpoint (hash or signature mismatch) is a ``ModelError``: restore a known good
    version or start from scratch.
    """


class KafkaClientError(FraudstreamError):
    """The Kafka client reported a fatal error (authentication, unknown topic, fenced producer).

    Check the bootstrap servers, credentials and topic configuration.
    """


class ServiceError(FraudstreamError):
    """A local service (Kafka broker, redis-server) could not be started, reached or stopped.

    The message names the command, the port and the log file to read.
    """
