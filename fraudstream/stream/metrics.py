"""Prometheus metrics of the detector and the HTTP endpoint that serves them.

``/metrics`` (Prometheus text format), ``/healthz`` (the process loop is alive) and ``/readyz``
(partitions assigned and the model loaded). The server binds to localhost unless told otherwise.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app

__all__ = ["DetectorMetrics", "HealthState", "MetricsServer"]

# Processing latency lives between tens of microseconds and a few milliseconds: fine buckets
# there, coarse ones above so a stall still lands somewhere visible.
_LATENCY_BUCKETS = (
    25e-6, 50e-6, 100e-6, 200e-6, 300e-6, 500e-6, 750e-6, 1e-3, 2e-3, 5e-3, 10e-3, 25e-3,
    50e-3, 100e-3, 250e-3, 1.0, 5.0,
)  # fmt: skip
_BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


class DetectorMetrics:
    """Every metric the detector exports, registered on its own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.transactions = Counter(
            "fraudstream_transactions", "Valid transactions consumed", registry=r
        )
        self.scores = Counter("fraudstream_scores", "Scores produced", registry=r)
        self.flags = Counter("fraudstream_flags", "Flags produced", registry=r)
        self.dead_letters = Counter(
            "fraudstream_dead_letters", "Records refused", ["topic", "reason"], registry=r
        )
        self.labels = Counter(
            "fraudstream_labels", "Labels consumed, by outcome", ["outcome"], registry=r
        )
        self.budget_misses = Counter(
            "fraudstream_budget_misses",
            "Transactions whose processing took longer than the budget",
            registry=r,
        )
        self.fallbacks = Counter(
            "fraudstream_fallback_scores",
            "Transactions scored by the fallback path (feature store too slow or down)",
            registry=r,
        )
        self.fallback_recorded = Counter(
            "fraudstream_fallback_recorded",
            "Fallback-scored transactions added to the aggregates once the store answered again",
            registry=r,
        )
        self.fallback_unrecorded = Counter(
            "fraudstream_fallback_unrecorded",
            "Fallback-scored transactions dropped from the backlog to record (backlog full)",
            registry=r,
        )
        self.processing = Histogram(
            "fraudstream_processing_seconds",
            "Per transaction: from the consumed batch to its Score being produced",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.end_to_end = Histogram(
            "fraudstream_end_to_end_seconds",
            "Per transaction: from the input record's Kafka timestamp to its Score being produced",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "fraudstream_batch_size", "Records per consumed batch", buckets=_BATCH_BUCKETS,
            registry=r,
        )  # fmt: skip
        self.consumer_lag = Gauge(
            "fraudstream_consumer_lag",
            "Records behind the partition's high watermark",
            ["topic", "partition"],
            registry=r,
        )
        self.alignment_pauses = Counter(
            "fraudstream_alignment_pauses",
            "Partitions paused for running ahead of the slowest input in event time",
            registry=r,
        )
        self.aborted_transactions = Counter(
            "fraudstream_aborted_transactions",
            "Kafka transactions aborted and redone (exactly-once guarantee only)",
            registry=r,
        )
        self.model_learning = Gauge(
            "fraudstream_model_learning",
            "Delayed learning since start: learned, duplicates, unknown, corrections, implicit",
            ["outcome"],
            registry=r,
        )
        self.model_version = Gauge(
            "fraudstream_model_version", "Version id of the model scoring now", registry=r
        )
        self.online_metric = Gauge(
            "fraudstream_online_metric",
            "Online model metric from feedback (roc_auc, average_precision, ...)",
            ["name"],
            registry=r,
        )


@dataclass(slots=True)
class HealthState:
    """What /healthz and /readyz report; the run loop updates it."""

    heartbeat: float = field(default_factory=time.monotonic)
    assigned: bool = False
    model_loaded: bool = False
    stale_after_s: float = 30.0

    def beat(self) -> None:
        """Record that the loop went round."""
        self.heartbeat = time.monotonic()

    @property
    def healthy(self) -> bool:
        """The loop went round recently."""
        return time.monotonic() - self.heartbeat < self.stale_after_s

    @property
    def ready(self) -> bool:
        """Healthy, with partitions assigned and a model loaded."""
        return self.healthy and self.assigned and self.model_loaded


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not worth a log line."""


class MetricsServer:
    """A small WSGI server in a daemon thread: /metrics, /healthz, /readyz."""

    def __init__(
        self, metrics: DetectorMetrics, health: HealthState, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        metrics_app = make_wsgi_app(metrics.registry)

        def app(environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "")
            if path in ("/healthz", "/readyz"):
                ok = health.healthy if path == "/healthz" else health.ready
                start(
                    "200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")]
                )
                return [b"ok\n" if ok else b"not ready\n"]
            result: Iterable[bytes] = metrics_app(environ, start)
            return result

        self._server: WSGIServer = make_server(host, port, app, handler_class=_QuietHandler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-http", daemon=True
        )

    @property
    def address(self) -> str:
        """``host:port`` the server listens on."""
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def start(self) -> MetricsServer:
        """Serve in the background."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
