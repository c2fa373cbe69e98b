"""The Scorer end to end on a tiny stream, decisions, reasons, shadow promotion and drift."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from fraudstream.errors import ModelError
from fraudstream.events import Label
from fraudstream.model.checkpoints import CheckpointSchedule, CheckpointStore
from fraudstream.model.decisions import AlertBudget, CardsPerDay, FixedThreshold
from fraudstream.model.labels import DelayedLearner, LabelProgress
from fraudstream.model.monitor import DriftEvent, OnlineMetrics
from fraudstream.model.online import FraudModel
from fraudstream.model.pipelines import MODEL_NAMES, build_pipeline
from fraudstream.model.scorer import Scorer
from fraudstream.model.shadow import PromotionRule, ShadowPair
from fraudstream.model.snapshots import MemorySnapshotStore

DAY_MS = 86_400_000


def vector(rng: random.Random, fraud: bool) -> dict[str, float]:
    amount = rng.uniform(200, 400) if fraud else rng.uniform(5, 100)
    return {"amount": amount, "tx_count_1d_by_card": float(rng.randint(1, 5))}


def make_scorer(
    tmp_path: Path, name: str = "logistic", implicit_after_ms: int | None = None
) -> Scorer:
    learner = DelayedLearner(
        MemorySnapshotStore(),
        snapshot_ttl_ms=8 * DAY_MS,
        implicit_negative_after_ms=implicit_after_ms,
    )
    return Scorer(
        FraudModel(name, negative_rate=1.0),
        learner,
        FixedThreshold(0.5),
        checkpoints=CheckpointStore(tmp_path, key=b"k"),
        schedule=CheckpointSchedule(every_ms=DAY_MS, every_updates=10**9),
    )


def restart_from_checkpoint(scorer: Scorer) -> None:
    """What a restarted process does: the newest checkpoint as champion, its label progress
    taken (app.build_scorer)."""
    assert scorer.checkpoints is not None
    model = scorer.checkpoints.load()
    scorer.pair.champion = model
    scorer.restore_labels(model)


def run_stream(scorer: Scorer, n: int = 3000, seed: int = 1) -> None:
    rng = random.Random(seed)
    for i in range(n):
        t = i * 60_000
        fraud = rng.random() < 0.1
        scorer.score(str(i), f"c{i % 50}", vector(rng, fraud), t)
        scorer.add_labels([Label(str(i), fraud, label_time_ms=t + 3_600_000)])
        scorer.maybe_checkpoint(t)


def test_scorer_learns_delayed_labels_and_flags_large_amounts(tmp_path: Path) -> None:
    scorer = make_scorer(tmp_path)
    run_stream(scorer)
    verdict = scorer.score("x", "c1", {"amount": 350.0, "tx_count_1d_by_card": 2.0}, 10**9)
    assert verdict.flagged
    assert verdict.reasons[0].feature == "amount"
    assert verdict.reasons[0].value == 350.0
    assert not scorer.score("y", "c1", {"amount": 20.0, "tx_count_1d_by_card": 2.0}, 10**9).flagged
    assert scorer.learner.stats.learned > 2500
    assert scorer.checkpoints is not None
    assert scorer.checkpoints.numbers() == [1, 2]


def test_rollback_swaps_in_the_previous_checkpoint(tmp_path: Path) -> None:
    scorer = make_scorer(tmp_path)
    run_stream(scorer)
    scorer.checkpoint(10**9)
    scorer.rollback()
    assert scorer.model.checkpoint == 2


def test_a_checkpoint_keeps_the_queued_labels_and_the_label_positions(tmp_path: Path) -> None:
    """A process restored from a checkpoint queues what was queued at the checkpoint and reads
    the labels on from the positions it had: nothing read before it is lost or learned twice."""
    rng = random.Random(3)
    scorer = make_scorer(tmp_path)
    for i in range(100):
        scorer.score(str(i), "c1", vector(rng, i % 4 == 0), i * 60_000)
    due_now = [Label(str(i), i % 4 == 0, label_time_ms=50 * 60_000) for i in range(40)]
    due_later = [Label(str(i), i % 4 == 0, label_time_ms=10**9) for i in range(40, 100)]
    scorer.add_labels(due_now, {("labels", 0): 40})
    scorer.add_labels(due_later, {("labels", 0): 100, ("labels", 1): 7})
    scorer.advance(99 * 60_000)  # the first 40 are learned, 60 still wait for their time
    learned = scorer.model.updates
    assert learned == 40
    assert len(scorer.learner.pending) == 60
    scorer.checkpoint(1)
    assert scorer.model.label_progress is None  # in the checkpoint file only

    restored = make_scorer(tmp_path)
    assert restored.checkpoints is not None
    model = restored.checkpoints.load()
    restored.swap(model)
    assert model.label_progress is None  # a mid-run reload does not move the labels consumer
    restart_from_checkpoint(restored)
    assert restored.model.updates == learned
    assert [lb.transaction_id for _, lb in restored.learner.pending.held()] == [
        str(i) for i in range(40, 100)
    ]
    assert restored.resume_positions == {("labels", 0): 100, ("labels", 1): 7}
    # The restarted process lost its in-memory vectors: they come back from the store (here
    # another memory store standing in for the feature store) and the queued labels are learned.
    for i in range(100):
        restored.learner.snapshots.put(str(i), vector(rng, i % 4 == 0), i * 60_000, DAY_MS)
    restored.advance(10**9)
    assert restored.model.updates == 100
    assert restored.learner.stats.duplicates == 0


def test_a_checkpoint_from_before_label_progress_still_restores(tmp_path: Path) -> None:
    scorer = make_scorer(tmp_path)
    del scorer.model.label_progress  # as unpickled from a checkpoint written before the field
    assert scorer.checkpoints is not None
    scorer.checkpoints.save(scorer.model, 1)
    model = scorer.checkpoints.load()
    assert not hasattr(model, "label_progress")
    scorer.restore_labels(model)
    assert scorer.resume_positions == {}
    assert len(scorer.learner.pending) == 0


def test_a_checkpoint_keeps_the_transactions_waiting_for_an_implicit_negative(
    tmp_path: Path,
) -> None:
    rng = random.Random(4)
    scorer = make_scorer(tmp_path, implicit_after_ms=DAY_MS)
    for i in range(10):
        scorer.score(str(i), "c1", vector(rng, False), i * 60_000)
    scorer.add_labels([Label("3", True, label_time_ms=10 * 60_000)])
    scorer.advance(20 * 60_000)  # "3" is learned as a fraud; the others wait a day
    assert scorer.model.updates == 1
    scorer.checkpoint(1)

    restored = make_scorer(tmp_path, implicit_after_ms=DAY_MS)
    restart_from_checkpoint(restored)
    for i in range(10):  # after a restart the vectors come from the feature store
        restored.learner.snapshots.put(str(i), vector(rng, False), i * 60_000, 8 * DAY_MS)
    restored.advance(2 * DAY_MS)
    assert restored.learner.stats.implicit_negatives == 9  # every waiting one; "3" is not
    assert restored.learner.stats.corrections == 0
    assert restored.model.updates == 10


def test_label_progress_pickled_before_the_implicit_queue_existed_restores() -> None:
    old = LabelProgress.__new__(LabelProgress)
    old.__setstate__([(("labels", 0, 7),), (), 5])  # type: ignore[attr-defined]  # 3 fields then
    learner = DelayedLearner(MemorySnapshotStore(), DAY_MS, implicit_negative_after_ms=DAY_MS)
    learner.restore(old)
    assert learner.pending.watermark_ms == 5
    assert learner.progress({}).unlabelled == ()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_selectable_model_learns_and_scores(name: str) -> None:
    model = FraudModel(name, negative_rate=0.5)
    rng = random.Random(0)
    for i in range(400):
        fraud = i % 8 == 0
        model.learn_one(vector(rng, fraud), fraud, str(i))
    p = model.predict_proba_one(vector(rng, True))
    assert 0.0 <= p <= 1.0
    assert all(r.contribution > 0 for r in model.explain(vector(rng, True)))


def test_unknown_model_name_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="expected one of"):
        build_pipeline("xgboost")


def test_alert_budget_and_cards_per_day_limit_flags() -> None:
    rng = random.Random(3)
    budget, cards = AlertBudget(0.02, warmup=500), CardsPerDay(cards=5)
    flagged = sum(budget.decide(rng.random(), "c", 0)[0] for _ in range(20_000))
    assert 250 < flagged < 550
    days = [
        {c for c in (f"c{rng.randrange(1000)}",) if cards.decide(rng.random(), c, d * DAY_MS)[0]}
        for d in range(3)
        for _ in range(2000)
    ]
    per_day = [set().union(*days[d * 2000 : (d + 1) * 2000]) for d in range(3)]
    assert all(len(s) <= 5 for s in per_day)


@pytest.mark.parametrize("challenger_is_better", [True, False])
def test_challenger_is_promoted_only_when_better(challenger_is_better: bool) -> None:
    good, weak = FraudModel("logistic", 1.0), FraudModel("logistic", 1.0)
    rng = random.Random(5)
    for i in range(3000):  # the weak model first learns inverted labels: it starts wrong
        fraud = rng.random() < 0.2
        weak.learn_one(vector(rng, fraud), not fraud, f"w{i}")
    champion, challenger = (weak, good) if challenger_is_better else (good, weak)
    pair = ShadowPair(champion, challenger, PromotionRule("roc_auc", 0.05, min_labels=300))
    for i in range(300):
        fraud = rng.random() < 0.2
        pair.learn_one(vector(rng, fraud), fraud, str(i))
    assert pair.maybe_promote() is challenger_is_better
    assert pair.champion is good


def test_drift_on_the_error_stream_emits_an_event() -> None:
    metrics, events = OnlineMetrics(0.5, window=500), []
    rng = random.Random(7)
    for i in range(4000):
        fraud = rng.random() < 0.1
        right = 0.9 if fraud else 0.05
        score = right if i < 2000 else 1.0 - right  # the model turns wrong half-way
        event = metrics.update(fraud, score, DAY_MS, i)
        if event is not None:
            events.append(event)
    assert events
    assert isinstance(events[0], DriftEvent)
    assert events[0].worse
    assert 2000 <= events[0].event_time_ms < 2300
