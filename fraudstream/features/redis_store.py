"""The Redis feature store: one server-side script call per batch (one per slot on a cluster).

Single Redis: each transaction is one ``A`` operation over its record, card and terminal keys;
the record (one key per transaction) holds both markers and is the replay check. A large batch
goes as three script calls pipelined on one connection (still one round trip), so that Python's
encoding and decoding overlap Redis' work. Redis Cluster:
each transaction becomes card (``C``), terminal (``T``) and record (``X``) operations, one slot
each, made idempotent by per-entity markers; operations are grouped by slot, one ``EVALSHA``
per slot, one pipeline (round trip) per node. Both run the same script (``engine.lua``).

Hot path: an operation's arguments are one packed string, and the reply is one string of
fixed-size parts decoded with precompiled ``struct`` formats: no per-field argv or reply parsing.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Mapping, Sequence
from importlib import resources

import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from fraudstream.errors import FeatureStoreError
from fraudstream.events import Label, Transaction
from fraudstream.features import catalogue as cat
from fraudstream.features import keys
from fraudstream.features.base import (
    FeatureStats,
    LabelStats,
    encode_tx,
    same_event,
    terminal_float,
)
from fraudstream.features.config import FeatureConfig

__all__ = ["RedisFeatureStore"]

logger = logging.getLogger(__name__)
# The markers as engine.lua packs them (MARK_C, MARK_T): flags, doubles, then integer counts.
_CARD = struct.Struct("<B15dB11I")
_TERM = struct.Struct("<Bd6I")
# 'C' (or 'A'), t, amount, cnp, lat, lon, terminal hash; then the tx id (or the ids)
_CARD_OP = struct.Struct("<c6d")
_TERM_OP = struct.Struct("<cd")  # 'T', t; then tx id
_CARD_REPLY, _TERM_REPLY = 1 + _CARD.size, 1 + _TERM.size  # a status byte, then the marker
# Reply bytes per cluster opcode (C, T, X, c, t): a marker reply, nothing, or a status byte.
_REPLY_SIZE = {67: _CARD_REPLY, 84: _TERM_REPLY, 88: 0, 99: 1, 116: 1}
Client = redis.Redis | RedisCluster
# Single Redis: a batch of at least _SPLIT_MIN transactions goes as three pipelined script
# calls (see _chunk_sizes).
_SPLIT_MIN = 12


class RedisFeatureStore:
    """Rolling aggregates in Redis; same results as the in-memory oracle.

    Args:
        client: A ``redis.Redis`` (hiredis installed) or ``redis.cluster.RedisCluster``.
        config: Windows, lateness, caps and TTLs.
        busy_poll_us: Single Redis: poll the socket for a script's reply for up to this long
            before blocking on it (0: block at once). Saves the blocked thread's wake-up delay
            and spends a core while waiting. The poll comes before the client's socket timeout
            starts, so keep it well below that (settings enforce it).
    """

    def __init__(self, client: Client, config: FeatureConfig | None = None, *,
                 busy_poll_us: int = 0) -> None:  # fmt: skip
        self.client = client
        self._poll_s = busy_poll_us / 1e6
        self.config = cfg = config or FeatureConfig()
        self.names = cat.feature_names(cfg)
        self.stats = FeatureStats()
        self.conflicts: list[int] = []  # positions of id conflicts in the last batch
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
                 password: str | None = None,
                 busy_poll_us: int = 0) -> RedisFeatureStore:  # fmt: skip
        """Connect to ``url`` (a single Redis, or any node of a cluster with ``cluster``)."""
        client: Client
        if cluster:
            client = RedisCluster.from_url(url, password=password)
        else:
            client = redis.Redis.from_url(url, password=password)
        return cls(client, config, busy_poll_us=busy_poll_us)

    def features_for(self, batch: Sequence[Transaction]) -> list[dict[str, float]]:
        """Features of each transaction as of its event time; one round trip for the batch."""
        out: list[dict[str, float]] = []
        self.conflicts = []
        if not self._cluster:
            self._overlapped(batch, out)
            return out
        op_keys: list[str] = []
        op_args: list[bytes] = []
        self._cluster_ops(batch, op_keys, op_args)
        self._decode(batch, self._run(op_keys, op_args), out)
        return out

    def _overlapped(self, batch: Sequence[Transaction], out: list[dict[str, float]]) -> None:
        """Single Redis: the batch as a few script calls pipelined on one connection.

        Still one round trip, but Python encodes chunk k+1 while Redis runs chunk k, and
        decodes chunk k while Redis runs chunk k+1, so client and server work overlap (see
        :func:`_chunk_sizes`). The chunks run in batch order on one connection: the same state
        changes as one call.
        """
        n = len(batch)
        if n == 0:
            return
        chunks, at = [], 0
        for size in _chunk_sizes(n):
            chunks.append(batch[at : at + size])
            at += size
        sha = self._sha or self._load()
        assert isinstance(self.client, redis.Redis)
        pool = self.client.connection_pool
        conn = None
        done = 0  # chunks decoded
        try:
            conn = pool.get_connection()
            sent: list[Sequence[Transaction]] = []
            for chunk in chunks:
                op_keys: list[str] = []
                op_args: list[bytes] = []
                self._record_ops(chunk, op_keys, op_args)
                args = (sha, len(op_keys), *op_keys, *self._argv_head, *op_args)
                conn.send_command("EVALSHA", *args)  # type: ignore[no-untyped-call]
                sent.append(chunk)
                if len(sent) - done > 1:  # Redis runs this chunk: decode the previous one
                    self._decode(sent[done], self._reply(conn), out)
                    done += 1
            while done < len(sent):
                self._decode(sent[done], self._reply(conn), out)
                done += 1
        except (redis.exceptions.NoScriptError, redis.ConnectionError, redis.TimeoutError) as exc:
            # A restarted or flushed server, or a broken connection: the connection may hold
            # replies of later chunks, so drop it and rerun the undecoded chunks through the
            # client (which reloads the script and retries). Every operation is idempotent: a
            # chunk that did run returns its stored first answers (counted as replays).
            if conn is not None:
                conn.disconnect()  # type: ignore[no-untyped-call]
            if isinstance(exc, redis.exceptions.NoScriptError):
                self._sha = None
            for chunk in chunks[done:]:
                op_keys, op_args = [], []
                self._record_ops(chunk, op_keys, op_args)
                self._decode(chunk, self._run(op_keys, op_args), out)
        except redis.RedisError as exc:
            if conn is not None:
                conn.disconnect()  # type: ignore[no-untyped-call]
            raise FeatureStoreError(
                f"feature script failed on a batch of {n} transactions: {exc}"
            ) from exc
        finally:
            if conn is not None:
                pool.release(conn)

    def _reply(self, conn: redis.connection.AbstractConnection) -> bytes:
        """The next script reply on ``conn``; with busy polling, spin until it is readable (or
        the poll time is up), then read it."""
        if self._poll_s:
            until = time.perf_counter() + self._poll_s
            while not conn.can_read(0) and time.perf_counter() < until:
                pass
        reply: bytes = conn.read_response(disable_decoding=True)
        return reply

    def _decode(self, batch: Sequence[Transaction], reply: bytes,
                out: list[dict[str, float]]) -> None:  # fmt: skip
        """Per transaction: status (1 = replay) + card marker, then status + terminal marker."""
        stats, names, derive = self.stats, self.names, cat.derive
        card_at, term_at = _CARD.unpack_from, _TERM.unpack_from
        k = 0
        base = len(out)  # a batch may be decoded in chunks: positions are batch positions
        for i, tx in enumerate(batch):
            card_replay = reply[k]
            card = card_at(reply, k + 1)
            k += _CARD_REPLY
            term_vec: tuple[float, ...] = cat.EMPTY_TERM
            if tx.terminal_id is not None:
                term_vec = term_at(reply, k + 1)
                if not reply[k] and term_vec[0]:
                    stats.late_events += 1
                k += _TERM_REPLY
            if card_replay:
                stats.replays += 1  # redelivered: the stored first answer came back
                if not same_event(tx, card):  # another transaction reusing the id
                    stats.conflicts += 1
                    self.conflicts.append(base + i)
            elif card[0]:
                stats.late_events += 1
            out.append(derive(card, term_vec, names))

    def _record_ops(self, batch: Sequence[Transaction], op_keys: list[str],
                    op_args: list[bytes]) -> None:  # fmt: skip
        """Single Redis: one ``A`` operation per transaction over its record, card, terminal."""
        p = self._prefix
        add_key, add_arg, head = op_keys.append, op_args.append, _CARD_OP.pack
        record_key, card_base, terminal_base = keys.record_key, keys.card_base, keys.terminal_base
        for tx in batch:
            t, amount, cnp, lat, lon = encode_tx(tx)
            term = tx.terminal_id
            add_key(record_key(p, tx.transaction_id))
            add_key(card_base(p, tx.card_id))
            if term is not None:
                add_key(terminal_base(p, term))
            ids = f"{tx.card_id}\n{term or ''}".encode()
            add_arg(head(b"A", t, amount, cnp, lat, lon, terminal_float(term)) + ids)

    def _cluster_ops(self, batch: Sequence[Transaction], op_keys: list[str],
                     op_args: list[bytes]) -> None:  # fmt: skip
        """Redis Cluster: card (C), terminal (T) and record (X) operations, one slot each."""
        p = self._prefix
        for tx in batch:
            t, amount, cnp, lat, lon = encode_tx(tx)
            tx_id, term = tx.transaction_id.encode(), tx.terminal_id
            head = _CARD_OP.pack(b"C", t, amount, cnp, lat, lon, terminal_float(term))
            op_keys.append(keys.card_base(p, tx.card_id))
            op_args.append(head + tx_id)
            if term is not None:
                op_keys.append(keys.terminal_base(p, term))
                op_args.append(_TERM_OP.pack(b"T", t) + tx_id)
            op_keys.append(keys.record_key(p, tx.transaction_id))
            op_args.append(f"X{tx.card_id}\n{term or ''}".encode())

    def apply_labels(self, batch: Sequence[Label]) -> LabelStats:
        """Record verdicts (two round trips: find each transaction, then update its entities)."""
        p = self._prefix
        records = self._get([keys.record_key(p, label.transaction_id) for label in batch])
        op_keys: list[str] = []
        op_args: list[bytes] = []
        owners: list[bool] = []  # which replies count (one per label)
        unknown = 0
        for label, rec in zip(batch, records, strict=True):
            if rec is None:
                unknown += 1
                continue
            card_id, term = _ids(rec, self._cluster)
            fraud = b"1" if label.is_fraud else b"0"
            if not self._cluster:
                op_keys += [keys.record_key(p, label.transaction_id), keys.card_base(p, card_id)]
                if term:
                    op_keys.append(keys.terminal_base(p, term))
                op_args.append(b"l" + fraud + (b"\x01" if term else b"\x00"))
                owners.append(True)
                continue
            tail = fraud + label.transaction_id.encode()
            op_keys.append(keys.card_base(p, card_id))
            op_args.append(b"c" + tail)
            owners.append(True)
            if term:
                op_keys.append(keys.terminal_base(p, term))
                op_args.append(b"t" + tail)
                owners.append(False)
        reply = self._run(op_keys, op_args) if op_keys else b""
        status = [s for s, card in zip(reply, owners, strict=True) if card]
        return LabelStats(status.count(1), status.count(2), unknown + status.count(0))

    def snapshot(self, transaction_ids: Sequence[str]) -> Mapping[str, dict[str, float]]:
        """The features first returned for each still-recorded transaction id."""
        return {k: v[0] for k, v in self.snapshots(transaction_ids).items()}

    def snapshots(self, transaction_ids: Sequence[str]) -> dict[str, tuple[dict[str, float], int]]:
        """:meth:`snapshot` with each transaction's event time (ms): what a learner needs."""
        p = self._prefix
        records = self._get([keys.record_key(p, tx_id) for tx_id in transaction_ids])
        out: dict[str, tuple[dict[str, float], int]] = {}
        if not self._cluster:  # the record holds both markers
            for tx_id, rec in zip(transaction_ids, records, strict=True):
                if rec is not None:
                    at = 2 + int.from_bytes(rec[:2], "little")
                    term_vec = cat.EMPTY_TERM
                    if len(rec) > at + _CARD.size:
                        term_vec = _TERM.unpack_from(rec, at + _CARD.size)
                    card = _CARD.unpack_from(rec, at)
                    out[tx_id] = cat.derive(card, term_vec, self.names), int(card[cat.C_T])
            return out
        found: list[tuple[str, str]] = []
        marker_keys: list[str] = []
        for tx_id, rec in zip(transaction_ids, records, strict=True):
            if rec is not None:
                card_id, term = _ids(rec, True)
                found.append((tx_id, term))
                marker_keys.append(keys.marker_key(keys.card_base(p, card_id), tx_id))
                if term:
                    marker_keys.append(keys.marker_key(keys.terminal_base(p, term), tx_id))
        blobs = iter(self._get(marker_keys))
        for tx_id, term in found:
            card_raw = next(blobs)
            term_raw = next(blobs) if term else None
            if card_raw is None or (term and term_raw is None):
                continue
            term_vec = _TERM.unpack(term_raw) if term_raw else cat.EMPTY_TERM
            card = _CARD.unpack(card_raw)
            out[tx_id] = cat.derive(card, term_vec, self.names), int(card[cat.C_T])
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

    def _run(self, op_keys: list[str], op_args: list[bytes]) -> bytes:
        """Run operations through the script; reload it once if the server lost it."""
        sha = self._sha or self._load()
        for attempt in (0, 1):
            try:
                if not self._cluster:
                    n = len(op_keys)
                    return bytes(self.client.evalsha(sha, n, *op_keys, *self._argv_head, *op_args))
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

    def _run_cluster(self, sha: str, op_keys: list[str], op_args: list[bytes]) -> bytes:
        """One EVALSHA per slot, one pipeline per node: a round trip per node.

        redis-py's cluster pipeline refuses scripts, so each node's own client pipelines them;
        operations keep their batch order within a slot, and slots share no state. Each reply
        is cut back into per-operation pieces (sizes by opcode) and reassembled in batch order.
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
        out: list[bytes] = [b""] * len(op_keys)
        for conn, node_groups in by_node.values():
            pipe = conn.pipeline(transaction=False)
            for idx in node_groups:
                args = [op_args[i] for i in idx]
                pipe.evalsha(sha, len(idx), *(op_keys[i] for i in idx), *self._argv_head, *args)
            for idx, reply in zip(node_groups, pipe.execute(), strict=True):
                k = 0
                for i in idx:
                    size = _REPLY_SIZE[op_args[i][0]]
                    out[i] = reply[k : k + size]
                    k += size
        return b"".join(out)


def _chunk_sizes(n: int) -> list[int]:
    """How a batch of ``n`` transactions is cut into pipelined script calls (single Redis).

    Small head, large middle, small tail. Only the head's encoding and the tail's decoding
    wait for nothing else: Redis starts on the head while Python encodes the rest, and Python
    decodes the head and then the middle while Redis runs the chunks after them. The tail
    must take Redis longer than the middle takes to decode (about 34 us against 6 us a
    transaction here), hence a sixth. Each further call costs Redis about 25 us (its reads,
    writes and the script's prologue), so batches under ``_SPLIT_MIN`` go as one call.
    Measured against the former cut (one call at 20, two halves at 100), five interleaved
    rounds: batch-20 p50 0.936 -> 0.857 ms, batch-100 throughput 26,551 -> 28,473 tx/s.

    >>> _chunk_sizes(5), _chunk_sizes(20), _chunk_sizes(100), _chunk_sizes(500)
    ([5], [2, 14, 4], [10, 73, 17], [50, 366, 84])
    """
    if n < _SPLIT_MIN:
        return [n] if n > 0 else []
    head, tail = max(2, n // 10), max(3, -(-n // 6))
    return [head, n - head - tail, tail]


def _ids(record: bytes, cluster: bool) -> tuple[str, str]:
    """Card and terminal id ('' if none) from a record (length-prefixed on a single Redis)."""
    if not cluster:
        record = record[2 : 2 + int.from_bytes(record[:2], "little")]
    card_id, _, term = record.decode().partition("\n")
    return card_id, term
