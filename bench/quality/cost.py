"""Per-call cost of each selectable model: predict and learn, median and p99, in microseconds.

Feature vectors are real rows of the handbook stream (from a ``bench.quality.replay`` cache),
or synthetic ones shaped like them when no cache is given. Each model first learns ``warmup``
labelled rows (frauds and a 10 % sample of genuine ones, as in production), then every call of
``measure`` more rows is timed on its own.

    python -m bench.quality.cost --features FEATURES.npz --out COST.json
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from pathlib import Path

import numpy as np
import orjson

from bench.quality.replay import load_features
from fraudstream.model.online import FraudModel
from fraudstream.model.pipelines import MODEL_NAMES

__all__ = ["measure_model"]


def _rows(path: str | None, n: int) -> list[tuple[dict[str, float], bool]]:
    if path is None:
        rng = random.Random(0)
        names = [f"f{i}" for i in range(29)]
        return [
            ({k: rng.lognormvariate(0, 1) for k in names}, rng.random() < 0.1) for _ in range(n)
        ]
    data = load_features(path)
    frauds = data["is_fraud"].astype(bool)
    # Frauds plus genuine rows from the middle of the stream (mature features).
    start = len(frauds) // 3
    pick = np.arange(start, len(frauds))
    keep = frauds[pick] | (np.random.default_rng(0).random(pick.size) < 0.1)
    idx = pick[keep][:n]
    names = [str(x) for x in data["names"]]
    return [(dict(zip(names, data["X"][i].tolist(), strict=True)), bool(frauds[i])) for i in idx]


def _stats(ns: list[int]) -> dict[str, float]:
    arr = np.asarray(ns, dtype=np.float64) / 1000.0
    return {"median_us": float(np.median(arr)), "p99_us": float(np.percentile(arr, 99))}


def measure_model(
    name: str, rows: list[tuple[dict[str, float], bool]], warmup: int, measure: int
) -> dict[str, dict[str, float]]:
    """Time ``predict_proba_one`` and ``learn_one`` of a fresh model, one call at a time."""
    model = FraudModel(name, negative_rate=1.0)  # rows are pre-sampled: learn every one
    for i, (x, y) in enumerate(rows[:warmup]):
        model.learn_one(x, y, str(i))
    timed = rows[warmup : warmup + measure]
    clock = time.perf_counter_ns
    gc.collect()
    gc.disable()  # time the model, not a collector pause (production freezes after warm-up)
    try:
        predict, learn = [], []
        for i, (x, y) in enumerate(timed):
            t0 = clock()
            model.predict_proba_one(x)
            t1 = clock()
            model.learn_one(x, y, f"m{i}")
            t2 = clock()
            predict.append(t1 - t0)
            learn.append(t2 - t1)
    finally:
        gc.enable()
    return {"predict": _stats(predict), "learn": _stats(learn)}


def main(argv: list[str] | None = None) -> int:
    """Command line: measure every model, print a markdown table, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--features", default=None, help="cache from bench.quality.replay")
    parser.add_argument("--models", nargs="*", default=list(MODEL_NAMES))
    parser.add_argument("--warmup", type=int, default=25_000)
    parser.add_argument("--measure", type=int, default=5_000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    rows = _rows(args.features, args.warmup + args.measure)
    table = {}
    print(f"{len(rows[0][0])} features; warmup {args.warmup}, {args.measure} timed calls")
    print("| model | predict median / p99 (us) | learn median / p99 (us) |\n|---|---|---|")
    for name in args.models:
        result = measure_model(name, rows, args.warmup, args.measure)
        table[name] = result
        p, lrn = result["predict"], result["learn"]
        print(
            f"| {name} | {p['median_us']:.1f} / {p['p99_us']:.1f} | "
            f"{lrn['median_us']:.1f} / {lrn['p99_us']:.1f} |",
            flush=True,
        )
    if args.out is not None:
        args.out.write_bytes(orjson.dumps(table, option=orjson.OPT_INDENT_2))

    return 0


if __name__ == "__main__":
    raise SystemExit(main())
