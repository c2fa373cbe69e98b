"""Event-time alignment of the detector's inputs: transaction partitions merged, labels level.

Features and the model's label watermark assume the inputs advance together in event time. Live,
they do. In a replay or after downtime every partition has a backlog and librdkafka hands out
whole fetched chunks of one partition at a time, so one partition can run days ahead of another:
a terminal's transactions from the slow partition then arrive later than the allowed lateness
(and are not placed), and labels read behind the transactions act late (a terminal's recent
frauds are missing from its risk).

:class:`EventTimeMerge` fixes the order the detector *processes* records in, not the order it
reads them. Consumed transactions wait in one queue per partition and are released in
event-time order (a k-way merge). A source *holds* the merge while it has a backlog on the broker
and nothing queued: nothing later than its newest event time plus its allowance may be released,
since its next record could be earlier. The allowance is ``max_skew_ms`` for transaction
partitions (so live traffic, where partitions advance together, never waits) and
``label_lag_ms`` (a minute) for label partitions: a transaction is processed only once the
labels due a minute before its time were read (live, a label just produced does not hold the
transactions up for a fetch).
Labels are processed as soon as they are read (one read early only waits for its watermark and
enters windows shifted by the label delay), but a label partition more than ``label_lead_ms``
ahead of the transactions is paused, and so is a transaction partition with more than
``queue_cap`` records queued. A caught-up source, or one silent for ``idle_after_s``, holds
nothing.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["EventTimeMerge", "Plan", "Source"]

Source = tuple[str, int]  # (topic, partition)
T = TypeVar("T")
_EARLIEST = -(2**62)  # a record without event time is released as soon as it is at the head


@dataclass(frozen=True, slots=True)
class Plan:
    """Partitions to pause and to resume."""

    pause: frozenset[Source]
    resume: frozenset[Source]


@dataclass(slots=True)
class _State(Generic[T]):
    merged: bool  # a queued (transaction) source; label sources are only observed
    queue: deque[tuple[int, T]] = field(default_factory=deque)
    event_ms: int | None = None  # newest event time read
    progress_at: float = 0.0  # clock of the last record read (or of the first sighting)
    untimed: bool = False  # read records, none with an event time: it holds nobody


class EventTimeMerge(Generic[T]):
    """Releases queued transaction records in event-time order; see the module docstring."""

    def __init__(
        self,
        labels_topic: str | None,
        max_skew_ms: int,
        label_lead_ms: int = 86_400_000,
        idle_after_s: float = 5.0,
        label_lag_ms: int = 60_000,
        queue_cap: int = 5000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._labels_topic = labels_topic
        self._skew = max_skew_ms
        self._lead = label_lead_ms
        self._label_lag = label_lag_ms
        self._idle_after = idle_after_s
        self._cap = queue_cap
        self._clock = clock
        self._sources: dict[Source, _State[T]] = {}
        self.paused: set[Source] = set()
        self.released_ms = _EARLIEST  # newest event time released
        self.pauses = 0  # partitions paused so far (a metric)

    def _state(self, source: Source) -> _State[T]:
        state = self._sources.get(source)
        if state is None:
            merged = source[0] != self._labels_topic
            state = self._sources[source] = _State(merged, progress_at=self._clock())
        return state

    def add(self, source: Source, event_ms: int | None, item: T) -> None:
        """Queue a transaction record (``event_ms`` None: a record to dead-letter)."""
        self.observe(source, event_ms)
        self._sources[source].queue.append((_EARLIEST if event_ms is None else event_ms, item))

    def observe(self, source: Source, event_ms: int | None) -> None:
        """A record was read from ``source`` (a label: processed at once, not queued)."""
        state = self._state(source)
        state.progress_at = self._clock()
        if event_ms is None:
            state.untimed = state.event_ms is None
        elif state.event_ms is None or event_ms > state.event_ms:
            state.event_ms, state.untimed = event_ms, False

    def reference_ms(self) -> int:
        """The transactions' event time labels are read against: the newest released, else the
        earliest read; 2**62 before any transaction was read."""
        if self.released_ms > _EARLIEST:
            return self.released_ms
        read = [s.event_ms for s in self._sources.values() if s.merged and s.event_ms is not None]
        return min(read, default=2**62)

    def has_reference(self) -> bool:
        """Whether any transaction was read yet (labels are read against their time)."""
        return self.reference_ms() < 2**62

    def queued(self) -> int:
        """Records waiting."""
        return sum(len(s.queue) for s in self._sources.values())

    def forget(self, sources: Iterable[Source]) -> int:
        """Drop revoked sources and their queued records (uncommitted: the next owner reads
        them again). Returns how many records were dropped."""
        dropped = 0
        for source in sources:
            state = self._sources.pop(source, None)
            if state is not None:
                dropped += len(state.queue)
            self.paused.discard(source)
        return dropped

    def _cheap_bound(self, source: Source, state: _State[T]) -> int | None:
        """How far ``source`` would let the merge go if it has a backlog; None: no limit."""
        if state.queue or self._clock() - state.progress_at > self._idle_after:
            return None
        if state.event_ms is None:
            # Nothing timed read yet: its first record could be the earliest, unless it only
            # ever delivered records without event time (those never hold anyone).
            return None if state.untimed else _EARLIEST
        return state.event_ms + (self._skew if state.merged else self._label_lag)

    def release(self, backlog: Callable[[Source], bool], limit: int) -> list[T]:
        """Up to ``limit`` queued records in event-time order, as far as the holders allow.

        ``backlog(source)``: whether the broker has more for ``source`` than was read; asked
        only of a source that would actually hold a record back.
        """
        holders: list[tuple[int, Source]] = []
        for source, state in self._sources.items():
            cheap = self._cheap_bound(source, state)
            if cheap is not None:
                holders.append((cheap, source))
        heapq.heapify(holders)
        heads = [(st.queue[0][0], s) for s, st in self._sources.items() if st.queue]
        heapq.heapify(heads)
        out: list[T] = []
        while heads and len(out) < limit:
            event_ms, source = heads[0]
            while holders and event_ms > holders[0][0]:
                holder = holders[0][1]
                if holder in self.paused or backlog(holder):
                    return out  # it may still deliver something earlier: wait for it
                heapq.heappop(holders)  # caught up: it holds nothing
            state = self._sources[source]
            out.append(state.queue.popleft()[1])
            if event_ms > self.released_ms:
                self.released_ms = event_ms
            if state.queue:
                heapq.heapreplace(heads, (state.queue[0][0], source))
            else:
                heapq.heappop(heads)
                cheap = self._cheap_bound(source, state)  # emptied: it may hold from now on
                if cheap is not None:
                    heapq.heappush(holders, (cheap, source))
        return out

    def plan(self, assigned: Iterable[Source], backlog: Callable[[Source], bool]) -> Plan:
        """Pause transaction partitions over the queue cap and labels too far ahead; resume
        the others. Once no transaction partition has anything left to read or release, labels
        are ahead of nothing: none is paused."""
        assigned = list(assigned)
        tx_pending = any(
            (state := self._state(s)).merged and (state.queue or s in self.paused or backlog(s))
            for s in assigned
        )
        want: set[Source] = set()
        for source in assigned:
            state = self._state(source)
            if state.merged:
                if len(state.queue) >= self._cap or (
                    source in self.paused and len(state.queue) > self._cap // 2
                ):
                    want.add(source)
            elif (
                tx_pending
                and state.event_ms is not None
                and state.event_ms > self.reference_ms() + self._lead
            ):
                want.add(source)
        pause = frozenset(want - self.paused)
        resume = frozenset(s for s in self.paused - want if s in self._sources)
        self.paused = (self.paused | pause) - resume
        self.pauses += len(pause)
        return Plan(pause, resume)
