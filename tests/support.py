"""Helpers the test packages share (fixtures live in conftest.py)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping

from confluent_kafka import Consumer

__all__ = ["read_values"]


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
