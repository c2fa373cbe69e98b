"""The handbook protocol metrics: cross-checked against scikit-learn, and the protocol rules."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudstream.model.evaluation import (
    average_precision,
    card_precision_top_k,
    evaluate_window,
    roc_auc,
)

DAY_MS = 86_400_000
labelled = st.lists(
    st.tuples(st.booleans(), st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0])),
    min_size=2,
    max_size=60,
).filter(lambda rows: 0 < sum(y for y, _ in rows) < len(rows))


@given(labelled)
@settings(max_examples=200, deadline=None)
def test_auc_and_ap_match_scikit_learn_with_ties(rows: list[tuple[bool, float]]) -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    y = [r[0] for r in rows]
    s = [r[1] for r in rows]
    assert roc_auc(y, s) == pytest.approx(metrics.roc_auc_score(y, s))
    assert average_precision(y, s) == pytest.approx(metrics.average_precision_score(y, s))


def test_metrics_are_nan_when_a_class_is_missing() -> None:
    assert np.isnan(roc_auc([0, 0], [0.1, 0.2]))
    assert np.isnan(average_precision([0, 0], [0.1, 0.2]))


def test_detected_cards_leave_the_following_days() -> None:
    # Day 0: card 1 is fraudulent and top-ranked, so it is detected; on day 1 it is gone and
    # the top card is the genuine card 2.
    cp = card_precision_top_k([0, 0, 1, 1], [1, 2, 1, 2], [1, 0, 1, 0], [0.9, 0.1, 0.9, 0.5], k=1)
    assert cp == [1.0, 0.0]


def test_known_compromised_cards_are_removed_from_the_test_week() -> None:
    start = dt.date(2018, 8, 8)
    t0 = int(dt.datetime(2018, 8, 8, tzinfo=dt.UTC).timestamp() * 1000)
    # Card 1 was defrauded in the training week (t0 - 10 days): removed from the whole week.
    # Card 2 was defrauded on test day 1 - 8: removed from test day 1 on, kept on day 0.
    times = [t0 - 10 * DAY_MS, t0 - 7 * DAY_MS, t0, t0, t0 + DAY_MS, t0 + DAY_MS, t0]
    cards = [1, 2, 1, 2, 2, 3, 3]
    fraud = [1, 1, 1, 0, 1, 1, 0]
    result = evaluate_window(times, cards, fraud, [0.5] * 7, start, test_days=2, k=1)
    assert result.transactions == 3  # (2, day 0), (3, day 1), (3, day 0)
    assert result.frauds == 1


def test_a_perfect_scorer_has_auc_and_ap_of_one() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(500) < 0.05
    assert roc_auc(y, y.astype(float)) == 1.0
    assert average_precision(y, y.astype(float)) == 1.0
