"""Score a run: join SCORES.jsonl to the input's ground truth and apply the handbook protocol.

The input is the simulator's JSON Lines (each transaction with ``is_fraud``); the scores are the
Score records the detector published (``transaction_id``, ``card_id``, ``score``,
``event_time_ms``). Without a window the book's four test weeks are used; with
``--test-start/--test-end`` the same metrics cover any window of whole days.

    python -m bench.quality.report --input TX.jsonl --scores SCORES.jsonl --out RESULT.json
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import numpy as np
import orjson

from bench.quality.learn import format_table
from fraudstream.model.evaluation import evaluate_handbook, evaluate_window

__all__ = ["join_scores"]


def join_scores(
    input_path: Path, scores_path: Path
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Arrays (timestamp_ms, card, is_fraud, score) of the transactions that were scored."""
    scored: dict[str, float] = {}
    with open(scores_path, "rb") as fh:
        for line in fh:
            if line.strip():
                rec = orjson.loads(line)
                scored.setdefault(rec["transaction_id"], float(rec["score"]))  # first one wins
    times, cards, frauds, scores = [], [], [], []
    with open(input_path, "rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            rec = orjson.loads(line)
            score = scored.get(str(rec["transaction_id"]))
            if score is None:
                continue
            ts = rec["timestamp"]
            if isinstance(ts, str):
                ts = int(dt.datetime.fromisoformat(ts).timestamp() * 1000)
            times.append(ts)
            cards.append(str(rec["card_id"]))
            frauds.append(bool(rec["is_fraud"]))
            scores.append(score)
    return np.array(times, dtype=np.int64), np.array(cards), np.array(frauds), np.array(scores)


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--scores", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--test-start", type=dt.date.fromisoformat, default=None)
    parser.add_argument("--test-end", type=dt.date.fromisoformat, default=None, help="exclusive")
    args = parser.parse_args(argv)
    times, cards, frauds, scores = join_scores(args.input, args.scores)
    if args.test_start is not None:
        end = args.test_end or args.test_start + dt.timedelta(days=7)
        w = evaluate_window(
            times, cards, frauds, scores, args.test_start, (end - args.test_start).days
        )
        payload: dict[str, object] = {
            "window": [args.test_start.isoformat(), end.isoformat()],
            "auc_roc": w.auc_roc,
            "average_precision": w.average_precision,
            "card_precision_top_k": w.card_precision_top_k,
            "transactions": w.transactions,
            "frauds": w.frauds,
        }
        print(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())
    else:
        result = evaluate_handbook(times, cards, frauds, scores)
        print(format_table(result, "fraudstream (online, delayed labels)"))
        payload = {"mean": result.mean, "std": result.std, "scored": len(scores)}
    if args.out is not None:
        args.out.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2))

    return 0


if __name__ == "__main__":
    raise SystemExit(main())
