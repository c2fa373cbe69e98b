"""Learning from delayed labels: a watermark on label time, snapshots, learn once per id.

A label takes effect only once the transaction stream's event time has reached its
``label_time_ms`` (the watermark), so a replay at any speed learns the same labels in the same
order as the live run did, and no label acts earlier than it could have live. The model then
learns from the snapshot of the exact vector that was scored, once per transaction id.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Protocol

from fraudstream.events import Label
from fraudstream.model.snapshots import SnapshotStore

__all__ = [
    "SCORE_KEY",
    "DelayedLearner",
    "Feedback",
    "LabelProgress",
    "LearnStats",
    "Learner",
    "PendingLabels",
]


# The published score rides in the snapshot under this key (not a feature name: never learned).
SCORE_KEY = "__score__"


class Learner(Protocol):
    """What :class:`DelayedLearner` teaches: River's verbs, ``learn_one`` with a stable key."""

    def predict_proba_one(self, x: Mapping[str, float]) -> float:
        """Fraud probability of ``x``."""
        ...

    def learn_one(self, x: Mapping[str, float], y: bool, key: str) -> bool:
        """Learn one example; ``key`` (the transaction id) drives deterministic sampling."""
        ...


class PendingLabels:
    """Labels held until the watermark reaches their label time; released in time order.

    A label without ``label_time_ms`` acts at the watermark current when it was added.

    >>> p = PendingLabels()
    >>> p.add(Label("a", True, label_time_ms=20)); p.add(Label("b", False, label_time_ms=10))
    >>> [lb.transaction_id for lb in p.release(15)], len(p)
    (['b'], 1)
    """

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Label]] = []
        self._seq = 0
        self.watermark_ms = -(2**62)

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, label: Label) -> None:
        """Hold ``label`` until the watermark reaches its label time."""
        when = self.watermark_ms if label.label_time_ms is None else label.label_time_ms
        self.add_at(when, label)

    def add_at(self, when: int, label: Label) -> None:
        """Hold ``label`` until the watermark reaches ``when``."""
        heapq.heappush(self._heap, (when, self._seq, label))
        self._seq += 1  # ties keep arrival order: the replay order equals the live order

    def held(self) -> tuple[tuple[int, Label], ...]:
        """Every held label with the watermark it waits for, in release order."""
        return tuple((when, label) for when, _, label in sorted(self._heap))

    def release(self, event_time_ms: int) -> list[Label]:
        """Advance the watermark to ``event_time_ms`` (never back) and pop the due labels."""
        self.watermark_ms = max(self.watermark_ms, event_time_ms)
        out = []
        while self._heap and self._heap[0][0] <= self.watermark_ms:
            out.append(heapq.heappop(self._heap)[2])
        return out


@dataclass(frozen=True, slots=True)
class LabelProgress:
    """How far a checkpointed model got through the label feed.

    Every label read before ``positions`` (the next offset of each labels partition) is either
    in the model or in ``pending``, still held by the watermark. A process restored from the
    checkpoint holds ``pending`` again and reads the labels on from ``positions``: nothing read
    after the checkpoint is lost, and nothing in it is learned twice. With implicit negatives,
    ``unlabelled`` are the scored transactions still waiting for theirs (none learned yet).
    """

    positions: tuple[tuple[str, int, int], ...]  # (topic, partition, next offset)
    pending: tuple[tuple[int, Label], ...]  # (watermark it waits for, label)
    watermark_ms: int
    unlabelled: tuple[tuple[int, str], ...] = ()  # (event time, tx id), oldest first

    def __setstate__(self, state: list[Any]) -> None:
        """Unpickle; fields added since a checkpoint was written (``unlabelled``) get their
        defaults."""
        for i, f in enumerate(fields(self)):
            object.__setattr__(self, f.name, state[i] if i < len(state) else f.default)


@dataclass(slots=True)
class LearnStats:
    """Counters since start; exported as metrics.

    Attributes:
        learned: Examples the model learned (explicit and implicit labels; genuine ones
            left out by undersampling are not counted).
        implicit_negatives: Transactions learned as genuine after the implicit-negative delay.
        corrections: Fraud labels that arrived after an implicit negative was learned.
        duplicates: Labels for a transaction already learned with the same verdict: ignored.
        unknown: Labels whose snapshot is missing (never scored here, or expired): ignored.
    """

    learned: int = 0
    implicit_negatives: int = 0
    corrections: int = 0
    duplicates: int = 0
    unknown: int = 0


@dataclass(frozen=True, slots=True)
class Feedback:
    """One label joined to its snapshot, for the online metrics.

    ``score`` is the score published for the transaction when it was remembered with one;
    otherwise the model's score of the snapshot just before learning it (prequential).
    ``learned`` is false for genuine examples left out by undersampling.
    """

    transaction_id: str
    features: dict[str, float]
    is_fraud: bool
    score: float
    learned: bool
    event_time_ms: int
    label_delay_ms: int
    implicit: bool


