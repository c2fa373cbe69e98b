"""Published model versions: loaded only when the signature and the hash verify."""

from __future__ import annotations

import pytest

from fraudstream.errors import ModelError
from fraudstream.model import FraudModel
from fraudstream.model.versions import pack_model, unpack_model


def _trained() -> FraudModel:
    model = FraudModel("logistic", 1.0, 0)
    for i in range(50):
        model.learn_one({"amount": float(i), "night": float(i % 2)}, i % 5 == 0, f"t{i}")
    return model


def test_a_version_round_trips_with_its_number_and_scores_the_same() -> None:
    model = _trained()
    blob = pack_model(model, b"key", 7, 1_000)
    loaded = unpack_model(blob, b"key")
    assert str(loaded.version) == str(model.version)
    assert str(loaded.version).startswith("logistic-u50-c7-")
    x = {"amount": 30.0, "night": 1.0}
    assert loaded.predict_proba_one(x) == model.predict_proba_one(x)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b[:-10] + bytes(10), "does not match its hash"),  # the pickle changed
        (lambda b: b[:12] + b"X" + b[13:], "signature"),  # the header changed
        (lambda b: b"JUNK" + b[4:], "not a fraudstream model"),
    ],
)
def test_a_tampered_version_is_refused_before_unpickling(mutate, message) -> None:  # type: ignore[no-untyped-def]
    blob = pack_model(_trained(), b"key", 1, 0)
    with pytest.raises(ModelError, match=message):
        unpack_model(mutate(blob), b"key")


def test_a_version_signed_with_another_key_is_refused() -> None:
    with pytest.raises(ModelError, match="signature"):
        unpack_model(pack_model(_trained(), b"key", 1, 0), b"other")
