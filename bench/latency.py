"""Open-loop latency through the real pipeline: Kafka, the detector process, Redis, Kafka.

    python -m bench latency [--rates 1000,5000,10000] [--duration 60] [--warmup 10] [--quick]

For each rate: fresh topics and Redis keys; ``fraudstream detect`` started as its own process
(as in production, so its CPU is its own); a generator process publishing handbook transactions
open-loop at the rate (record ``i`` due at ``start + i / rate``, its event time set to that
intended send time, as live traffic has; each label released ``--label-delay-s`` seconds later,
so learning runs inline); and this process as the downstream consumer of ``scores``, stamping
each Score on receipt.

- End-to-end latency = receipt - *intended* send time, so a generator or broker that falls
  behind shows up in the numbers instead of hiding (no coordinated omission).
- Processing latency = the detector's own ``processing_us`` (consume to produce) in each Score.
- Budget misses = Scores whose processing took longer than the 1 ms budget.
- Lost = published transactions without a Score when the run ends (it waits up to 60 s).
- CPU of each process over the measured window (detector, broker, Redis, generator).

The first ``--warmup`` seconds are excluded. Writes ``latency.json``, ``latency.md`` and
``latency_cdf.png`` to ``bench/results/<timestamp>/`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psutil
import redis
from confluent_kafka import Consumer, TopicPartition

from bench.drain import stop_process
from bench.procs import (
    PARTITIONS,
    QUICK_DATA,
    broker_process,
    cpu_seconds,
    detector_env,
    free_port,
    redis_cpu,
    wait_ready,
)
from bench.record import environment, percentiles, results_dir
from fraudstream import services
from fraudstream.settings import KafkaSettings, TopicSettings
from fraudstream.simulator import SimulatorConfig, iter_records, simulate
from fraudstream.stream import admin
from fraudstream.stream.publish import Publisher, publish_stream

__all__ = ["main", "run_rate"]

BUDGET_US = 1000


@dataclass
class RateResult:
    """One rate's numbers (latencies in ms, processing in us, CPU in % of one core)."""

    rate: int
    duration_s: float
    published: int
    measured: int
    lost: int
    achieved_rate: float
    end_to_end_ms: dict[str, float]
    processing_us: dict[str, float]
    budget_misses: int
    generator_behind_s: float
    cpu_percent: dict[str, float | None]
    end_to_end_sample: list[float] = field(default_factory=list, repr=False)


def _generate(
    bootstrap: str, topics: TopicSettings, rate: int, n: int, label_delay_ms: int,
    quick: bool, ready: Any, start_box: Any, behind_box: Any,
) -> None:  # fmt: skip
    """The generator process: simulate, say ready, wait for the start time, publish."""
    dataset = simulate(QUICK_DATA if quick else SimulatorConfig())
    records = list(itertools.islice(iter_records(dataset), n))
    publisher = Publisher(KafkaSettings(bootstrap=bootstrap), extra={"linger.ms": "1"})
    ready.set()
    while start_box.value == 0.0:
        time.sleep(0.01)
    # Live traffic: each transaction's event time is its intended send time (wall clock), so
    # event time advances as in production, not thousands of times faster as in a replay.
    wall_start_ms = (time.time() + start_box.value - time.monotonic()) * 1000
    for i, record in enumerate(records):
        record["timestamp"] = int(wall_start_ms + i * 1000 / rate)
    stats = publish_stream(
        records, publisher, topics, rate=rate, label_delay_ms=label_delay_ms,
        drain_labels=False, start=start_box.value,
    )  # fmt: skip
    behind_box.value = stats.behind_schedule_s


def _pin(pids: list[int], cores: set[int]) -> None:
    """Move every thread of ``pids`` to ``cores`` (threads started later inherit it)."""
    for pid in pids:
        for thread in psutil.Process(pid).threads():
            with contextlib.suppress(OSError):  # a thread that just ended
                os.sched_setaffinity(thread.id, cores)


