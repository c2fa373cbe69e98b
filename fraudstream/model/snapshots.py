"""The port for scored-feature snapshots, and its in-memory implementation.

At scoring time the exact feature vector is kept under the transaction id, with a TTL equal to
the longest label delay; when the label arrives the model learns from that snapshot, never from
recomputed features (which would leak later state into the past). :class:`MemorySnapshotStore`
is the implementation the detector uses: snapshots live in the detector process, so a restart
forgets the ones not yet labelled (their labels are then counted as unknown). A store shared by
processes (a trainer role) implements the same port.
"""

from __future__ import annotations

import heapq
from array import array
from collections.abc import Mapping, Sequence
from typing import Protocol

__all__ = ["FallbackSnapshots", "MemorySnapshotStore", "Snapshot", "SnapshotStore"]

Snapshot = tuple[dict[str, float], int]
"""A scored feature vector and its transaction's event time (epoch ms)."""


class SnapshotStore(Protocol):
    """Where the scored feature vectors wait for their labels."""

    def put(
        self, tx_id: str, features: Mapping[str, float], event_time_ms: int, ttl_ms: int
    ) -> None:
        """Keep ``features`` for ``tx_id`` until ``event_time_ms + ttl_ms``; the first put wins."""
        ...

    def get_many(self, tx_ids: Sequence[str]) -> dict[str, Snapshot]:
        """The snapshots still held for ``tx_ids``; unknown or expired ids are absent."""
        ...


class MemorySnapshotStore:
    """Snapshots in a dict, expired by event time (the newest ``event_time_ms`` seen).

    Expiry follows event time, not the wall clock, so a replay expires exactly what a live run
    would. A repeated put (a redelivered transaction) keeps the first vector: the one scored.

    >>> store = MemorySnapshotStore()
    >>> store.put("t1", {"amount": 5.0}, event_time_ms=0, ttl_ms=10)
    >>> store.put("t1", {"amount": 9.0}, event_time_ms=1, ttl_ms=10)
    >>> store.get_many(["t1", "t2"])
    {'t1': ({'amount': 5.0}, 0)}
    >>> store.put("t3", {"amount": 1.0}, event_time_ms=11, ttl_ms=10)
    >>> sorted(store.get_many(["t1", "t3"]))
    ['t3']
    """

    def __init__(self) -> None:
        # tx id -> (the vector's names, shared by every vector with the same keys; its values
        # as doubles; event time; expiry). Compact (8 bytes a value, not a dict of floats) and
        # invisible to the garbage collector: days of snapshots add nothing to its pauses.
        self._items: dict[str, tuple[tuple[str, ...], array[float], int, int]] = {}
        self._names: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._expiry: list[tuple[int, str]] = []
        self._now_ms = -(2**62)

    def __len__(self) -> int:
        return len(self._items)

    def put(
        self, tx_id: str, features: Mapping[str, float], event_time_ms: int, ttl_ms: int
    ) -> None:
        """Keep a copy of ``features``; see :meth:`SnapshotStore.put`."""
        self._advance(event_time_ms)
        if tx_id in self._items:
            return
        expires = event_time_ms + ttl_ms
        if expires <= self._now_ms:
            return  # already expired as of the newest event time: nothing would read it
        names = tuple(features)
        names = self._names.setdefault(names, names)
        self._items[tx_id] = (names, array("d", features.values()), event_time_ms, expires)
        heapq.heappush(self._expiry, (expires, tx_id))

    def get_many(self, tx_ids: Sequence[str]) -> dict[str, Snapshot]:
        """See :meth:`SnapshotStore.get_many`."""
        out: dict[str, Snapshot] = {}
        for tx_id in tx_ids:
            item = self._items.get(tx_id)
            if item is not None and item[3] > self._now_ms:
                out[tx_id] = (dict(zip(item[0], item[1], strict=True)), item[2])
        return out

    def _advance(self, now_ms: int) -> None:
        if now_ms <= self._now_ms:
            return
        self._now_ms = now_ms
        while self._expiry and self._expiry[0][0] <= now_ms:
            _, tx_id = heapq.heappop(self._expiry)
            self._items.pop(tx_id, None)


class FallbackSnapshots:
    """Snapshots kept in ``first``; the ones it lacks are looked up in ``then``.

    A restarted process has lost its memory of the vectors it scored, but labels read again
    after a restore still need them: ``then`` is the feature store, which recorded every
    vector exactly as scored (without the published score; the metrics then use the model's).

    >>> a, b = MemorySnapshotStore(), MemorySnapshotStore()
    >>> b.put("t1", {"amount": 5.0}, event_time_ms=0, ttl_ms=10)
    >>> both = FallbackSnapshots(a, b)
    >>> both.put("t2", {"amount": 7.0}, event_time_ms=0, ttl_ms=10)
    >>> sorted(both.get_many(["t1", "t2", "t3"]))
    ['t1', 't2']
    """

    def __init__(self, first: SnapshotStore, then: SnapshotStore) -> None:
        self.first = first
        self.then = then

    def put(
        self, tx_id: str, features: Mapping[str, float], event_time_ms: int, ttl_ms: int
    ) -> None:
        """Keep ``features`` in ``first``."""
        self.first.put(tx_id, features, event_time_ms, ttl_ms)

    def get_many(self, tx_ids: Sequence[str]) -> dict[str, Snapshot]:
        """From ``first``, then the ids it lacks from ``then``."""
        out = self.first.get_many(tx_ids)
        missing = [tx_id for tx_id in tx_ids if tx_id not in out]
        if missing:
            out.update(self.then.get_many(missing))
        return out
