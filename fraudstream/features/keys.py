"""Every Redis key the feature engine uses, with its hash tag and TTL, built here only.

Hash tags (the part in braces) put all keys of one card, of one terminal, or of one
transaction record in one cluster slot. On Redis Cluster each script call then touches a single
slot; on a single Redis one call covers a transaction's record, card and terminal together
(fewer keys per transaction, see ``RECORD``). The Lua engine appends the suffixes below to a
base key it receives in ``KEYS`` (same tag, so same slot).
"""

from __future__ import annotations

__all__ = ["RECORD", "SUFFIXES", "card_base", "marker_key", "record_key", "terminal_base"]

# Suffix (after a card's or terminal's base key) -> what it holds and why. Entity TTLs are
# refreshed lazily: when a write finds the last refresh older than entity_ttl_ms - horizon_ms
# (wall clock), every key of the entity gets entity_ttl_ms again; so an idle entity vanishes
# between horizon_ms and entity_ttl_ms after its last write, without a PEXPIRE per event.
SUFFIXES = {
    "": "'<dI4' last TTL refresh (wall ms), n frauds; the (time, cumulative frauds) records of "
    "labelled frauds, 16 B each; then the time-sorted log: (time, cumulative count) 16 B per "
    "record for a terminal, (time, cumulative count, own terminal) 24 B for a card (first use "
    "and distinct terminals are read from it); one small string, read whole, appended in order "
    "(entity TTL)",
    ":R": "card only: cumulative amount/amount^2/cnp/location sums + own lat, lon per log "
    "record, 72 B each, aligned with the log; read by GETRANGE (entity TTL)",
    ":x:<tx>": "Redis Cluster only: the transaction's marker in this slot (flags, snapshot); "
    "makes redelivery idempotent and labels exactly-once (record_ttl_ms)",
}
RECORD = (
    "the record key: on a single Redis '<H' length, card id \\n terminal id, the card and "
    "terminal markers (the snapshot; flags say late / labelled), one key per transaction and "
    "the replay check; on Redis Cluster only card id \\n terminal id (record_ttl_ms)"
)


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
    """A transaction's record: its ids for labels, and its snapshot on a single Redis.

    Keyed by transaction id alone because a label may name only the transaction.

    >>> record_key("fs", "tx1")
    'fs:{x:tx1}'
    """
    return f"{prefix}:{{x:{transaction_id}}}"


def marker_key(base: str, transaction_id: str) -> str:
    """Redis Cluster only: a transaction's marker in its card's or terminal's slot.

    >>> marker_key(card_base("fs", "4242"), "tx1")
    'fs:{c:4242}:x:tx1'
    """
    return f"{base}:x:{transaction_id}"