class DelayedLearner:
    """Joins released labels to their snapshots and teaches the model once per transaction.

    Args:
        snapshots: Where scored vectors wait (see :class:`SnapshotStore`).
        snapshot_ttl_ms: How long a snapshot is kept: the longest label delay expected.
        implicit_negative_after_ms: If set, a transaction with no label that old is learned
            as genuine (the book assumes every fraud is known after 7 days). A fraud label
            arriving later is still learned, once, and counted as a correction.
    """

    def __init__(
        self,
        snapshots: SnapshotStore,
        snapshot_ttl_ms: int,
        implicit_negative_after_ms: int | None = None,
    ) -> None:
        self.snapshots = snapshots
        self.snapshot_ttl_ms = snapshot_ttl_ms
        self.implicit_negative_after_ms = implicit_negative_after_ms
        self.pending = PendingLabels()
        self.stats = LearnStats()
        self._learned: dict[str, bool] = {}  # tx id -> verdict learned, until its snapshot expires
        self._forget: deque[tuple[int, str]] = deque()
        self._unlabelled: deque[tuple[int, str]] = deque()

    def remember(
        self,
        tx_id: str,
        features: Mapping[str, float],
        event_time_ms: int,
        score: float | None = None,
    ) -> None:
        """Keep the scored vector of a transaction (and its published score) for its label."""
        if score is not None:
            features = {**features, SCORE_KEY: score}
        self.snapshots.put(tx_id, features, event_time_ms, self.snapshot_ttl_ms)
        if self.implicit_negative_after_ms is not None:
            self._unlabelled.append((event_time_ms, tx_id))

    def add_labels(self, labels: Iterable[Label]) -> None:
        """Queue labels; they act at :meth:`advance` once the watermark reaches them."""
        for label in labels:
            self.pending.add(label)

    def progress(self, positions: Mapping[tuple[str, int], int]) -> LabelProgress:
        """The labels still held and ``positions`` (read so far), for a checkpoint."""
        learned = self._learned
        return LabelProgress(
            tuple((t, p, o) for (t, p), o in sorted(positions.items())),
            self.pending.held(),
            self.pending.watermark_ms,
            tuple(entry for entry in self._unlabelled if entry[1] not in learned),
        )

    def restore(self, progress: LabelProgress) -> None:
        """Hold a checkpoint's pending labels again (at the watermark they waited for), and its
        transactions still waiting for an implicit negative."""
        self.pending.watermark_ms = max(self.pending.watermark_ms, progress.watermark_ms)
        for when, label in progress.pending:
            self.pending.add_at(when, label)
        if progress.unlabelled and self.implicit_negative_after_ms is not None:
            self._unlabelled = deque(sorted([*progress.unlabelled, *self._unlabelled]))

    def advance(self, event_time_ms: int, model: Learner) -> list[Feedback]:
        """Move the watermark and teach ``model`` every label (and implicit negative) now due."""
        due = self.pending.release(event_time_ms)
        now = self.pending.watermark_ms
        found = self.snapshots.get_many([lb.transaction_id for lb in due]) if due else {}
        out: list[Feedback] = []
        for label in due:
            snap = found.get(label.transaction_id)
            if snap is None:
                self.stats.unknown += 1
                continue
            label_time = now if label.label_time_ms is None else label.label_time_ms
            self._teach(label.transaction_id, snap, label.is_fraud, label_time, False, model, out)
        if self.implicit_negative_after_ms is not None:
            self._implicit(now, model, out)
        self._expire(now)
        return out

    def _teach(
        self,
        tx_id: str,
        snap: tuple[dict[str, float], int],
        y: bool,
        label_time_ms: int,
        implicit: bool,
        model: Learner,
        out: list[Feedback],
    ) -> None:
        before = self._learned.get(tx_id)
        if before is not None and (before or not y):
            self.stats.duplicates += not implicit
            return  # redelivered label, or implicit negative after a real label: learn once
        if before is not None:
            self.stats.corrections += 1  # a fraud after an implicit negative: learn it too
        else:
            self._forget.append((snap[1] + self.snapshot_ttl_ms, tx_id))
        self._learned[tx_id] = y
        x = snap[0]
        score = x.get(SCORE_KEY)
        if score is None:
            score = model.predict_proba_one(x)
        else:
            x = {k: v for k, v in x.items() if k != SCORE_KEY}
        learned = model.learn_one(x, y, tx_id)
        self.stats.learned += learned
        self.stats.implicit_negatives += implicit
        delay = label_time_ms - snap[1]
        out.append(Feedback(tx_id, x, y, score, learned, snap[1], delay, implicit))

    def _implicit(self, now: int, model: Learner, out: list[Feedback]) -> None:
        assert self.implicit_negative_after_ms is not None
        after = self.implicit_negative_after_ms
        due: list[str] = []
        while self._unlabelled and self._unlabelled[0][0] + after <= now:
            tx_id = self._unlabelled.popleft()[1]
            if tx_id not in self._learned:
                due.append(tx_id)
        found = self.snapshots.get_many(due) if due else {}
        for tx_id in due:
            snap = found.get(tx_id)
            if snap is not None:
                self._teach(tx_id, snap, False, snap[1] + after, True, model, out)

    def _expire(self, now: int) -> None:
        while self._forget and self._forget[0][0] <= now:
            self._learned.pop(self._forget.popleft()[1], None)
