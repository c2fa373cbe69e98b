"""Helpers the test packages share (fixtures live in conftest.py)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence

from confluent_kafka import Consumer

from fraudstream.events import Label, Score, Transaction

__all__ = ["AmountScorer", "CountingLearner", "read_values"]


def read_values(
    config: Mapping[str, str | int | bool], topic: str, expected: int, timeout_s: float = 60.0
) -> list[bytes]:
    """Every value on ``topic`` from the start, read with ``config`` (plus a fresh group).

    Reads until ``expected`` values arrived (or the timeout), then one more second, so a test
    also sees anything beyond what it expected (a duplicate output, say).
    """
    consumer = Consumer({"auto.offset.reset": "earliest", **config, "group.id": uuid.uuid4().hex})
    consumer.subscribe([topic])
    out: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(out) < expected and time.monotonic() < deadline:
            out.extend(m.value() or b"" for m in consumer.consume(1000, 0.2) if not m.error())
        out.extend(m.value() or b"" for m in consumer.consume(1000, 1.0) if not m.error())
    finally:
        consumer.close()
    return out


class AmountScorer:
    """A stand-in for features + model with a known answer: score = min(amount / 1000, 1)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def score_batch(self, batch: Sequence[Transaction], received_ns: int) -> list[Score]:
        self.seen.extend(tx.transaction_id for tx in batch)
        out = []
        for tx in batch:
            s = min(tx.amount / 1000.0, 1.0)
            out.append(
                Score(tx.transaction_id, tx.card_id, s, s >= 0.5, 0.5, "0-test", (),
                      {"amount": tx.amount}, tx.timestamp_ms, time.time_ns() // 10**6, 0)
            )  # fmt: skip
        return out


class CountingLearner:
    """A stand-in learner that keeps every label batch it is given, with its size and time."""

    def __init__(self) -> None:
        self.labels: list[Label] = []
        self.calls: list[int] = []  # the size of each label batch
        self.times: list[float] = []  # and when it came

    def learn(
        self, labels: Sequence[Label], positions: Mapping[tuple[str, int], int] | None = None
    ) -> dict[str, int]:
        self.labels.extend(labels)
        self.calls.append(len(labels))
        self.times.append(time.monotonic())
        return {"applied": len(labels)}

    def resume_offset(self, topic: str, partition: int) -> int | None:
        return None
