"""Checkpoints: verified before unpickling, identical predictions on restore, rollback."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from fraudstream.errors import ModelError
from fraudstream.model.checkpoints import CheckpointStore
from fraudstream.model.online import FraudModel

KEY = b"test-checkpoint-key"


def trained(n: int = 300, name: str = "logistic") -> FraudModel:
    model = FraudModel(name, negative_rate=1.0)
    for i in range(n):
        x = {"amount": float(i % 50), "tx_count_1d_by_card": float(i % 7)}
        model.learn_one(x, i % 10 == 0, str(i))
    return model


def probe() -> list[dict[str, float]]:
    return [{"amount": float(a), "tx_count_1d_by_card": float(a % 5)} for a in range(0, 60, 7)]


def test_restored_model_gives_identical_predictions(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, key=KEY)
    model = trained(name="gam")
    store.save(model, now_ms=1)
    restored = store.load()
    assert [restored.predict_proba_one(x) for x in probe()] == [
        model.predict_proba_one(x) for x in probe()
    ]
    assert restored.version == model.version


def test_version_moves_after_learning() -> None:
    model = trained()
    before = model.version
    model.learn_one({"amount": 1.0}, True, "new")
    assert model.version.updates == before.updates + 1
    assert str(model.version) != str(before)


def test_tampered_model_file_is_refused(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, key=KEY)
    info = store.save(trained(), now_ms=1)
    path = tmp_path / f"model-{info.number:08d}.pkl"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="refused"):
        store.load()


def test_rewritten_manifest_without_the_key_is_refused(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, key=KEY)
    info = store.save(trained(), now_ms=1)
    evil = b"not a model"
    (tmp_path / f"model-{info.number:08d}.pkl").write_bytes(evil)
    manifest_path = tmp_path / f"model-{info.number:08d}.json"
    manifest = orjson.loads(manifest_path.read_bytes())
    manifest["size"] = len(evil)
    manifest["sha256"] = __import__("hashlib").sha256(evil).hexdigest()
    manifest_path.write_bytes(orjson.dumps(manifest))
    with pytest.raises(ModelError, match="signature does not verify"):
        store.load()


def test_unsigned_checkpoint_is_refused_when_a_key_is_configured(tmp_path: Path) -> None:
    CheckpointStore(tmp_path).save(trained(), now_ms=1)
    with pytest.raises(ModelError, match="unsigned"):
        CheckpointStore(tmp_path, key=KEY).load()


def test_wrong_key_is_refused(tmp_path: Path) -> None:
    CheckpointStore(tmp_path, key=KEY).save(trained(), now_ms=1)
    with pytest.raises(ModelError, match="signature"):
        CheckpointStore(tmp_path, key=b"other").load()


def test_rollback_restores_the_previous_checkpoint(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, key=KEY)
    model = trained()
    first = store.save(model, now_ms=1)
    expected = [model.predict_proba_one(x) for x in probe()]
    for i in range(200):
        model.learn_one({"amount": 55.0, "tx_count_1d_by_card": 0.0}, True, f"x{i}")
    store.save(model, now_ms=2)
    back = store.rollback()
    assert back.checkpoint == first.number
    assert [back.predict_proba_one(x) for x in probe()] == expected
    assert store.save(back, now_ms=3).number == 3  # numbers never repeat


def test_old_checkpoints_are_pruned(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, keep=2)
    model = trained(10)
    for now in range(4):
        store.save(model, now_ms=now)
    assert store.numbers() == [3, 4]


def test_missing_checkpoint_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no checkpoint"):
        CheckpointStore(tmp_path).load()
