"""The in-memory feature store: a plain-Python peer of the Redis store, used as test oracle.

It computes the same catalogue from the same :class:`~fraudstream.features.window.CumLog`
rules, independently of the Lua engine; property tests feed both the same streams.
Nothing expires here (no wall clock): use it for tests and offline replays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from fraudstream.events import Label, Transaction
from fraudstream.features import catalogue as cat
from fraudstream.features.base import (
    FeatureStats,
    LabelStats,
    encode_tx,
    same_event,
    terminal_float,
)
from fraudstream.features.config import DAY_MS, HOUR_MS, MINUTE_MS, FeatureConfig
from fraudstream.features.window import CumLog, unit_vector

__all__ = ["MemoryFeatureStore"]

# Card cum fields: count, amount, amount^2, cnp, located count, unit-vector x, y, z.
N, A, A2, CNP, LOCN, X, Y, Z = range(8)


@dataclass(slots=True)
class _Entity:
    log: CumLog
    frauds: CumLog = field(default_factory=lambda: CumLog(1, 0))
    markers: dict[str, tuple[tuple[float, ...], bool]] = field(default_factory=dict)


class MemoryFeatureStore:
    """Same public API and results as :class:`~fraudstream.features.RedisFeatureStore`."""

    def __init__(self, config: FeatureConfig | None = None) -> None:
        self.config = config or FeatureConfig()
        self.names = cat.feature_names(self.config)
        self.stats = FeatureStats()
        self._cards: dict[str, _Entity] = {}
        self._terms: dict[str, _Entity] = {}
        self._records: dict[str, tuple[str, str | None]] = {}
        self.conflicts: list[int] = []

    def features_for(self, batch: Sequence[Transaction]) -> list[dict[str, float]]:
        """Features of each transaction as of its event time; see the Protocol."""
        out = []
        self.conflicts = []
        for i, tx in enumerate(batch):
            self._records.setdefault(tx.transaction_id, (tx.card_id, tx.terminal_id))
            replays = self.stats.replays
            card = self._card(tx)
            if self.stats.replays != replays and not same_event(tx, card):
                self.stats.conflicts += 1
                self.conflicts.append(i)
            term = self._terminal(tx) if tx.terminal_id is not None else cat.EMPTY_TERM
            out.append(cat.derive(card, term, self.names))
        return out

    def apply_labels(self, batch: Sequence[Label]) -> LabelStats:
        """Record verdicts: the first label of a transaction wins, others are duplicates."""
        applied = duplicates = unknown = 0
        for label in batch:
            record = self._records.get(label.transaction_id)
            if record is None:
                unknown += 1
                continue
            status = self._label(self._cards.get(record[0]), label)
            if record[1] is not None:
                self._label(self._terms.get(record[1]), label)
            applied += status == 1
            duplicates += status == 2
            unknown += status == 0
        return LabelStats(applied, duplicates, unknown)

    def snapshot(self, transaction_ids: Sequence[str]) -> Mapping[str, dict[str, float]]:
        """The features first returned for each recorded transaction id."""
        return {k: v[0] for k, v in self.snapshots(transaction_ids).items()}

    def snapshots(self, transaction_ids: Sequence[str]) -> dict[str, tuple[dict[str, float], int]]:
        """:meth:`snapshot` with each transaction's event time (ms)."""
        out: dict[str, tuple[dict[str, float], int]] = {}
        for tx_id in transaction_ids:
            record = self._records.get(tx_id)
            if record is None:
                continue
            card = self._cards[record[0]].markers[tx_id][0]
            term: tuple[float, ...] = cat.EMPTY_TERM
            if record[1] is not None:
                term = self._terms[record[1]].markers[tx_id][0]
            out[tx_id] = cat.derive(card, term, self.names), int(card[cat.C_T])
        return out

    def _card(self, tx: Transaction) -> tuple[float, ...]:
        cfg = self.config
        ent = self._cards.setdefault(tx.card_id, _Entity(CumLog(8, 3)))
        seen = ent.markers.get(tx.transaction_id)
        if seen is not None:
            self.stats.replays += 1
            return seen[0]
        t, amount, cnp, lat, lon = encode_tx(tx)
        term = terminal_float(tx.terminal_id)
        log = ent.log
        late = bool(log.times) and t < log.times[-1] - cfg.allowed_lateness_ms
        i_t = log.find(t)
        c_t = log.cum_at(i_t)
        c10m, c1h = log.cum_at(log.find(t - 10 * MINUTE_MS)), log.cum_at(log.find(t - HOUR_MS))
        i_1d = log.find(t - DAY_MS)
        c1d, c7d = log.cum_at(i_1d), log.cum_at(log.find(t - 7 * DAY_MS))
        i_30d = log.find(t - 30 * DAY_MS)
        c30d = log.cum_at(i_30d)
        delay = cfg.label_delay_ms
        ndel = log.window(t - delay - 30 * DAY_MS, t - delay)[N]
        fdel = ent.frauds.window(t - delay - 30 * DAY_MS, t - delay)[0]
        terms = {log.owns[i][2] for i in range(i_1d, i_t)} | {term}
        terms.discard(0.0)
        # first use: a logged (not late, not folded away) event of this card in (t-30d, t]
        seen30 = term != 0.0 and any(log.owns[i][2] == term for i in range(i_30d, i_t))
        prev = log.owns[i_t - 1] if i_t > 0 else (cat.NO_LOCATION, 0.0, 0.0)
        # fmt: off
        blob = (  # order: catalogue C_* offsets
            float(late), t, amount, lat, lon, term,
            c_t[A] - c1d[A], c_t[A] - c7d[A], c_t[A] - c30d[A], c_t[A2] - c30d[A2],
            log.times[i_t - 1] if i_t > 0 else -1.0, prev[0], prev[1],
            c_t[X] - c30d[X], c_t[Y] - c30d[Y], c_t[Z] - c30d[Z], cnp,
            c_t[N] - c10m[N], c_t[N] - c1h[N], c_t[N] - c1d[N], c_t[N] - c7d[N],
            c_t[N] - c30d[N], c_t[CNP] - c7d[CNP], float(len(terms)), float(seen30),
            c_t[LOCN] - c30d[LOCN], ndel, fdel,
        )
        # fmt: on
        if late:
            self.stats.late_events += 1
        else:
            has_loc = lat != cat.NO_LOCATION
            x, y, z = unit_vector(lat, lon) if has_loc else (0.0, 0.0, 0.0)
            delta = (1.0, amount, amount * amount, cnp, float(has_loc), x, y, z)
            log.insert(t, delta, (lat, lon, term))
            log.prune(cfg.horizon_ms)
            log.fold(cfg.exact_cap, cfg.coarse_max, cfg.fold_bucket_ms)
        ent.markers[tx.transaction_id] = (blob, False)
        return blob

    def _terminal(self, tx: Transaction) -> tuple[float, ...]:
        cfg = self.config
        assert tx.terminal_id is not None
        ent = self._terms.setdefault(tx.terminal_id, _Entity(CumLog(1, 0)))
        seen = ent.markers.get(tx.transaction_id)
        if seen is not None:
            return seen[0]
        t = float(tx.timestamp_ms)
        log = ent.log
        late = bool(log.times) and t < log.times[-1] - cfg.allowed_lateness_ms
        hi = t - cfg.label_delay_ms
        blob: tuple[float, ...] = (float(late), t)
        blob += tuple(log.window(hi - w * DAY_MS, hi)[0] for w in (1, 7, 30))
        blob += tuple(ent.frauds.window(hi - w * DAY_MS, hi)[0] for w in (1, 7, 30))
        if late:
            self.stats.late_events += 1
        else:
            log.insert(t, (1.0,), ())
            log.prune(cfg.horizon_ms)
            log.fold(cfg.exact_cap, cfg.coarse_max, cfg.fold_bucket_ms)
        ent.markers[tx.transaction_id] = (blob, False)
        return blob

    def _label(self, ent: _Entity | None, label: Label) -> int:
        """0 unknown, 1 applied, 2 duplicate; a fraud enters the entity's fraud log."""
        marker = None if ent is None else ent.markers.get(label.transaction_id)
        if ent is None or marker is None:
            return 0
        blob, labelled = marker
        if labelled:
            return 2
        ent.markers[label.transaction_id] = (blob, True)
        if label.is_fraud and blob[0] == 0.0:
            cfg = self.config
            ent.frauds.insert(blob[1], (1.0,), ())
            ent.frauds.prune(cfg.horizon_ms)
            ent.frauds.fold(cfg.exact_cap, cfg.coarse_max, cfg.fold_bucket_ms)
        return 1
