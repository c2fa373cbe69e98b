"""Event-time alignment of the detector's inputs (transaction partitions and label partitions).

Features and the model's label watermark assume the inputs advance together in event time. Live,
they do. In a replay or after downtime each partition has a backlog and is consumed at its own
pace, so one partition can run days ahead of another: a terminal's transactions from the slow
partition then arrive later than the allowed lateness (and are not placed), and labels read
ahead of or behind the transactions act at the wrong point of the stream.

The rule (the same idea as watermark alignment in stream processors): every source reports the
event time of its newest record (a transaction's ``timestamp_ms``, a label's ``label_time``). A
source *holds* the others while it has a backlog and has delivered a record within ``idle_after_s``;
each source more than ``max_skew_ms`` ahead of the slowest holding source is paused, and resumed
once it is within the skew again. A topic may be given a longer lead: labels read ahead of the
transactions only wait in the model's label queue (their watermark) and enter windows shifted by
the label delay, so they may lead by more; read behind, they would act late. A caught-up or
quiet source holds nobody, so live traffic and sparse labels are never waited for. The slowest
holding source is never paused, so the loop always makes progress.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

__all__ = ["Aligner", "Plan", "Source"]

Source = tuple[str, int]  # (topic, partition)
_EARLIEST = -(2**62)  # the event time assumed for a source that has not delivered yet


@dataclass(frozen=True, slots=True)
class Plan:
    """What to change: sources to pause and sources to resume."""

    pause: frozenset[Source]
    resume: frozenset[Source]


@dataclass(slots=True)
class _State:
    event_ms: int | None = None  # newest event time seen; None until a timed record arrives
    progress_at: float = 0.0  # clock of the last record (or of the first sighting)
    untimed: bool = False  # delivered records without event time: it holds nobody


class Aligner:
    """Decides which sources to pause so that none runs ahead of the slowest by more than a skew."""

    def __init__(
        self,
        max_skew_ms: int,
        idle_after_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        lead_ms: Mapping[str, int] | None = None,
    ) -> None:
        self._skew = max_skew_ms
        self._lead = dict(lead_ms or {})  # topic -> how far ahead it may run, if not the skew
        self._idle_after = idle_after_s
        self._clock = clock
        self._sources: dict[Source, _State] = {}
        self.paused: set[Source] = set()
        self.pauses = 0  # times a source was paused (exported as a metric)

    def observe(self, source: Source, event_ms: int | None) -> None:
        """A record from ``source``; ``event_ms`` None for a record without event time."""
        state = self._sources.get(source)
        if state is None:
            state = self._sources[source] = _State()
        state.progress_at = self._clock()
        if event_ms is None:  # only untimed records so far: it holds nobody
            state.untimed = state.event_ms is None
        elif state.event_ms is None or event_ms > state.event_ms:
            state.event_ms, state.untimed = event_ms, False

    def forget(self, sources: Iterable[Source]) -> None:
        """Sources no longer assigned (a rebalance): they neither hold nor stay paused."""
        for source in sources:
            self._sources.pop(source, None)
            self.paused.discard(source)

    def plan(self, backlog: Callable[[Source], bool], assigned: Iterable[Source]) -> Plan:
        """Pauses and resumes for the ``assigned`` sources; ``backlog(s)`` tells if s has more."""
        now = self._clock()
        holding: list[int] = []
        known: dict[Source, int] = {}
        for source in assigned:
            state = self._sources.get(source)
            if state is None:
                state = self._sources[source] = _State(progress_at=now)
            if state.untimed:
                continue
            if state.event_ms is not None:
                known[source] = state.event_ms
            # A paused source has a backlog by construction and no progress because of us. A
            # backlogged source yet to deliver its first record holds everyone (its time could
            # be the earliest) until it delivers or falls idle.
            if source in self.paused or (
                now - state.progress_at <= self._idle_after and backlog(source)
            ):
                holding.append(_EARLIEST if state.event_ms is None else state.event_ms)
        if not holding:  # nothing has a backlog (a paused source would hold): resume all
            resume = frozenset(self.paused)
            self.paused.clear()
            return Plan(frozenset(), resume)
        low = min(holding)
        lead = self._lead

        def ahead(source: Source, t: int) -> bool:
            return t > low + lead.get(source[0], self._skew)

        pause = frozenset(s for s, t in known.items() if s not in self.paused and ahead(s, t))
        resume = frozenset(s for s in self.paused if not ahead(s, known.get(s, low)))
        for source in resume:  # a fresh idle window: it has had no chance to deliver yet
            self._sources[source].progress_at = now
        self.paused = (self.paused | pause) - resume
        self.pauses += len(pause)
        return Plan(pause, resume)
