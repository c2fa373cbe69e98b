"""The port both feature stores implement, their statistics, and the shared input encoding."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from fraudstream.events import Label, Transaction
from fraudstream.features.catalogue import NO_LOCATION

__all__ = [
    "FeatureStats",
    "FeatureStore",
    "LabelStats",
    "encode_tx",
    "same_event",
    "terminal_float",
    "terminal_hash",
]


@dataclass(slots=True)
class FeatureStats:
    """Running counters of a store since it was built (returned stats, also for metrics).

    Attributes:
        late_events: Transactions older than the allowed lateness for their card or
            terminal: scored as of their event time but not added to that entity's state.
        replays: Transactions whose id had been seen: their first features were returned.
        conflicts: Replays whose time, amount or terminal differ from the first transaction
            with that id: not a redelivery but another transaction reusing the id. Their
            first features come back too (state unchanged); the batch's positions are in
            :attr:`FeatureStore.conflicts` for the caller to refuse them.
    """

    late_events: int = 0
    replays: int = 0
    conflicts: int = 0


@dataclass(frozen=True, slots=True)
class LabelStats:
    """What one :meth:`FeatureStore.apply_labels` call did.

    Attributes:
        applied: Labels recorded for the first time (frauds update the risk windows).
        duplicates: Labels for a transaction already labelled: ignored, the first one wins.
        unknown: Labels for a transaction never scored or whose record expired: ignored.
    """

    applied: int = 0
    duplicates: int = 0
    unknown: int = 0


class FeatureStore(Protocol):
    """Rolling per-card and per-terminal aggregates; one vector per transaction."""

    stats: FeatureStats
    conflicts: list[int]  # positions in the last features_for batch of id conflicts

    def features_for(self, batch: Sequence[Transaction]) -> list[dict[str, float]]:
        """Features of each transaction as of its event time; update state once per id."""
        ...

    def apply_labels(self, batch: Sequence[Label]) -> LabelStats:
        """Record verdicts; a fraud counts in the delayed risk windows from now on."""
        ...

    def snapshot(self, transaction_ids: Sequence[str]) -> Mapping[str, dict[str, float]]:
        """The features first returned for each still-recorded transaction id."""
        ...

    def snapshots(self, transaction_ids: Sequence[str]) -> dict[str, tuple[dict[str, float], int]]:
        """:meth:`snapshot` with each transaction's event time (ms): what a learner needs."""
        ...


@lru_cache(maxsize=1 << 16)  # hot path: terminals recur; blake2b costs ~1 us a call
def terminal_hash(terminal_id: str | None) -> str:
    """A stable 40-bit id for a terminal, as decimal text; ``"0"`` means no terminal.

    Exact in a double, so Redis Lua compares it as a number. Two terminals of one card collide
    with probability ~1e-12 per pair.

    >>> terminal_hash(None), terminal_hash("T1") == terminal_hash("T1")
    ('0', True)
    """
    if terminal_id is None:
        return "0"
    digest = hashlib.blake2b(terminal_id.encode(), digest_size=5).digest()
    return str(int.from_bytes(digest, "big") or 1)


@lru_cache(maxsize=1 << 16)
def terminal_float(terminal_id: str | None) -> float:
    """:func:`terminal_hash` as a float (exact: 40 bits), as the engine stores it.

    >>> terminal_float(None), terminal_float("T1") == float(terminal_hash("T1"))
    (0.0, True)
    """
    return float(terminal_hash(terminal_id))


def encode_tx(tx: Transaction) -> tuple[float, float, float, float, float]:
    """The numeric inputs of a transaction: time ms, amount, cnp flag, lat, lon.

    >>> encode_tx(Transaction("x", "c", 2.5, 1000, channel="card_not_present"))
    (1000.0, 2.5, 1.0, 999.0, 0.0)
    """
    has_loc = tx.lat is not None and tx.lon is not None
    return (
        float(tx.timestamp_ms),
        float(tx.amount),
        1.0 if tx.channel == "card_not_present" else 0.0,
        float(tx.lat) if has_loc and tx.lat is not None else NO_LOCATION,
        float(tx.lon) if has_loc and tx.lon is not None else 0.0,
    )


def same_event(tx: Transaction, marker: Sequence[float]) -> bool:
    """Whether a stored card marker (``catalogue.C_*`` order) was made by this transaction.

    A redelivered transaction matches its marker; another transaction reusing the id differs
    in time, amount or terminal (a different card alone is not seen: the marker has no card).

    >>> tx = Transaction("x", "c", 2.5, 1000, "T1")
    >>> same_event(tx, (0, 1000.0, 2.5, 999.0, 0.0, terminal_float("T1")))
    True
    >>> same_event(tx, (0, 1000.0, 3.0, 999.0, 0.0, terminal_float("T1")))
    False
    """
    return (
        marker[1] == float(tx.timestamp_ms)
        and marker[2] == float(tx.amount)
        and marker[5] == terminal_float(tx.terminal_id)
    )
