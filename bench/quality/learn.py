"""Replay cached features through the production model path and score the handbook protocol.

Each transaction is scored by :class:`~fraudstream.model.online.FraudModel`, its vector kept in
a :class:`~fraudstream.model.snapshots.MemorySnapshotStore`; its label is released
``label_delay`` later in event time and learned by
:class:`~fraudstream.model.labels.DelayedLearner` once the watermark reaches it. Then the
handbook protocol is computed on the scores.

``--weeks validation`` evaluates four weeks of July 2018 (the only ones used for tuning) and
stops the replay at 2018-08-01; ``--weeks test`` evaluates the book's four test weeks.

    python -m bench.quality.learn --features FEATURES.npz --model gam --weeks validation
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path

import numpy as np
import orjson
from numpy.typing import NDArray

from bench.quality.replay import load_features
from fraudstream.events import Label
from fraudstream.model.evaluation import HANDBOOK_TEST_WEEKS, ProtocolResult, evaluate_handbook
from fraudstream.model.labels import DelayedLearner
from fraudstream.model.online import FraudModel
from fraudstream.model.snapshots import MemorySnapshotStore

__all__ = ["VALIDATION_WEEKS", "replay_model"]

DAY_MS = 86_400_000
VALIDATION_WEEKS = tuple(dt.date(2018, 7, d) for d in (4, 11, 18, 25))
_VALIDATION_END = dt.datetime(2018, 8, 1, tzinfo=dt.UTC)
# Published rows (handbook chapter tables), mean over the four test weeks: AUC, AP, CP@100.
PUBLISHED = {
    "Decision tree": (0.797, 0.579, 0.284),
    "Logistic regression": (0.868, 0.623, 0.297),
    "Random forest": (0.870, 0.678, 0.299),
    "XGBoost": (0.869, 0.687, 0.303),
    "Feed-forward NN": (0.876, 0.675, 0.303),
    "LSTM with attention": (0.874, 0.667, 0.295),
    "Balanced bagging": (0.879, 0.680, 0.305),
}


def replay_model(
    data: dict[str, NDArray[np.generic]],
    model: FraudModel,
    end_ms: int | None = None,
    label_delay_ms: int = 7 * DAY_MS,
    features: list[str] | None = None,
) -> NDArray[np.float64]:
    """Score every transaction before ``end_ms``, learning each label ``label_delay_ms`` later."""
    ts = data["timestamp_ms"]
    n = len(ts) if end_ms is None else int(np.searchsorted(ts, end_ms))
    names = [str(x) for x in data["names"]]
    cols = [names.index(f) for f in features] if features else list(range(len(names)))
    keys = [names[c] for c in cols]
    rows = data["X"][:n, cols].tolist()
    times, frauds = ts[:n].tolist(), data["is_fraud"][:n].tolist()
    learner = DelayedLearner(MemorySnapshotStore(), snapshot_ttl_ms=label_delay_ms + DAY_MS)
    scores = np.empty(n)
    for i in range(n):
        t = times[i]
        learner.advance(t, model)  # labels due by this event time act before it is scored
        x = dict(zip(keys, rows[i], strict=True))
        scores[i] = model.predict_proba_one(x)
        tx_id = str(i)
        learner.remember(tx_id, x, t, float(scores[i]))
        # The chargeback: known label_delay after the transaction, in event time.
        learner.add_labels([Label(tx_id, bool(frauds[i]), label_time_ms=t + label_delay_ms)])
    return scores


def format_table(result: ProtocolResult, label: str) -> str:
    """Our row beside the published rows (markdown)."""
    lines = ["| model | AUC ROC | AP | CP@100 |", "|---|---|---|---|"]
    lines += [f"| {k} | {a:.3f} | {p:.3f} | {c:.3f} |" for k, (a, p, c) in PUBLISHED.items()]
    m, s = result.mean, result.std
    lines.append(
        f"| **{label}** | {m['auc_roc']:.3f} ± {s['auc_roc']:.3f} | "
        f"{m['average_precision']:.3f} ± {s['average_precision']:.3f} | "
        f"{m['card_precision_top_k']:.3f} ± {s['card_precision_top_k']:.3f} |"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: replay, evaluate, print the table, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--features", required=True, help="cache from bench.quality.replay")
    parser.add_argument("--model", default="gam")
    parser.add_argument("--negative-rate", type=float, default=0.1)
    parser.add_argument("--weeks", choices=["validation", "test"], default="validation")
    parser.add_argument("--out", type=Path, default=None, help="result JSON")
    parser.add_argument("--scores-out", type=Path, default=None, help="scores .npy")
    args = parser.parse_args(argv)
    data = load_features(args.features)
    validation = args.weeks == "validation"
    end_ms = int(_VALIDATION_END.timestamp() * 1000) if validation else None
    weeks = VALIDATION_WEEKS if validation else HANDBOOK_TEST_WEEKS
    model = FraudModel(args.model, negative_rate=args.negative_rate)
    started = time.perf_counter()
    scores = replay_model(data, model, end_ms)
    elapsed = time.perf_counter() - started
    n = len(scores)
    result = evaluate_handbook(
        data["timestamp_ms"][:n], data["card"][:n], data["is_fraud"][:n], scores, weeks
    )
    label = f"{args.model} (online, 7-day delay, {args.weeks} weeks)"
    print(format_table(result, label))
    print(f"{n} transactions in {elapsed:.0f} s; version {model.version}")
    if args.scores_out is not None:
        np.save(args.scores_out, scores)
    if args.out is not None:
        payload = {
            "model": args.model,
            "negative_rate": args.negative_rate,
            "weeks": args.weeks,
            "mean": result.mean,
            "std": result.std,
            "per_week": [
                {
                    "test_start": w.test_start.isoformat(),
                    "auc_roc": w.auc_roc,
                    "average_precision": w.average_precision,
                    "card_precision_top_k": w.card_precision_top_k,
                    "frauds": w.frauds,
                    "transactions": w.transactions,
                }
                for w in result.weeks
            ],
        }
        args.out.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2))

    return 0


if __name__ == "__main__":
    raise SystemExit(main())
