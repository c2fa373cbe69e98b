"""The default pipeline's pieces: lazily averaged logistic regression and crossed bins."""

from __future__ import annotations

import math
import random

from river import linear_model, optim

from fraudstream.model.online import FraudModel
from fraudstream.model.pipelines import AveragedLogisticRegression


def test_lazy_average_equals_eager_average() -> None:
    rng = random.Random(1)
    alpha = 0.05
    lazy = AveragedLogisticRegression(alpha=alpha, optimizer=optim.SGD(0.1))
    plain = linear_model.LogisticRegression(optimizer=optim.SGD(0.1))
    eager: dict[str, float] = {}
    eager_b = 0.0
    for _ in range(300):
        x = {f"f{k}": rng.random() for k in rng.sample(range(8), 3)}
        y = rng.random() < 0.3
        lazy.learn_one(x, y)
        plain.learn_one(x, y)
        for name, w in plain.weights.items():  # every weight, every step
            eager[name] = eager.get(name, 0.0) + alpha * (w - eager.get(name, 0.0))
        eager_b += alpha * (plain.intercept - eager_b)
    got = lazy.weights
    assert set(got) == set(eager)
    for name, value in eager.items():
        assert math.isclose(got[name], value, rel_tol=1e-9, abs_tol=1e-12)
    assert all(lazy.weight(name) == got[name] for name in got)  # one weight, as in the table
    assert lazy.weight("unseen") == 0.0
    x = {"f0": 1.0, "f3": 0.5, "unseen": 2.0}
    z = eager_b + eager["f0"] + 0.5 * eager["f3"]
    assert math.isclose(lazy.predict_proba_one(x)[True], 1 / (1 + math.exp(-z)), rel_tol=1e-9)


def test_default_model_explains_crossed_cells_by_their_features() -> None:
    rng = random.Random(2)
    model = FraudModel("gam", negative_rate=1.0)
    names = ["amount", "amount_ratio_30d_by_card", "risk_7d_by_terminal_delayed_7d"]
    for i in range(20_050):
        y = rng.random() < 0.1
        x = {n: rng.random() + (2.0 if y else 0.0) for n in names}
        model.learn_one(x, y, str(i))
    x = {n: 3.0 for n in names}
    transformed = model.pipeline.transform_one(x)
    assert any("*" in key for key in transformed)  # crossed cells are in use after warm-up
    assert model.predict_proba_one(x) > 0.5
    reasons = model.explain(x)
    assert reasons
    assert {r.feature for r in reasons} <= set(names)
