"""Which consumed offsets are safe to commit: only those whose outputs were all delivered.

At-least-once means a record's offset is stored only after every output it caused (its Score,
its Flag, or its dead letter) was acknowledged by the broker. Batches finish out of order when
deliveries do; offsets are released strictly in consumption order.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

__all__ = ["OffsetTracker", "PendingBatch"]


@dataclass(slots=True)
class PendingBatch:
    """One consumed batch: the next offset to commit per partition and outputs in flight."""

    next_offsets: dict[tuple[str, int], int]
    outstanding: int = 0
    failed: bool = False
    sealed: bool = False
    outputs: int = field(default=0)


class OffsetTracker:
    """Release offsets in consumption order once every output of a batch is delivered.

    >>> t = OffsetTracker()
    >>> a = t.open({("tx", 0): 11}); t.expect(a, 2); t.seal(a)
    >>> b = t.open({("tx", 0): 15}); t.expect(b, 1); t.seal(b)
    >>> t.delivered(b); t.release()          # b is done, but a is still in flight
    {}
    >>> t.delivered(a); t.delivered(a); t.release()
    {('tx', 0): 15}
    """

    def __init__(self) -> None:
        self._batches: deque[PendingBatch] = deque()

    def open(self, next_offsets: dict[tuple[str, int], int]) -> PendingBatch:
        """Start tracking a batch; ``next_offsets`` maps (topic, partition) to last offset + 1."""
        batch = PendingBatch(next_offsets)
        self._batches.append(batch)
        return batch

    @staticmethod
    def expect(batch: PendingBatch, n: int = 1) -> None:
        """Count ``n`` outputs about to be produced for ``batch``."""
        batch.outstanding += n
        batch.outputs += n

    @staticmethod
    def seal(batch: PendingBatch) -> None:
        """No more outputs will be added to ``batch``."""
        batch.sealed = True

    @staticmethod
    def delivered(batch: PendingBatch) -> None:
        """One output of ``batch`` was acknowledged."""
        batch.outstanding -= 1

    @staticmethod
    def failed(batch: PendingBatch) -> None:
        """One output of ``batch`` could not be delivered: its offsets are never released."""
        batch.outstanding -= 1
        batch.failed = True

    def release(self) -> dict[tuple[str, int], int]:
        """Pop the finished batches at the front; return the offsets now safe to store."""
        ready: dict[tuple[str, int], int] = {}
        while self._batches:
            head = self._batches[0]
            if not head.sealed or head.outstanding > 0 or head.failed:
                break
            ready.update(head.next_offsets)
            self._batches.popleft()
        return ready

    @property
    def in_flight(self) -> int:
        """Batches not yet released."""
        return len(self._batches)

    @property
    def blocked(self) -> bool:
        """True once a delivery failed: those offsets will never be committed."""
        return any(b.failed for b in self._batches)

    def clear(self) -> None:
        """Forget everything (after a partition revocation, re-consumed records start anew)."""
        self._batches.clear()
