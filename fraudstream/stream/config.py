"""librdkafka configuration built from :class:`fraudstream.settings.KafkaSettings`.

The dotted librdkafka keys live here and nowhere else. ``KafkaSettings.extra`` passes any
librdkafka setting through unchanged (TLS, SASL, tuning); the SASL password comes from a
:class:`~fraudstream.settings.Secret` so it is never logged.
"""

from __future__ import annotations

from typing import Literal

from fraudstream.errors import ConfigError
from fraudstream.settings import KafkaSettings

__all__ = ["client_config"]

Role = Literal["producer", "consumer", "admin"]

# Latency-leaning defaults (librdkafka's own favour throughput): a produce waits at most 5 ms
# to fill a batch, a fetch at most 10 ms for data. Users override any of them through `extra`.
_DEFAULTS: dict[Role, dict[str, str | int | bool]] = {
    "producer": {
        "linger.ms": 5,
        "enable.idempotence": True,  # no duplicates from producer retries
        "compression.type": "lz4",
    },
    "consumer": {
        "fetch.wait.max.ms": 10,
        "enable.auto.commit": True,
        # Stored offsets are committed each second (librdkafka: 5 s): after a crash at most
        # about a second of records is consumed and scored again.
        "auto.commit.interval.ms": 1000,
        "enable.auto.offset.store": False,  # offsets stored only after outputs are delivered
        "auto.offset.reset": "earliest",
    },
    "admin": {},
}


def client_config(settings: KafkaSettings, role: Role) -> dict[str, str | int | bool]:
    """Build a confluent-kafka configuration for one client role.

    >>> cfg = client_config(KafkaSettings(bootstrap="k:9092", extra={"linger.ms": "0"}), "producer")
    >>> cfg["bootstrap.servers"], cfg["linger.ms"], cfg["enable.idempotence"]
    ('k:9092', '0', True)
    """
    if not settings.bootstrap:
        raise ConfigError(
            "kafka bootstrap servers are not set; expected FRAUDSTREAM_KAFKA_BOOTSTRAP or "
            "--kafka-bootstrap (or run `fraudstream services up`)"
        )
    config: dict[str, str | int | bool] = {"bootstrap.servers": settings.bootstrap}
    config.update(_DEFAULTS[role])
    for key, value in settings.extra.items():
        if role == "admin" and key in _DEFAULTS["producer"] | _DEFAULTS["consumer"]:
            continue  # an admin client refuses producer/consumer-only keys
        config[key] = value
    if settings.sasl_password is not None:
        config["sasl.password"] = settings.sasl_password.get()
    return config
