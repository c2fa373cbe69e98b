"""Detector capacity versus batch size on real Kafka and Redis, a bounded-lag check, two baselines.

    python -m bench throughput [--batch-sizes 1,10,50,100,500] [--transactions 100000]
        [--lag-seconds 20] [--baseline-seconds 15] [--warmup 3] [--max-seconds 600]
        [--label-delay 1] [--quick] [--out PATH]

- Capacity, per batch size: a backlog of the first ``--transactions`` handbook transactions
  (and their labels, released ``--label-delay`` later in event time, so learning runs inline)
  is published to fresh topics (3 partitions) before ``fraudstream detect`` starts as its own
  process with ``FRAUDSTREAM_BATCH_SIZE`` set and a fresh Redis key prefix. This process reads
  ``scores`` downstream. Capacity = Scores received per second over the steady middle of the
  drain: from ``--warmup`` seconds after the first Score to the Score that makes 90 % (start-up
  and the ragged end excluded). CPU of the detector, the broker, Redis and this reader over the
  same window. Lost = transactions without a Score when the run ends (all scored, or
  ``--max-seconds`` passed: then it is the detector's lag).
- Bounded lag (``bench/lag.py``): at 0.9x the best capacity, open loop for ``--lag-seconds``
  to a detector at the best batch size; bounded unless the lag keeps growing.
- Baselines, as the best capacity divided by theirs: the in-process limit (the same features in
  :class:`~fraudstream.features.MemoryFeatureStore`, the same scorer and ``Detector``, decoded
  Transactions from memory at the best batch size, labels interleaved as published; no Kafka,
  no Redis, no JSON) and a naive consumer (``poll()`` one record, one Redis round trip per
  transaction or label, produce then ``flush()`` per Score).

``FRAUDSTREAM_*`` variables in the environment reach the detector process, and the baselines
build their model and feature engine from the same ones (e.g. ``FRAUDSTREAM_MODEL_NAME``);
``FRAUDSTREAM_ALIGN_INPUTS=false`` turns the detector's event-time alignment off.

Writes ``throughput.json``, ``throughput.md`` and ``throughput.png`` to
``bench/results/<timestamp>/`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench.baselines import STEADY_END, run_in_process, run_naive
from bench.drain import Cpu, CpuMeter, ScoreReader, cpu_percent, drain, steady_window, stop_process
from bench.lag import run_bounded_lag
from bench.procs import (
    PARTITIONS,
    QUICK_DATA,
    cleanup_run,
    fresh_run,
    publish_backlog,
    start_detector,
    wait_ready,
)
from bench.record import environment, results_dir
from fraudstream import services
from fraudstream.settings import Settings
from fraudstream.simulator import SimulatorConfig, iter_records, simulate
from fraudstream.stream import admin

__all__ = ["main"]

LAG_SHARE = 0.9  # the bounded-lag run's rate, as a share of the best capacity
SAMPLE_S = 0.2


@dataclass
class Capacity:
    """One batch size's drain of the backlog (rates in tx/s, CPU in % of one core)."""

    batch_size: int
    published: int
    scored: int
    lost: int
    duplicates: int
    capacity: float
    window_s: float
    steady: bool  # False: the run was too short for a steady window; the whole drain was used
    drain_s: float
    cpu_percent: Cpu
    progress: list[tuple[float, int]] = field(default_factory=list)  # (s since 1st Score, Scores)


def run_capacity(
    endpoints: services.ServiceEndpoints,
    records: Sequence[Mapping[str, object]],
    batch_size: int,
    label_delay_ms: int,
    warmup_s: float,
    max_s: float,
) -> Capacity:
    """Drain a pre-published backlog with one detector process at ``batch_size``."""
    run, topics = fresh_run(f"tp-b{batch_size}")
    bootstrap = endpoints.kafka_bootstrap
    admin.create_topics(bootstrap, topics.names(), PARTITIONS)
    n = len(records)
    try:
        publish_backlog(bootstrap, topics, records, label_delay_ms)
        reader = ScoreReader(bootstrap, topics.scores, run)
        detector, port = start_detector(endpoints, topics, run, batch_size)
        meter: CpuMeter | None = None
        try:
            wait_ready(port, detector)
            meter = CpuMeter(endpoints, detector=detector.pid)
            samples = drain(reader, meter, n, max_s, SAMPLE_S)
        finally:
            if meter is not None:
                meter.close()
            stop_process(detector)
            reader.close()
    finally:
        cleanup_run(endpoints, topics, run)
    scored = len(reader.ids)
    window = steady_window(samples, reader.first_at, warmup_s, STEADY_END * n)
    (c0, a), (c1, b) = samples[window[0]], samples[window[1]]
    return Capacity(
        batch_size=batch_size,
        published=n,
        scored=scored,
        lost=n - scored,
        duplicates=reader.received - scored,
        capacity=round((c1 - c0) / max(b[0] - a[0], 1e-9), 1),
        window_s=round(b[0] - a[0], 2),
        steady=window[2],
        drain_s=round(samples[-1][1][0] - reader.first_at, 2) if reader.first_at else 0.0,
        cpu_percent=cpu_percent(a, b),
        progress=_progress(samples, reader.first_at),
    )