def run_rate(
    endpoints: services.ServiceEndpoints,
    rate: int,
    duration_s: float,
    warmup_s: float,
    label_delay_ms: int,
    quick: bool,
    pin: bool = False,
) -> RateResult:
    """One open-loop run at ``rate`` transactions per second.

    ``pin``: the detector gets the last CPU core to itself; the broker, Redis, the generator and
    this reader share the others (as in production, where they run on other machines).
    """
    run = uuid.uuid4().hex[:8]
    topics = TopicSettings(
        transactions=f"lat-{run}-transactions", labels=f"lat-{run}-labels",
        scores=f"lat-{run}-scores", flags=f"lat-{run}-flags", dead_letters=f"lat-{run}-dlq",
    )  # fmt: skip
    bootstrap = endpoints.kafka_bootstrap
    admin.create_topics(bootstrap, topics.names(), PARTITIONS)
    n = int(rate * (warmup_s + duration_s))
    port = free_port()
    env = detector_env(bootstrap, endpoints.redis_url, f"lat{run}", topics,
                       metrics_port=str(port), summary_every_s="3600")  # fmt: skip
    ctx = mp.get_context("spawn")
    ready, start_box, behind_box = ctx.Event(), ctx.Value("d", 0.0), ctx.Value("d", 0.0)
    generator = ctx.Process(
        target=_generate,
        args=(bootstrap, topics, rate, n, label_delay_ms, quick, ready, start_box, behind_box),
        name="generator",
    )
    generator.start()
    cores = sorted(os.sched_getaffinity(0))
    own, rest = {cores[-1]}, set(cores[:-1])
    detector = subprocess.Popen(
        [sys.executable, "-m", "fraudstream", "detect"], env=env, stderr=subprocess.DEVNULL,
        preexec_fn=(lambda: os.sched_setaffinity(0, own)) if pin else None,
    )  # fmt: skip
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"lat-{run}-reader",
                         "fetch.wait.max.ms": 5, "enable.auto.commit": False})  # fmt: skip
    consumer.assign([TopicPartition(topics.scores, p, 0) for p in range(PARTITIONS)])
    rclient = redis.Redis.from_url(endpoints.redis_url)
    received: list[tuple[int, bytes]] = []
    try:
        wait_ready(port, detector)
        if not ready.wait(300):
            raise RuntimeError("generator not ready in time")
        start = time.monotonic() + 1.0
        start_box.value = start
        procs = {
            "detector": psutil.Process(detector.pid),
            "generator": psutil.Process(generator.pid),
            "broker": broker_process(bootstrap),
        }
        if pin:
            others = [generator.pid or 0, os.getpid(), int(rclient.info("server")["process_id"])]
            broker = procs["broker"]
            _pin(others + ([broker.pid] if broker is not None else []), rest)
        cpu0: dict[str, float | None] = {}
        cpu_t0 = cpu_t1 = 0.0
        measured_from = start + warmup_s
        deadline = start + warmup_s + duration_s + 60.0
        while len(received) < n and time.monotonic() < deadline:
            if not cpu0 and time.monotonic() >= measured_from:
                cpu0 = {k: cpu_seconds(p) for k, p in procs.items()}
                cpu0["redis"] = redis_cpu(rclient)
                cpu_t0 = time.monotonic()
            msg = consumer.poll(0.01)
            if msg is None:
                continue
            now = time.monotonic_ns()
            if msg.error() is None:
                received.append((now, msg.value() or b""))
            for more in consumer.consume(1000, 0):
                if more.error() is None:
                    received.append((now, more.value() or b""))
        cpu_t1 = time.monotonic()
        cpu1 = {k: cpu_seconds(p) for k, p in procs.items()}
        cpu1["redis"] = redis_cpu(rclient)
    finally:
        consumer.close()
        stop_process(detector)
        generator.join(30)
        if generator.is_alive():
            generator.kill()
        admin.delete_topics(bootstrap, topics.names())
    window = max(cpu_t1 - cpu_t0, 1e-9) if cpu0 else 1e-9
    cpu: dict[str, float | None] = {}
    for k, v0 in cpu0.items():
        v1 = cpu1.get(k)
        cpu[k] = None if v0 is None or v1 is None else round(100 * (v1 - v0) / window, 1)
    interval_ns = 1e9 / rate
    start_ns = start * 1e9
    e2e: list[float] = []
    proc_us: list[float] = []
    seen: set[str] = set()
    for recv_ns, value in received:
        score = orjson.loads(value)
        if score["transaction_id"] in seen:
            continue  # a duplicate (at-least-once): the first receipt counts
        seen.add(score["transaction_id"])
        intended_ns = start_ns + int(score["transaction_id"]) * interval_ns
        if intended_ns < start_ns + warmup_s * 1e9:
            continue
        e2e.append((recv_ns - intended_ns) / 1e6)
        proc_us.append(float(score["processing_us"]))
    measured_span = duration_s
    return RateResult(
        rate=rate,
        duration_s=duration_s,
        published=n,
        measured=len(e2e),
        lost=n - len(seen),
        achieved_rate=round(len(e2e) / measured_span, 1),
        end_to_end_ms={k: round(v, 3) for k, v in percentiles(e2e).items()},
        processing_us={k: round(v, 1) for k, v in percentiles(proc_us).items()},
        budget_misses=sum(p > BUDGET_US for p in proc_us),
        generator_behind_s=round(behind_box.value, 3),
        cpu_percent=cpu,
        end_to_end_sample=sorted(e2e),
    )


