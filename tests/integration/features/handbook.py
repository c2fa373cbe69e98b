"""The book's 15 features computed offline with numpy, and the online replay to compare with."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.typing import NDArray

from fraudstream.events import Label, Transaction
from fraudstream.features import FeatureStore
from fraudstream.simulator.dataset import SimulatedDataset

DAY_S = 86_400
DELAY_S = 7 * DAY_S
BOOK_COLUMNS = ["amount", "is_weekend", "is_night"] + [
    name
    for n in ("1d", "7d", "30d")
    for name in (f"tx_count_{n}_by_card", f"amount_mean_{n}_by_card")
] + [
    name
    for n in ("1d", "7d", "30d")
    for name in (f"tx_count_{n}_by_terminal_delayed_7d", f"risk_{n}_by_terminal_delayed_7d")
]  # fmt: skip


def offline_features(ds: SimulatedDataset) -> dict[str, NDArray[np.float64]]:
    """The book's definitions on the raw columns (rows in time order, ties in row order)."""
    t, amount = ds.seconds, ds.amount
    n = len(t)
    out: dict[str, NDArray[np.float64]] = {"amount": amount.astype(np.float64)}
    stamp = ds.timestamp_ms // 1000
    out["is_weekend"] = (((stamp // DAY_S) + 3) % 7 >= 5).astype(np.float64)
    out["is_night"] = ((stamp % DAY_S) // 3600 <= 6).astype(np.float64)
    for days in (1, 7, 30):
        out[f"tx_count_{days}d_by_card"] = np.zeros(n)
        out[f"amount_mean_{days}d_by_card"] = np.zeros(n)
        out[f"tx_count_{days}d_by_terminal_delayed_7d"] = np.zeros(n)
        out[f"risk_{days}d_by_terminal_delayed_7d"] = np.zeros(n)
    for rows in _groups(ds.customer):
        ts, cs = t[rows], np.concatenate([[0.0], np.cumsum(amount[rows])])
        k = np.arange(len(rows))
        for days in (1, 7, 30):
            lo = np.searchsorted(ts, ts - days * DAY_S, side="right")
            count = k - lo + 1
            out[f"tx_count_{days}d_by_card"][rows] = count
            out[f"amount_mean_{days}d_by_card"][rows] = (cs[k + 1] - cs[lo]) / count
    for rows in _groups(ds.terminal):
        ts = t[rows]
        fr = np.concatenate([[0], np.cumsum(ds.is_fraud[rows])])
        hi = np.searchsorted(ts, ts - DELAY_S, side="right")
        for days in (1, 7, 30):
            lo = np.searchsorted(ts, ts - DELAY_S - days * DAY_S, side="right")
            count = hi - lo
            frauds = fr[hi] - fr[lo]
            out[f"tx_count_{days}d_by_terminal_delayed_7d"][rows] = count
            out[f"risk_{days}d_by_terminal_delayed_7d"][rows] = np.where(
                count > 0, frauds / np.maximum(count, 1), 0.0
            )
    return out


def _groups(ids: NDArray[np.int64]) -> Iterator[NDArray[np.intp]]:
    order = np.argsort(ids, kind="stable")  # stable: rows of one id stay in time order
    bounds = np.flatnonzero(np.diff(ids[order])) + 1
    yield from np.split(order, bounds)


def online_features(
    store: FeatureStore, ds: SimulatedDataset, batch_size: int = 100
) -> dict[str, NDArray[np.float64]]:
    """Stream the dataset through ``store``; each label arrives 7 days after its transaction.

    Before each batch, every label due by the batch's last event time is applied. Applying a
    label early never changes a score here: the risk windows end 7 days before each event.
    """
    n = len(ds)
    cols = {name: np.empty(n) for name in BOOK_COLUMNS}
    stamp = ds.timestamp_ms
    txs = [
        Transaction(str(i), str(c), round(float(a), 2), int(s), str(term))
        for i, c, a, s, term in zip(
            ds.transaction_id, ds.customer, ds.amount, stamp, ds.terminal, strict=True
        )
    ]
    due = stamp + DELAY_S * 1000
    labelled = 0
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        upto = int(np.searchsorted(due, stamp[stop - 1], side="right"))
        if upto > labelled:
            store.apply_labels([Label(str(i), bool(ds.is_fraud[i])) for i in range(labelled, upto)])
            labelled = upto
        for j, features in enumerate(store.features_for(txs[start:stop]), start):
            for name in BOOK_COLUMNS:
                cols[name][j] = features[name]
    return cols


def match_rate(a: dict[str, NDArray[np.float64]], b: dict[str, NDArray[np.float64]]) -> float:
    """Share of rows whose 15 columns all agree within 1e-6."""
    ok = np.ones(len(a["amount"]), dtype=bool)
    for name in BOOK_COLUMNS:
        ok &= np.abs(a[name] - b[name]) <= 1e-6
    return float(ok.mean())
