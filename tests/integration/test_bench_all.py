"""Every benchmark's quick mode in one run, as CI runs it: results written, nothing lost.

Smoke only: no speed is asserted (speed targets live in the full runs and the README)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.__main__ import run_all

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]


def test_quick_benchmarks_write_every_result_and_lose_nothing(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRAUDSTREAM_KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("FRAUDSTREAM_REDIS_URL", redis_url)
    assert run_all(["--quick", "--out", str(tmp_path)]) == 0
    for name in ("features", "latency", "throughput", "scale", "quality"):
        assert (tmp_path / f"{name}.json").stat().st_size > 0, name
        assert "|---" in (tmp_path / f"{name}.md").read_text(), name
    assert len(list(tmp_path.glob("*.png"))) == 4
    summary = (tmp_path / "README.md").read_text()
    assert "FAILED" not in summary

    feats = json.loads((tmp_path / "features.json").read_text())
    assert [r["batch"] for r in feats["rows"]] == [1, 10, 20, 50, 100, 500]
    assert all(r["tx_per_s"] > 0 for r in feats["rows"])

    [lat] = json.loads((tmp_path / "latency.json").read_text())["results"]
    assert lat["lost"] == 0
    assert 0 < lat["measured"] <= lat["published"]
    e2e, proc = lat["end_to_end_ms"], lat["processing_us"]
    assert 0 < e2e["p50"] <= e2e["p99"] <= e2e["max"]
    assert 0 < proc["p50"] <= proc["p99"] <= proc["max"]

    tp = json.loads((tmp_path / "throughput.json").read_text())
    assert tp["lost"] == 0
    [row] = tp["capacity"]
    assert row["scored"] == row["published"] > 0
    assert tp["bounded_lag"]["lost"] == 0
    assert tp["baselines"]["in_process"]["tx_per_s"] > 0
    assert tp["baselines"]["naive"]["tx_per_s"] > 0

    scale = json.loads((tmp_path / "scale.json").read_text())
    assert [r["processes"] for r in scale["rows"]] == [1, 2]
    assert all(r["scored"] == r["published"] > 0 for r in scale["rows"])

    quality = json.loads((tmp_path / "quality.json").read_text())
    assert 0.5 < quality["result"]["auc_roc"] <= 1.0  # a learning model, not a coin
    assert quality["environment"]["git_commit"]
