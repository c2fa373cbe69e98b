"""Throughput versus scorer processes: N scorers in one consumer group drain one backlog.

    python -m bench scale [--processes 1,2,3] [--transactions 60000] [--partitions 6]
        [--warmup 3] [--max-seconds 600] [--quick] [--out PATH]

For each N, N ``fraudstream detect`` processes start with ``FRAUDSTREAM_ROLE=scorer`` in one
consumer group on fresh topics (``--partitions`` partitions), and once all of them are ready a
backlog of simulated transactions is published. They share the per-card and per-terminal
aggregates in one Redis (no labels: learning is the trainer's job, one process, not part of
what scales here). Throughput = Scores
received per second over the steady middle of the drain (as ``bench throughput``), with the
CPU of the scorers (summed), the broker, Redis and the reader over the same window. On a
machine with few cores the scorers compete with the broker and Redis for them: the CPU columns
show where the time went.

Writes ``scale.json`` and ``scale.md`` to ``bench/results/<timestamp>/`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.baselines import STEADY_END
from bench.drain import CpuMeter, ScoreReader, cpu_percent, drain, steady_window, stop_process
from bench.procs import (
    PARTITIONS,
    QUICK_DATA,
    cleanup_run,
    detector_env,
    free_port,
    fresh_run,
    wait_ready,
)
from bench.record import environment, results_dir
from fraudstream import services
from fraudstream.settings import KafkaSettings
from fraudstream.simulator import SimulatorConfig, iter_records, simulate
from fraudstream.stream import admin
from fraudstream.stream.models import MODEL_TOPIC_CONFIG
from fraudstream.stream.publish import Publisher, publish_stream

SAMPLE_S = 0.5


def run_scale(
    endpoints: services.ServiceEndpoints,
    records: Sequence[Mapping[str, object]],
    processes: int,
    partitions: int,
    warmup_s: float,
    max_s: float,
) -> dict[str, Any]:
    """Drain the backlog with ``processes`` scorers; returns one result row."""
    run, base = fresh_run(f"scale-{processes}")
    topics = dataclasses.replace(base, models=f"{run}-models")
    bootstrap = endpoints.kafka_bootstrap
    admin.create_topics(bootstrap, [topics.transactions], partitions)
    outputs = [t for t in base.names() if t != topics.transactions]
    admin.create_topics(bootstrap, outputs, PARTITIONS)  # the Score reader reads PARTITIONS
    admin.create_topics(bootstrap, [topics.models], 1, config=MODEL_TOPIC_CONFIG)
    n = len(records)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        reader = ScoreReader(bootstrap, topics.scores, run)
        try:
            ports = []
            for i in range(processes):
                port = free_port()
                env = detector_env(bootstrap, endpoints.redis_url, run, topics, role="scorer",
                                   instance_id=f"s{i}", model_checkpoint_key="bench",
                                   metrics_port=str(port), summary_every_s="3600")  # fmt: skip
                procs.append(subprocess.Popen([sys.executable, "-m", "fraudstream", "detect"],
                                              env=env, stderr=subprocess.DEVNULL))  # fmt: skip
                ports.append(port)
            for port, proc in zip(ports, procs, strict=True):
                wait_ready(port, proc)
            time.sleep(3.0)  # the group settles (each join rebalances); then the backlog lands
            publisher = Publisher(KafkaSettings(bootstrap=bootstrap), extra={"linger.ms": "20"})
            publish_stream(records, publisher, topics, rate=None, label_delay_ms=None)
            meter = CpuMeter(endpoints, **{f"scorer{i}": p.pid for i, p in enumerate(procs)})
            samples = drain(reader, meter, n, max_s, SAMPLE_S)
            meter.close()
        finally:
            for proc in procs:
                stop_process(proc)
            reader.close()
    finally:
        cleanup_run(endpoints, topics, run)
        admin.delete_topics(bootstrap, [topics.models])
    start, end, steady = steady_window(samples, reader.first_at, warmup_s, STEADY_END * n)
    (c0, a), (c1, b) = samples[start], samples[end]
    span = max(b[0] - a[0], 1e-9)
    cpu = cpu_percent(a, b)
    scorers = [v for k, v in cpu.items() if k.startswith("scorer") and v is not None]
    return {
        "processes": processes,
        "published": n,
        "scored": len(reader.ids),
        "lost": n - len(reader.ids),
        "duplicates": reader.received - len(reader.ids),
        "tx_per_s": round((c1 - c0) / span, 1),
        "steady": steady,
        "cpu_percent": {
            "scorers": round(sum(scorers), 1),
            "broker": cpu["broker"],
            "redis": cpu["redis"],
            "reader": cpu["reader"],
        },
    }


def _markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    one = rows[0]["tx_per_s"] or 1.0
    lines = [
        "| scorers | tx/s | vs 1 | lost | repeated | CPU % scorers | broker | Redis | reader |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        c = r["cpu_percent"]
        lines.append(
            f"| {r['processes']} | {r['tx_per_s']:,.0f} | {r['tx_per_s'] / one:.2f}x | "
            f"{r['lost']} | {r['duplicates']} | {c['scorers']} | {c['broker']} | {c['redis']} | "
            f"{c['reader']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--processes", default="1,2,3", help="comma-separated scorer counts")
    parser.add_argument("--transactions", type=int, default=60_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--warmup", type=float, default=3.0, help="start-up seconds excluded")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="cap per drain")
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run (CI)")
    parser.add_argument("--out", type=Path, default=None, help="results directory")
    args = parser.parse_args(argv)
    counts = [int(p) for p in args.processes.split(",")]
    n, sim, warmup = args.transactions, SimulatorConfig(customers=2000, terminals=4000), args.warmup
    if args.quick:
        counts, n, sim, warmup = [1, 2], 3000, QUICK_DATA, 0.5
    out = results_dir(args.out)
    records = list(itertools.islice(iter_records(simulate(sim)), n))
    rows = []
    with services.running_services(os.environ) as endpoints:
        for count in counts:
            row = run_scale(endpoints, records, count, args.partitions, warmup, args.max_seconds)
            print(f"{count} scorers: {row['tx_per_s']:,.0f} tx/s, lost {row['lost']}", flush=True)
            rows.append(row)
        env = environment(kafka=endpoints.kafka_version, redis=endpoints.redis_version)
    doc = {
        "scenario": "scale",
        "config": {
            "processes": counts,
            "transactions": n,
            "partitions": args.partitions,
            "warmup_s": warmup,
            "quick": args.quick,
            "simulator": dataclasses.asdict(sim),
        },
        "environment": env,
        "rows": rows,
        "lost": sum(r["lost"] for r in rows),
    }
    (out / "scale.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    table = _markdown(rows)
    (out / "scale.md").write_text(table)
    print(table)
    print(f"results in {out}")
    return 0 if doc["lost"] == 0 else 1
