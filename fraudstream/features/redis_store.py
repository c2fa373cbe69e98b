"""The Redis feature store: one server-side script call per batch (per slot group on a cluster).

Each transaction becomes three operations: its card's (``C``), its terminal's (``T``) and its
record (``X``), each touching one hash-tagged slot. On a single Redis the whole batch goes in
one ``EVALSHA``; on Redis Cluster the operations are grouped by slot, one ``EVALSHA`` per slot,
sent as one pipeline (one round trip per node). The script is the same either way.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from fraudstream.errors import FeatureStoreError
from fraudstream.events import Label, Transaction
from fraudstream.features import catalogue as cat
from fraudstream.features import keys
from fraudstream.features.base import FeatureStats, LabelStats, encode_tx, terminal_hash
from fraudstream.features.config import FeatureConfig

__all__ = ["RedisFeatureStore"]

logger = logging.getLogger(__name__)
_CARD = struct.Struct(f"<{cat.CARD_LEN}d")
_TERM = struct.Struct(f"<{cat.TERM_LEN}d")
Client = redis.Redis | RedisCluster


class RedisFeatureStore:
    """Rolling aggregates in Redis; same results as the in-memory oracle.

    Args:
        client: A ``redis.Redis`` (hiredis installed) or ``redis.cluster.RedisCluster``.
        config: Windows, lateness, caps and TTLs.
    """

    def __init__(self, client: Client, config: FeatureConfig | None = None) -> None:
        self.client = client
        self.config = cfg = config or FeatureConfig()
        self.names = cat.feature_names(cfg)
        self.stats = FeatureStats()
        self._cluster = isinstance(client, RedisCluster)
        self._source = resources.files(__package__).joinpath("engine.lua").read_text()
        self._sha: str | None = None
        self._argv_head = [
            cfg.allowed_lateness_ms,
            cfg.horizon_ms,
            cfg.label_delay_ms,
            cfg.exact_cap,
            cfg.coarse_max,
            cfg.fold_bucket_ms,
            cfg.terminals_cap,
            cfg.entity_ttl_ms,
            cfg.record_ttl_ms,
        ]
        self._prefix = cfg.key_prefix

    @classmethod
    def from_url(cls, url: str, config: FeatureConfig | None = None, *, cluster: bool = False,
                 password: str | None = None) -> RedisFeatureStore:  # fmt: skip
        """Connect to ``url`` (a single Redis, or any node of a cluster with ``cluster``)."""
        client: Client
        if cluster:
            client = RedisCluster.from_url(url, password=password)
        else:
            client = redis.Redis.from_url(url, password=password)
        return cls(client, config)

    def features_for(self, batch: Sequence[Transaction]) -> list[dict[str, float]]:
        """Features of each transaction as of its event time; one round trip for the batch."""
        p = self._prefix
        op_keys: list[str] = []
        op_args: list[list[Any]] = []
        for tx in batch:
            t, amount, cnp, lat, lon = encode_tx(tx)
            tx_id, term = tx.transaction_id, tx.terminal_id
            op_keys.append(keys.card_base(p, tx.card_id))
            op_args.append(["C", tx_id, t, amount, cnp, lat, lon, terminal_hash(term)])
            if term is not None:
                op_keys.append(keys.terminal_base(p, term))
                op_args.append(["T", tx_id, t])
            op_keys.append(keys.record_key(p, tx_id))
            op_args.append(["X", tx.card_id, term or ""])
        replies = self._run(op_keys, op_args)
        out = []
        k = 0
        for tx in batch:
            card_raw = replies[k]
            card = _CARD.unpack_from(card_raw)
            k += 1
            term_vec: tuple[float, ...] = cat.EMPTY_TERM
            if tx.terminal_id is not None:
                term_raw = replies[k]
                term_vec = _TERM.unpack_from(term_raw)
                k += 1
                if len(term_raw) == _TERM.size and term_vec[0]:
                    self.stats.late_events += 1
            k += 1
            if len(card_raw) > _CARD.size:
                self.stats.replays += 1  # redelivered: the stored first answer came back
            elif card[0]:
                self.stats.late_events += 1
            out.append(cat.derive(card, term_vec, self.names))
        return out

    def apply_labels(self, batch: Sequence[Label]) -> LabelStats:
        """Record verdicts (two round trips: find each transaction, then update its entities)."""
        p = self._prefix
        records = self._get([keys.record_key(p, label.transaction_id) for label in batch])
        op_keys: list[str] = []
        op_args: list[list[Any]] = []
        owners: list[int] = []
        unknown = 0
        for i, (label, rec) in enumerate(zip(batch, records, strict=True)):
            if rec is None:
                unknown += 1
                continue
            card_id, _, term = rec.decode().partition("\n")
            fraud = "1" if label.is_fraud else "0"
            op_keys.append(keys.card_base(p, card_id))
            op_args.append(["c", label.transaction_id, fraud])
            owners.append(i)
            if term:
                op_keys.append(keys.terminal_base(p, term))
                op_args.append(["t", label.transaction_id, fraud])
                owners.append(-1)
        replies = self._run(op_keys, op_args) if op_keys else []
        status = [int(r) for r, owner in zip(replies, owners, strict=True) if owner >= 0]
        return LabelStats(status.count(1), status.count(2), unknown + status.count(0))

    def snapshot(self, transaction_ids: Sequence[str]) -> Mapping[str, dict[str, float]]:
        """The features first returned for each still-recorded transaction id."""
        p = self._prefix
        records = self._get([keys.record_key(p, tx_id) for tx_id in transaction_ids])
        found: list[tuple[str, str]] = []
        marker_keys: list[str] = []
        for tx_id, rec in zip(transaction_ids, records, strict=True):
            if rec is not None:
                card_id, _, term = rec.decode().partition("\n")
                found.append((tx_id, term))
                marker_keys.append(f"{keys.card_base(p, card_id)}:x:{tx_id}")
                if term:
                    marker_keys.append(f"{keys.terminal_base(p, term)}:x:{tx_id}")
        blobs = iter(self._get(marker_keys))
        out: dict[str, dict[str, float]] = {}
        for tx_id, term in found:
            card_raw = next(blobs)
            term_raw = next(blobs) if term else None
            if card_raw is None or (term and term_raw is None):
                continue
            term_vec = _TERM.unpack_from(term_raw) if term_raw else cat.EMPTY_TERM
            out[tx_id] = cat.derive(_CARD.unpack_from(card_raw), term_vec, self.names)
        return out

    def _get(self, key_list: list[str]) -> list[bytes | None]:
        """Plain GETs in one pipeline (one round trip; per node on a cluster)."""
        if not key_list:
            return []
        try:
            pipe = self.client.pipeline(transaction=False)
            for key in key_list:
                pipe.get(key)
            return list(pipe.execute())
        except redis.RedisError as exc:
            raise FeatureStoreError(
                f"redis pipeline of {len(key_list)} GETs failed: {exc}"
            ) from exc

    def _load(self) -> str:
        try:
            if isinstance(self.client, RedisCluster):
                for node in self.client.get_primaries():  # type: ignore[no-untyped-call]
                    sha = node.redis_connection.script_load(self._source)
            else:
                sha = self.client.script_load(self._source)
        except redis.RedisError as exc:
            raise FeatureStoreError(f"loading the feature script failed: {exc}") from exc
        self._sha = str(sha)
        logger.info("feature script loaded sha=%s", self._sha)
        return self._sha

    def _run(self, op_keys: list[str], op_args: list[list[Any]]) -> list[Any]:
        """Run operations through the script; reload it once if the server lost it."""
        sha = self._sha or self._load()
        for attempt in (0, 1):
            try:
                if not self._cluster:
                    argv = [*self._argv_head, *(a for args in op_args for a in args)]
                    return list(self.client.evalsha(sha, len(op_keys), *op_keys, *argv))
                return self._run_cluster(sha, op_keys, op_args)
            except redis.exceptions.NoScriptError:
                # a restarted or flushed server: reload and resend; every op is idempotent
                if attempt:
                    raise
                sha = self._load()
            except redis.RedisError as exc:
                raise FeatureStoreError(
                    f"feature script failed on a batch of {len(op_keys)} operations: {exc}"
                ) from exc
        raise AssertionError("unreachable")

    def _run_cluster(self, sha: str, op_keys: list[str], op_args: list[list[Any]]) -> list[Any]:
        """One EVALSHA per slot, one pipeline per node: a round trip per node.

        redis-py's cluster pipeline refuses scripts, so each node's own client pipelines them;
        operations keep their batch order within a slot, and slots share no state.
        """
        client = self.client
        assert isinstance(client, RedisCluster)
        by_node: dict[str, tuple[redis.Redis, list[list[int]]]] = {}
        groups: dict[int, list[int]] = {}
        for i, key in enumerate(op_keys):
            groups.setdefault(key_slot(key.encode()), []).append(i)
        for slot, idx in groups.items():
            node = client.nodes_manager.get_node_from_slot(slot)
            by_node.setdefault(node.name, (node.redis_connection, []))[1].append(idx)
        out: list[Any] = [None] * len(op_keys)
        for conn, node_groups in by_node.values():
            pipe = conn.pipeline(transaction=False)
            for idx in node_groups:
                argv = [*self._argv_head, *(a for i in idx for a in op_args[i])]
                pipe.evalsha(sha, len(idx), *(op_keys[i] for i in idx), *argv)
            for idx, replies in zip(node_groups, pipe.execute(), strict=True):
                for i, reply in zip(idx, replies, strict=True):
                    out[i] = reply
        return out
