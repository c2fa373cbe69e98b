"""The throughput benchmark's quick mode end to end: backlog drain, open loop, both baselines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import throughput

pytestmark = [pytest.mark.kafka, pytest.mark.redis]


def test_quick_throughput_run_scores_every_published_transaction_and_writes_its_results(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRAUDSTREAM_KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("FRAUDSTREAM_REDIS_URL", redis_url)
    assert throughput.main(["--quick", "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "throughput.json").read_text())
    assert doc["lost"] == 0
    [row] = doc["capacity"]
    assert row["published"] > 0
    assert row["scored"] == row["published"]
    assert row["lost"] == 0
    assert row["capacity"] > 0
    lag = doc["bounded_lag"]
    assert lag["published"] > 0
    assert lag["lost"] == 0
    assert lag["rate"] > 0
    assert doc["baselines"]["in_process"]["tx_per_s"] > 0
    assert doc["baselines"]["naive"]["tx_per_s"] > 0
    assert doc["ratios"]["detector_over_in_process"] > 0
    assert doc["ratios"]["detector_over_naive"] > 0
    assert doc["environment"]["git_commit"]
    assert "| batch size |" in (tmp_path / "throughput.md").read_text()
    assert (tmp_path / "throughput.png").stat().st_size > 0
