"""Kafka and Redis for tests, the demo and the bench, resolved the same way everywhere.

Order, per service: the ``FRAUDSTREAM_KAFKA_BOOTSTRAP`` / ``FRAUDSTREAM_REDIS_URL`` variable
if set; else a testcontainers container (``apache/kafka:4.1.1`` in KRaft mode, ``redis:7``)
when a Docker engine answers; else a local process (``redis-server`` on a free port, and
Apache Kafka 4.1.1 in KRaft combined mode from its Maven Central jars, run with Java 17+).

Other variables read from the mapping callers pass (never from ``os.environ`` directly):
``FRAUDSTREAM_SERVICES_MODE`` (``auto``/``container``/``local``), ``FRAUDSTREAM_CACHE_DIR``
(Kafka jar cache), ``FRAUDSTREAM_JAVA`` and ``FRAUDSTREAM_REDIS_SERVER`` (binaries to run).

Allowed imports: ``fraudstream.errors`` and ``fraudstream.stream.admin`` (Kafka readiness and
topics). Never ``confluent_kafka`` or ``redis`` directly: Redis is probed over a raw socket.
"""

from __future__ import annotations

from fraudstream.services.detached import (
    ServicesStatus,
    ServiceState,
    services_down,
    services_status,
    services_up,
)
from fraudstream.services.endpoints import (
    KAFKA_VERSION,
    Origin,
    ServiceEndpoints,
    export_lines,
)
from fraudstream.services.kafka_jars import fetch_kafka_jars
from fraudstream.services.resolve import (
    Endpoint,
    ServicePlan,
    plan_services,
    running_kafka,
    running_redis,
    running_services,
)

__all__ = [
    "KAFKA_VERSION",
    "Endpoint",
    "Origin",
    "ServiceEndpoints",
    "ServicePlan",
    "ServiceState",
    "ServicesStatus",
    "export_lines",
    "fetch_kafka_jars",
    "plan_services",
    "running_kafka",
    "running_redis",
    "running_services",
    "services_down",
    "services_status",
    "services_up",
]
