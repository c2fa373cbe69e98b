"""Score a run: join SCORES.jsonl to the input's ground truth and apply the handbook protocol.

The input is the simulator's JSON Lines (each transaction with ``is_fraud``); the scores are the
Score records the detector published (``transaction_id``, ``card_id``, ``score``,
``event_time_ms``). Without a window the book's four test weeks are used; with
``--test-start/--test-end`` the same metrics cover any window of whole days.

    python -m bench.quality.report --input TX.jsonl --scores SCORES.jsonl --out RESULT.json

Besides RESULT.json it writes ``quality.json``, ``quality.md`` (our row beside the book's, and
the metrics by fraud scenario) and ``quality_pr.png`` (precision-recall curve) to
``bench/results/<timestamp>/`` (or ``--results``). Metrics by scenario: each scenario's frauds
against all genuine transactions of the period, before the protocol's card removals.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from sklearn.metrics import precision_recall_curve

from bench.quality.learn import format_table
from bench.record import environment, results_dir
from fraudstream.model.evaluation import (
    HANDBOOK_TEST_WEEKS,
    average_precision,
    evaluate_handbook,
    evaluate_window,
    roc_auc,
)

__all__ = ["by_scenario", "join_scores"]

_SCENARIOS = {1: "amount > 220", 2: "compromised terminals", 3: "compromised cards"}


def join_scores(
    input_path: Path, scores_path: Path, scenarios: list[int] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Arrays (timestamp_ms, card, is_fraud, score) of the transactions that were scored.

    ``scenarios``, if given, receives each scored transaction's ``fraud_scenario`` (0 genuine).
    """
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
            if scenarios is not None:
                scenarios.append(int(rec.get("fraud_scenario") or 0))
    return np.array(times, dtype=np.int64), np.array(cards), np.array(frauds), np.array(scores)


def by_scenario(
    times: np.ndarray, frauds: np.ndarray, scores: np.ndarray, scenario: np.ndarray,
    start: dt.date, end: dt.date,
) -> list[dict[str, Any]]:  # fmt: skip
    """Per fraud scenario: its frauds against every genuine transaction in [start, end)."""
    lo = (start - dt.date(1970, 1, 1)).days * 86_400_000
    hi = (end - dt.date(1970, 1, 1)).days * 86_400_000
    window = (times >= lo) & (times < hi)
    genuine = window & ~frauds
    rows = []
    for code in sorted(set(scenario[window & frauds].tolist())):
        mask = window & frauds & (scenario == code)
        pick = genuine | mask
        rows.append({
            "scenario": int(code),
            "name": _SCENARIOS.get(int(code), "other"),
            "frauds": int(mask.sum()),
            "auc_roc": roc_auc(frauds[pick], scores[pick]),
            "average_precision": average_precision(frauds[pick], scores[pick]),
            "mean_score": float(scores[mask].mean()),
        })  # fmt: skip
    return rows


def _plot_pr(frauds: np.ndarray, scores: np.ndarray, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    precision, recall, _ = precision_recall_curve(frauds, scores)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.plot(recall, precision)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _scenario_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| scenario | frauds | AUC ROC | AP | mean score |", "|---|---|---|---|---|"]
    lines += [
        f"| {r['scenario']} ({r['name']}) | {r['frauds']:,} | {r['auc_roc']:.3f} "
        f"| {r['average_precision']:.3f} | {r['mean_score']:.3f} |"
        for r in rows
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--scores", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--test-start", type=dt.date.fromisoformat, default=None)
    parser.add_argument("--test-end", type=dt.date.fromisoformat, default=None, help="exclusive")
    parser.add_argument("--results", type=Path, default=None, help="results directory")
    args = parser.parse_args(argv)
    scenario_list: list[int] = []
    times, cards, frauds, scores = join_scores(args.input, args.scores, scenario_list)
    scenario = np.asarray(scenario_list, dtype=np.int64)
    start = args.test_start or HANDBOOK_TEST_WEEKS[0]
    end = args.test_end or (
        start + dt.timedelta(days=7) if args.test_start else HANDBOOK_TEST_WEEKS[-1]
        + dt.timedelta(days=7)
    )  # fmt: skip
    if args.test_start is not None:
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
        table = format_table(result, "fraudstream (online, delayed labels)")
        print(table)
        payload = {"mean": result.mean, "std": result.std, "scored": len(scores)}
    scenarios = by_scenario(times, frauds, scores, scenario, start, end)
    if args.out is not None:
        args.out.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2))
    out = results_dir(args.results)
    period = f"{start.isoformat()} to {end.isoformat()} (exclusive)"
    doc = {"scenario": "quality", "period": period, "result": payload,
           "by_scenario": scenarios, "environment": environment()}  # fmt: skip
    (out / "quality.json").write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    md = "" if args.test_start is not None else table + "\n\n"
    (out / "quality.md").write_text(
        f"{md}By fraud scenario, {period}, before card removals:\n\n{_scenario_table(scenarios)}\n"
    )
    in_period = (times >= (start - dt.date(1970, 1, 1)).days * 86_400_000) & (
        times < (end - dt.date(1970, 1, 1)).days * 86_400_000
    )
    if in_period.any() and frauds[in_period].any():
        _plot_pr(frauds[in_period], scores[in_period], out / "quality_pr.png",
                 f"fraudstream precision-recall, {period}")  # fmt: skip
    print(_scenario_table(scenarios))
    print(f"results in {out}")

    return 0


if __name__ == "__main__":
    raise SystemExit(main())
