"""The latency benchmark's quick mode end to end: a detector process, the generator, the reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import latency

pytestmark = [pytest.mark.kafka, pytest.mark.redis]


def test_quick_latency_run_scores_every_published_transaction_and_writes_its_results(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRAUDSTREAM_KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("FRAUDSTREAM_REDIS_URL", redis_url)
    assert latency.main(["--quick", "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "latency.json").read_text())
    [row] = doc["results"]
    assert row["published"] > 0
    assert row["lost"] == 0
    assert 0 < row["measured"] <= row["published"]
    e2e, proc = row["end_to_end_ms"], row["processing_us"]
    assert 0 < e2e["p50"] <= e2e["p99"] <= e2e["max"]
    assert 0 < proc["p50"] <= proc["p99"] <= proc["max"]
    assert doc["environment"]["git_commit"]
    assert (tmp_path / "latency.md").read_text().count("\n") == 3
    assert (tmp_path / "latency_cdf.png").stat().st_size > 0
