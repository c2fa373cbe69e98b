"""The composition root restores the newest verified checkpoint and refuses a tampered one."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraudstream.app import Detector, build_scorer
from fraudstream.errors import ModelError
from fraudstream.events import Label, Rejection, Score, Transaction
from fraudstream.features.memory import MemoryFeatureStore
from fraudstream.settings import ModelSettings, Secret

DAY = 86_400_000


def _teach(settings: ModelSettings) -> tuple[int, float]:
    scorer = build_scorer(settings, snapshot_ttl_ms=30 * DAY)
    for i in range(300):
        x = {"amount": float(i % 50), "is_night": float(i % 7 == 0)}
        scorer.score(f"t{i}", f"c{i % 9}", x, i * 60_000)
    scorer.add_labels(
        [Label(f"t{i}", i % 7 == 0, label_time_ms=i * 60_000 + 1) for i in range(300)]
    )
    scorer.advance(400 * 60_000)
    probe = scorer.model.predict_proba_one({"amount": 10.0, "is_night": 1.0})
    scorer.checkpoint(1)
    return scorer.model.updates, probe


def test_a_restarted_detector_restores_the_last_checkpoint(tmp_path: Path) -> None:
    settings = ModelSettings(checkpoint_dir=str(tmp_path), checkpoint_key=Secret("k1"))
    updates, probe = _teach(settings)
    assert updates > 0
    restored = build_scorer(settings, snapshot_ttl_ms=30 * DAY)
    assert restored.model.updates == updates
    assert restored.model.predict_proba_one({"amount": 10.0, "is_night": 1.0}) == probe
    assert restored.model.version.checkpoint >= 1


def test_a_checkpoint_signed_with_another_key_is_refused(tmp_path: Path) -> None:
    _teach(ModelSettings(checkpoint_dir=str(tmp_path), checkpoint_key=Secret("k1")))
    with pytest.raises(ModelError):
        build_scorer(
            ModelSettings(checkpoint_dir=str(tmp_path), checkpoint_key=Secret("other")),
            snapshot_ttl_ms=30 * DAY,
        )


def test_a_tampered_checkpoint_is_refused(tmp_path: Path) -> None:
    settings = ModelSettings(checkpoint_dir=str(tmp_path), checkpoint_key=Secret("k1"))
    _teach(settings)
    blobs = [p for p in tmp_path.rglob("*") if p.is_file() and not p.name.endswith(".json")]
    assert blobs
    data = bytearray(blobs[0].read_bytes())
    data[len(data) // 2] ^= 0xFF
    blobs[0].write_bytes(bytes(data))
    with pytest.raises(ModelError):
        build_scorer(settings, snapshot_ttl_ms=30 * DAY)


def test_requested_rollback_and_reload_swap_the_model_between_batches(tmp_path: Path) -> None:
    settings = ModelSettings(checkpoint_dir=str(tmp_path), checkpoint_key=Secret("k1"))
    scorer = build_scorer(settings, snapshot_ttl_ms=30 * DAY)
    scorer.checkpoint(1)  # checkpoint 1: the untrained model
    updates, _ = _teach(settings)  # checkpoint 2: trained
    scorer = build_scorer(settings, snapshot_ttl_ms=30 * DAY)
    assert scorer.model.updates == updates
    detector = Detector(MemoryFeatureStore(), scorer)
    tx = Transaction("t1", "c1", 10.0, 1_600_000_000_000, "term1")
    detector.request("rollback")
    [score] = detector.score_batch([tx], 0)
    assert score.model_version.startswith("gam-u0-c1")
    updates, _ = _teach(settings)  # a version trained elsewhere lands as checkpoint 3
    detector.request("reload")
    [score] = detector.score_batch([Transaction("t2", "c1", 10.0, 1_600_000_001_000)], 0)
    assert score.model_version.startswith(f"gam-u{updates}-c3")
    with pytest.raises(ValueError, match="reload or rollback"):
        detector.request("promote")


def test_an_id_reused_by_another_transaction_is_refused_not_scored() -> None:
    detector = Detector(MemoryFeatureStore(), build_scorer(ModelSettings(), 30 * DAY))
    first = Transaction("t1", "c1", 10.0, 1_600_000_000_000, "term1")
    [score] = detector.score_batch([first], 0)
    again, other = detector.score_batch([first, Transaction("t1", "c1", 99.0, first.timestamp_ms,
                                                            "term1")], 0)  # fmt: skip
    assert isinstance(score, Score)
    assert isinstance(again, Score)
    assert again.features == score.features  # a redelivery is scored again, the same
    assert isinstance(other, Rejection)
    assert (other.reason, other.field) == ("duplicate_id", "transaction_id")
