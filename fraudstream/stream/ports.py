"""What the run loop calls (small Protocol ports, joined in app.py) and how it is tuned."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from fraudstream.events import Label, Rejection, Score, Transaction
from fraudstream.settings import Guarantee

__all__ = ["BatchScorer", "LabelLearner", "LoopOptions", "ModelSink"]


class BatchScorer(Protocol):
    """Scores a batch of valid transactions (features + model), one result each, in order: a
    Score, or a Rejection for a transaction refused only at scoring (an id reused)."""

    def score_batch(
        self, batch: Sequence[Transaction], received_ns: int
    ) -> Sequence[Score | Rejection]: ...


class ModelSink(Protocol):
    """Takes a published model version (signed bytes) and swaps it in if it verifies."""

    def offer_model(self, blob: bytes) -> None: ...


class LabelLearner(Protocol):
    """Takes labels from the feedback topic; returns counts by outcome (applied, unknown...).

    ``positions`` are the labels partitions' next offsets once ``labels`` are read; a learner
    that checkpoints keeps them with its model, and :meth:`resume_offset` gives them back once
    after a restore, so the labels consumer reads on from what the checkpoint has.
    """

    def learn(
        self, labels: Sequence[Label], positions: Mapping[tuple[str, int], int] | None = None
    ) -> dict[str, int]: ...

    def resume_offset(self, topic: str, partition: int) -> int | None: ...


@dataclass(frozen=True, slots=True)
class LoopOptions:
    """Tuning of the run loop."""

    group_id: str = "fraudstream-detector"
    batch_size: int = 500
    poll_timeout_s: float = 0.005
    budget_us: int = 1000
    summary_every_s: float = 10.0
    lag_every_s: float = 5.0
    align: bool = True  # event-time alignment of the inputs (stream/align.py)
    max_skew_ms: int = 21_600_000
    label_lead_ms: int = 86_400_000  # how far labels may run ahead of the transactions
    label_lag_ms: int = 60_000  # how far transactions may run ahead of labels still to read
    idle_after_s: float = 5.0
    # Labels are read at most this often (sooner while full batches are waiting): they are
    # days late anyway, and each label batch costs Redis round trips and, exactly-once, a
    # Kafka transaction, so few large batches cost far less than many small ones.
    label_interval_s: float = 0.1
    queue_cap: int = 5000  # records queued per partition before it is paused
    guarantee: Guarantee = "at-least-once"
    # This process's stable name: one per running process, kept across its restarts (a pod
    # name). Set, it is the consumers' group.instance.id (static membership: a restarted
    # process takes its partitions back at once instead of after the session timeout).
    # Exactly-once: the transactional.id is "{group_id}.{instance_id or host name}", so a
    # restart aborts what the crashed process left open.
    instance_id: str = ""
    transaction_timeout_s: float = 60.0  # how long a commit or abort may take before failing