def _progress(
    samples: Sequence[tuple[int, tuple[float, Cpu]]], first_at: float
) -> list[tuple[float, int]]:
    """About one point a second of (seconds since the first Score, Scores so far)."""
    out: list[tuple[float, int]] = []
    for count, (t, _) in samples:
        if first_at and t >= first_at and (not out or t - first_at >= out[-1][0] + 1.0):
            out.append((round(t - first_at, 2), count))
    if first_at and samples and out and out[-1][1] != samples[-1][0]:
        out.append((round(samples[-1][1][0] - first_at, 2), samples[-1][0]))
    return out


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"


def _cpu_cell(cpu: Cpu, names: Sequence[str]) -> str:
    return " / ".join(_pct(cpu.get(k)) for k in names)


def _markdown(doc: Mapping[str, Any]) -> str:
    cfg = doc["config"]
    lines = [
        f"## Capacity: a backlog of {cfg['transactions']:,} transactions, "
        f"{cfg['partitions']} partitions, one detector process",
        "",
        "| batch size | capacity (tx/s) | window (s) | scored / published | lost "
        "| CPU % detector / broker / Redis / reader |",
        "|---|---|---|---|---|---|",
    ]
    for r in doc["capacity"]:
        lines.append(
            f"| {r['batch_size']} | {r['capacity']:,.0f}{'' if r['steady'] else ' *'} "
            f"| {r['window_s']:.1f} | {r['scored']:,} / {r['published']:,} | {r['lost']:,} "
            f"| {_cpu_cell(r['cpu_percent'], ('detector', 'broker', 'redis', 'reader'))} |"
        )
    if not all(r["steady"] for r in doc["capacity"]):
        lines.append("\n\\* run too short for a steady window: the whole drain was measured.")
    lag = doc["bounded_lag"]
    lines += [
        "",
        f"## Bounded lag: open loop at {LAG_SHARE:.0%} of the best capacity",
        "",
        "| rate (tx/s) | batch size | seconds | max lag (tx) | max lag (s of traffic) "
        "| lag trend (tx/s) | bounded | lost | generator behind (s) "
        "| CPU % detector / broker / Redis / generator |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| {lag['rate']:,} | {lag['batch_size']} | {lag['seconds']:.1f} | {lag['max_lag']:,} "
        f"| {lag['max_lag_s']:.3f} | {lag['lag_trend_per_s']:+,.1f} "
        f"| {'yes' if lag['bounded'] else 'no'} | {lag['lost']:,} "
        f"| {lag['generator_behind_s']:.3f} "
        f"| {_cpu_cell(lag['cpu_percent'], ('detector', 'broker', 'redis', 'generator'))} |",
        "",
        f"## Baselines (best detector: {doc['best']['capacity']:,.0f} tx/s at batch size "
        f"{doc['best']['batch_size']})",
        "",
        "| implementation | tx/s | best detector / this |",
        "|---|---|---|",
        f"| in-process limit (memory features, same scorer, batch "
        f"{doc['baselines']['in_process']['batch_size']}) "
        f"| {doc['baselines']['in_process']['tx_per_s']:,.0f} "
        f"| {doc['ratios']['detector_over_in_process']:.2f} |",
        f"| naive (poll one, Redis per record, flush per Score) "
        f"| {doc['baselines']['naive']['tx_per_s']:,.0f} "
        f"| {doc['ratios']['detector_over_naive']:.2f} |",
    ]
    return "\n".join(lines) + "\n"


