"""Every Redis key the feature engine uses, with its hash tag and TTL, built here only.

Hash tags (the part in braces) put all keys of one card, of one terminal, or of one
transaction record in one cluster slot, so each script call touches a single slot and the
engine runs unchanged on Redis Cluster. The Lua engine appends the suffixes below to a base key
it receives in ``KEYS`` (same tag, so same slot).
"""

from __future__ import annotations

__all__ = ["SUFFIXES", "card_base", "record_key", "terminal_base"]

# Suffix -> what it holds and why (TTLs from FeatureConfig):
SUFFIXES = {
    ":T": "time-sorted (time, cumulative count) records, 16 B each; entity_ttl_ms after the "
    "last write, so idle entities vanish without a sweeper",
    ":R": "card only: cumulative amount/amount^2/cnp/location sums + own lat, lon, terminal per "
    "record, 80 B each, aligned with :T; entity_ttl_ms",
    ":F": "(time, cumulative frauds) of labelled frauds, 16 B each; entity_ttl_ms",
    ":S": "card only: hash terminal -> last 4 use times, for first-use; entity_ttl_ms",
    ":x:<tx>": "the transaction's raw vector (its snapshot) + label mark: makes redelivery "
    "idempotent and labels exactly-once; record_ttl_ms = longest label delay + margin",
}


def card_base(prefix: str, card_id: str) -> str:
    """Base key of a card's state; the tag ``c:<card>`` keeps it in one slot.

    >>> card_base("fs", "4242")
    'fs:{c:4242}'
    """
    return f"{prefix}:{{c:{card_id}}}"


def terminal_base(prefix: str, terminal_id: str) -> str:
    """Base key of a terminal's state; the tag ``t:<terminal>`` keeps it in one slot."""
    return f"{prefix}:{{t:{terminal_id}}}"


def record_key(prefix: str, transaction_id: str) -> str:
    """Where a transaction's card and terminal ids wait for its label (record_ttl_ms).

    Keyed by transaction id alone because a label may name only the transaction.

    >>> record_key("fs", "tx1")
    'fs:{x:tx1}'
    """
    return f"{prefix}:{{x:{transaction_id}}}"
