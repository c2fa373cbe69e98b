"""Compute the production features of the handbook dataset once, as the live detector would.

Every transaction goes through the in-memory feature store (the Redis store's peer) in event-time
order. Each label is released ``label_delay`` after its transaction and applied as soon as the
transaction stream's event time reaches that label time (the watermark), before the next
transaction is scored: exactly what the detector sees live with a 7-day chargeback delay.

The result is cached as a compressed ``.npz`` (feature matrix, names, times, cards, labels) so that
model experiments replay in seconds. Run ``python -m bench.quality.replay --out FILE.npz``.
"""

from __future__ import annotations

import argparse
import time
from collections import deque
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from fraudstream.events import Label, Transaction
from fraudstream.features.config import DAY_MS, FeatureConfig
from fraudstream.features.memory import MemoryFeatureStore
from fraudstream.simulator import SimulatorConfig, simulate

__all__ = ["load_features", "replay_features"]


def replay_features(
    label_delay_ms: int = 7 * DAY_MS, limit: int | None = None
) -> dict[str, NDArray[np.generic]]:
    """Simulate the handbook dataset and compute each transaction's features as scored live.

    Args:
        label_delay_ms: Delay between a transaction and its label (event time).
        limit: Only the first ``limit`` transactions (quick experiments).

    Returns:
        Arrays ``X`` (float64, one row per transaction), ``names``, ``timestamp_ms``, ``card``,
        ``terminal``, ``is_fraud`` and ``start_ms`` (midnight of day 0).
    """
    ds = simulate(SimulatorConfig())
    n = len(ds) if limit is None else min(limit, len(ds))
    store = MemoryFeatureStore(FeatureConfig(label_delay_ms=label_delay_ms))
    ts = ds.timestamp_ms[:n]
    cards, terms, amounts = ds.customer[:n], ds.terminal[:n], ds.amount[:n]
    frauds = ds.is_fraud[:n]
    out = np.empty((n, len(store.names)), dtype=np.float64)
    pending: deque[int] = deque()  # transactions whose label is not yet released, time order
    started = time.perf_counter()
    for i in range(n):
        t = int(ts[i])
        # Watermark: labels whose label time has been reached act before this transaction.
        released = []
        while pending and int(ts[pending[0]]) + label_delay_ms <= t:
            j = pending.popleft()
            released.append(
                Label(str(j), bool(frauds[j]), label_time_ms=int(ts[j]) + label_delay_ms)
            )
        if released:
            store.apply_labels(released)
        tx = Transaction(str(i), str(int(cards[i])), float(amounts[i]), t, str(int(terms[i])))
        row = store.features_for([tx])[0]
        out[i] = list(row.values())
        pending.append(i)
        if i % 200_000 == 0 and i:
            print(f"{i} transactions, {time.perf_counter() - started:.0f} s", flush=True)
    return {
        "X": out,
        "names": np.array(store.names),
        "timestamp_ms": ts.copy(),
        "card": cards.copy(),
        "terminal": terms.copy(),
        "is_fraud": frauds.copy(),
        "start_ms": np.array(int(ds.start.timestamp()) * 1000),
    }


def load_features(path: str | Path) -> dict[str, NDArray[np.generic]]:
    """Load a cache written by :func:`main`."""
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def main(argv: list[str] | None = None) -> int:
    """Command line: write the feature cache."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", required=True, help="the .npz file to write")
    parser.add_argument("--limit", type=int, default=None, help="first N transactions only")
    parser.add_argument("--label-delay-days", type=float, default=7.0)
    args = parser.parse_args(argv)
    arrays = replay_features(int(args.label_delay_days * DAY_MS), args.limit)
    np.savez_compressed(args.out, **arrays)  # type: ignore[arg-type]
    print(f"wrote {args.out}: {arrays['X'].shape[0]} rows, {arrays['X'].shape[1]} features")

    return 0


if __name__ == "__main__":
    raise SystemExit(main())