def _plot(doc: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = doc["capacity"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(
        [r["batch_size"] for r in rows],
        [r["capacity"] for r in rows],
        "o-",
        label="detector (Kafka + Redis, one process)",
    )
    base = doc["baselines"]
    ax.axhline(
        base["in_process"]["tx_per_s"],
        color="tab:green",
        linestyle="--",
        label=f"in-process limit (batch {base['in_process']['batch_size']})",
    )
    ax.axhline(
        base["naive"]["tx_per_s"],
        color="tab:red",
        linestyle=":",
        label="naive: one record per poll, flush per Score",
    )
    lag = doc["bounded_lag"]
    ax.plot(
        [lag["batch_size"]],
        [lag["rate"]],
        "s",
        color="tab:purple",
        label=f"open loop at {LAG_SHARE:.0%} ({'bounded' if lag['bounded'] else 'unbounded'})",
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("FRAUDSTREAM_BATCH_SIZE (log)")
    ax.set_ylabel("transactions per second (log)")
    ax.set_title("fraudstream detector capacity vs batch size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--batch-sizes", default="1,10,50,100,500", help="comma-separated")
    parser.add_argument("--transactions", type=int, default=100_000, help="backlog per size")
    parser.add_argument("--lag-seconds", type=float, default=20.0, help="open-loop run length")
    parser.add_argument("--baseline-seconds", type=float, default=15.0, help="naive run length")
    parser.add_argument("--warmup", type=float, default=3.0, help="start-up seconds excluded")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="cap per drain")
    parser.add_argument(
        "--label-delay",
        type=float,
        default=1.0,
        help="label delay in event-time days (default 1: labels, and learning, start early)",
    )
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run (CI)")
    parser.add_argument("--out", type=Path, default=None, help="results directory")
    args = parser.parse_args(argv)
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    n, lag_s, naive_s, warmup = (
        args.transactions,
        args.lag_seconds,
        args.baseline_seconds,
        args.warmup,
    )
    sim = SimulatorConfig()
    if args.quick:
        sizes, n, lag_s, naive_s, warmup, sim = [100], 3000, 3.0, 2.0, 0.5, QUICK_DATA
    label_delay_ms = int(args.label_delay * 86_400_000)
    # The detector process inherits this environment: the baselines use the same model and
    # engine settings it will.
    settings = Settings.from_env(os.environ)
    out = results_dir(args.out)
    print("simulating ...", flush=True)
    dataset = simulate(sim)
    backlog = list(itertools.islice(iter_records(dataset), n))
    rows: list[Capacity] = []
    with services.running_services(os.environ) as endpoints, tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            row = run_capacity(endpoints, backlog, size, label_delay_ms, warmup, args.max_seconds)
            print(f"batch {size}: {row.capacity:,.0f} tx/s, lost {row.lost}", flush=True)
            rows.append(row)
        best = max(rows, key=lambda r: r.capacity)
        rate = max(1, int(LAG_SHARE * best.capacity))
        # The generator process reads its records from a file: no second simulation there.
        path = Path(tmp) / "records.jsonl"
        with path.open("wb") as file:
            for record in itertools.islice(iter_records(dataset), int(rate * lag_s)):
                file.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
        lag = run_bounded_lag(
            endpoints, path, len(dataset), rate, best.batch_size, lag_s, label_delay_ms, warmup
        )
        print(f"open loop {rate:,} tx/s: max lag {lag.max_lag:,}, lost {lag.lost}", flush=True)
        naive = run_naive(endpoints, backlog, label_delay_ms, warmup, naive_s, settings)
        print(f"naive: {naive['tx_per_s']:,.0f} tx/s", flush=True)
        env = environment(kafka=endpoints.kafka_version, redis=endpoints.redis_version)
    in_process = run_in_process(backlog, best.batch_size, label_delay_ms, settings)
    print(f"in-process: {in_process['tx_per_s']:,.0f} tx/s", flush=True)
    doc: dict[str, Any] = {
        "scenario": "throughput",
        "config": {
            "batch_sizes": sizes,
            "transactions": n,
            "lag_seconds": lag_s,
            "lag_share": LAG_SHARE,
            "baseline_seconds": naive_s,
            "warmup_s": warmup,
            "steady_end_share": STEADY_END,
            "max_seconds": args.max_seconds,
            "label_delay_days": args.label_delay,
            "partitions": PARTITIONS,
            "quick": args.quick,
            "simulator": dataclasses.asdict(sim),
        },
        "environment": env,
        "capacity": [dataclasses.asdict(r) for r in rows],
        "best": {"batch_size": best.batch_size, "capacity": best.capacity},
        "bounded_lag": dataclasses.asdict(lag),
        "baselines": {"in_process": in_process, "naive": naive},
        "ratios": {
            "detector_over_in_process": round(best.capacity / max(in_process["tx_per_s"], 1e-9), 3),
            "detector_over_naive": round(best.capacity / max(naive["tx_per_s"], 1e-9), 3),
        },
        "lost": sum(r.lost for r in rows) + lag.lost,
    }
    (out / "throughput.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    table = _markdown(doc)
    (out / "throughput.md").write_text(table)
    _plot(doc, out / "throughput.png")
    print(table)
    print(f"results in {out}")
    return 0 if doc["lost"] == 0 else 1