def _markdown(results: list[RateResult]) -> str:
    head = (
        "| rate (tx/s) | measured | lost | e2e p50 / p90 / p99 / p99.9 / max (ms) "
        "| processing p50 / p90 / p99 / p99.9 / max (us) | budget misses "
        "| CPU % detector / broker / Redis / generator |\n|---|---|---|---|---|---|---|\n"
    )

    def row(d: dict[str, float], fmt: str) -> str:
        return " / ".join(format(d[k], fmt) for k in ("p50", "p90", "p99", "p99.9", "max"))

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v:.0f}"

    lines = [
        f"| {r.rate:,} | {r.measured:,} | {r.lost} | {row(r.end_to_end_ms, '.2f')} "
        f"| {row(r.processing_us, '.0f')} | {r.budget_misses:,} "
        f"({100 * r.budget_misses / max(r.measured, 1):.2f} %) "
        f"| {pct(r.cpu_percent.get('detector'))} / {pct(r.cpu_percent.get('broker'))} / "
        f"{pct(r.cpu_percent.get('redis'))} / {pct(r.cpu_percent.get('generator'))} |"
        for r in results
    ]
    return head + "\n".join(lines) + "\n"


def _plot(results: list[RateResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in results:
        xs = r.end_to_end_sample
        if not xs:
            continue
        ys = [(i + 1) / len(xs) for i in range(len(xs))]
        ax.plot(xs, ys, label=f"{r.rate:,} tx/s")
    ax.set_xscale("log")
    ax.set_xlabel("end-to-end latency from intended send (ms, log)")
    ax.set_ylabel("share of transactions")
    ax.set_title("fraudstream end-to-end latency CDF (open loop)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rates", default="1000,5000,10000", help="comma-separated tx/s")
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds per rate")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds excluded first")
    parser.add_argument(
        "--label-delay-s", type=float, default=5.0,
        help="seconds from a transaction to its label (default 5: learning runs during the run)",
    )  # fmt: skip
    parser.add_argument(
        "--pin", action="store_true",
        help="give the detector a core of its own; the services and load share the others",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run (CI)")
    parser.add_argument("--out", type=Path, default=None, help="results directory")
    args = parser.parse_args(argv)
    if args.pin and len(os.sched_getaffinity(0)) < 2:
        parser.error("--pin needs at least two CPU cores")
    rates = [int(r) for r in args.rates.split(",")]
    duration, warmup = args.duration, args.warmup
    if args.quick:
        rates, duration, warmup = [200], 3.0, 1.0
    out = results_dir(args.out)
    results: list[RateResult] = []
    with services.running_services(os.environ) as endpoints:
        for rate in rates:
            r = run_rate(
                endpoints,
                rate,
                duration,
                warmup,
                int(args.label_delay_s * 1000),
                args.quick,
                args.pin,
            )
            print(_markdown([r]).splitlines()[-1], flush=True)
            results.append(r)
        env = environment(kafka=endpoints.kafka_version, redis=endpoints.redis_version)
    doc: dict[str, Any] = {
        "scenario": "latency",
        "config": {
            "rates": rates,
            "duration_s": duration,
            "warmup_s": warmup,
            "label_delay_s": args.label_delay_s,
            "quick": args.quick,
            "pinned": args.pin,
            "partitions": PARTITIONS,
            "budget_us": BUDGET_US,
        },
        "environment": env,
        "results": [
            {k: v for k, v in r.__dict__.items() if k != "end_to_end_sample"} for r in results
        ],
    }
    (out / "latency.json").write_text(json.dumps(doc, indent=2) + "\n")
    table = _markdown(results)
    (out / "latency.md").write_text(table)
    _plot(results, out / "latency_cdf.png")
    print(table)
    print(f"results in {out}")
    return 0 if all(r.lost == 0 for r in results) else 1
