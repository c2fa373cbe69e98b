"""The metrics endpoint serves Prometheus text, and health and readiness as status codes."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from fraudstream.stream.metrics import DetectorMetrics, HealthState, MetricsServer


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def server() -> Iterator[tuple[MetricsServer, DetectorMetrics, HealthState]]:
    metrics, health = DetectorMetrics(), HealthState()
    srv = MetricsServer(metrics, health).start()
    yield srv, metrics, health
    srv.stop()


def test_metrics_endpoint_exports_counters_and_histograms(
    server: tuple[MetricsServer, DetectorMetrics, HealthState],
) -> None:
    srv, metrics, _ = server
    metrics.scores.inc(3)
    metrics.dead_letters.labels("transactions", "invalid_json").inc()
    metrics.processing.observe(0.0004)
    status, body = _get(f"http://{srv.address}/metrics")
    assert status == 200
    assert "fraudstream_scores_total 3.0" in body
    assert 'fraudstream_dead_letters_total{reason="invalid_json",topic="transactions"} 1.0' in body
    assert 'fraudstream_processing_seconds_bucket{le="0.0005"} 1.0' in body


def test_readiness_needs_partitions_and_a_model_while_health_needs_a_heartbeat(
    server: tuple[MetricsServer, DetectorMetrics, HealthState],
) -> None:
    srv, _, health = server
    assert _get(f"http://{srv.address}/healthz")[0] == 200
    assert _get(f"http://{srv.address}/readyz")[0] == 503
    health.assigned = health.model_loaded = True
    assert _get(f"http://{srv.address}/readyz")[0] == 200
    health.stale_after_s = 0.0
    assert _get(f"http://{srv.address}/healthz")[0] == 503


def test_server_binds_to_localhost_by_default(
    server: tuple[MetricsServer, DetectorMetrics, HealthState],
) -> None:
    assert server[0].address.startswith("127.0.0.1:")
