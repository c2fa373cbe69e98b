"""Delayed-label learning: snapshots, learn-once, the watermark, unknown and implicit labels."""

from __future__ import annotations

from collections.abc import Mapping

from hypothesis import given, settings
from hypothesis import strategies as st

from fraudstream.events import Label
from fraudstream.model.labels import DelayedLearner, PendingLabels
from fraudstream.model.snapshots import MemorySnapshotStore

DAY_MS = 86_400_000


class RecordingModel:
    """A Learner that records what it was taught."""

    def __init__(self) -> None:
        self.taught: list[tuple[dict[str, float], bool, str]] = []

    def predict_proba_one(self, x: Mapping[str, float]) -> float:
        return 0.5

    def learn_one(self, x: Mapping[str, float], y: bool, key: str) -> bool:
        self.taught.append((dict(x), y, key))
        return True


def make_learner(**kwargs: int) -> DelayedLearner:
    return DelayedLearner(MemorySnapshotStore(), snapshot_ttl_ms=8 * DAY_MS, **kwargs)


def test_model_learns_the_scored_snapshot_not_recomputed_features() -> None:
    learner, model = make_learner(), RecordingModel()
    scored = {"amount": 10.0, "tx_count_1d_by_card": 1.0}
    learner.remember("t1", scored, 0)
    scored["tx_count_1d_by_card"] = 99.0  # the caller's dict changes later: must not leak
    learner.remember("t1", {"amount": 10.0, "tx_count_1d_by_card": 5.0}, 0)  # redelivery
    learner.add_labels([Label("t1", True, label_time_ms=DAY_MS)])
    learner.advance(DAY_MS, model)
    assert model.taught == [({"amount": 10.0, "tx_count_1d_by_card": 1.0}, True, "t1")]


def test_duplicate_labels_learn_once() -> None:
    learner, model = make_learner(), RecordingModel()
    learner.remember("t1", {"amount": 1.0}, 0)
    learner.add_labels([Label("t1", True, label_time_ms=10)] * 3)
    learner.advance(10, model)
    learner.add_labels([Label("t1", True, label_time_ms=20)])
    learner.advance(20, model)
    assert len(model.taught) == 1
    assert learner.stats.duplicates == 3


def test_labels_for_unknown_or_expired_transactions_are_counted_not_learned() -> None:
    learner, model = make_learner(), RecordingModel()
    learner.remember("old", {"amount": 1.0}, 0)
    learner.add_labels([Label("never-seen", True, label_time_ms=1)])
    learner.advance(1, model)
    learner.remember("new", {"amount": 2.0}, 9 * DAY_MS)  # moves event time past old's TTL
    learner.add_labels([Label("old", True, label_time_ms=9 * DAY_MS)])
    learner.advance(9 * DAY_MS, model)
    assert model.taught == []
    assert learner.stats.unknown == 2


def test_label_waits_for_the_transaction_stream_to_reach_its_label_time() -> None:
    learner, model = make_learner(), RecordingModel()
    learner.remember("t1", {"amount": 1.0}, 0)
    learner.add_labels([Label("t1", False, label_time_ms=7 * DAY_MS)])
    learner.advance(7 * DAY_MS - 1, model)
    assert model.taught == []
    learner.advance(7 * DAY_MS, model)
    assert [key for _, _, key in model.taught] == ["t1"]


def test_watermark_never_moves_back() -> None:
    pending = PendingLabels()
    pending.release(100)
    pending.add(Label("a", True, label_time_ms=50))
    assert [lb.transaction_id for lb in pending.release(10)] == ["a"]


@given(
    st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=30),
    st.randoms(use_true_random=False),
)
@settings(max_examples=100, deadline=None)
def test_replay_learns_the_same_sequence_whatever_the_label_arrival_order(
    label_times: list[int], rnd: object
) -> None:
    def run(order: list[int]) -> list[str]:
        learner, model = make_learner(), RecordingModel()
        for i in range(len(label_times)):
            learner.remember(f"t{i}", {"i": float(i)}, 0)
        learner.add_labels(Label(f"t{i}", True, label_time_ms=label_times[i]) for i in order)
        for now in range(0, 60, 7):
            learner.advance(now, model)
        return [key for _, _, key in model.taught]

    in_order = list(range(len(label_times)))
    shuffled = in_order[:]
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    learned = run(in_order)
    assert sorted(learned, key=lambda k: (label_times[int(k[1:])], int(k[1:]))) == learned
    # Labels with distinct label times are learned in label-time order, whatever arrived first.
    distinct = [k for k in learned if label_times.count(label_times[int(k[1:])]) == 1]
    again = [k for k in run(shuffled) if label_times.count(label_times[int(k[1:])]) == 1]
    assert distinct == again


def test_implicit_negative_after_delay_and_a_late_fraud_is_a_correction() -> None:
    learner, model = make_learner(implicit_negative_after_ms=3 * DAY_MS), RecordingModel()
    learner.remember("t1", {"amount": 1.0}, 0)
    learner.remember("t2", {"amount": 2.0}, 0)
    learner.add_labels([Label("t2", True, label_time_ms=DAY_MS)])
    learner.advance(3 * DAY_MS, model)  # t2 labelled already; t1 becomes an implicit negative
    learner.add_labels([Label("t1", True, label_time_ms=4 * DAY_MS)])
    learner.advance(4 * DAY_MS, model)
    assert [(key, y) for _, y, key in model.taught] == [("t2", True), ("t1", False), ("t1", True)]
    assert learner.stats.implicit_negatives == 1
    assert learner.stats.corrections == 1


def test_feedback_carries_the_published_score_and_the_model_never_sees_it() -> None:
    learner, model = make_learner(), RecordingModel()
    learner.remember("t1", {"amount": 3.0}, 0, score=0.875)
    learner.add_labels([Label("t1", True, label_time_ms=5)])
    (feedback,) = learner.advance(5, model)
    assert feedback.score == 0.875
    assert feedback.label_delay_ms == 5
    assert model.taught == [({"amount": 3.0}, True, "t1")]
