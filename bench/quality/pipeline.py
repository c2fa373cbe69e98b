"""Detection quality through the real pipeline: Kafka, the Redis feature store, the online model.

    python -m bench quality --input TX.jsonl --label-delay 7d --out RESULT.json \
        --scores-out SCORES.jsonl [--test-start 2018-08-08 --test-end 2018-09-05]

Publishes every transaction of ``--input`` (lines carrying ``is_fraud``, which is stripped) to a
fresh topic, each label ``--label-delay`` after its transaction in event time, runs the detector
exactly as ``fraudstream detect`` does until every transaction has its Score, writes the Scores
to ``--scores-out`` and reports AUC ROC, AP and CP@100 with the handbook's protocol (or over the
given window) beside the book's rows. Services come from FRAUDSTREAM_* variables, else Docker,
else local processes.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

from confluent_kafka import Consumer

from bench.quality import report
from fraudstream import app, services
from fraudstream.cli import parse_duration_ms
from fraudstream.settings import KafkaSettings, RedisSettings, Settings, TopicSettings
from fraudstream.simulator import read_jsonl
from fraudstream.stream import admin
from fraudstream.stream.publish import Publisher, publish_stream

__all__ = ["main", "run_pipeline"]


def run_pipeline(
    input_path: Path,
    scores_out: Path,
    label_delay_ms: int,
    settings: Settings,
    partitions: int = 1,
) -> int:
    """Publish, detect and collect the Scores; returns how many were written."""
    run = uuid.uuid4().hex[:8]
    topics = TopicSettings(
        transactions=f"bench-{run}-transactions", labels=f"bench-{run}-labels",
        scores=f"bench-{run}-scores", flags=f"bench-{run}-flags",
        dead_letters=f"bench-{run}-dlq",
    )  # fmt: skip
    settings = replace(
        settings, topics=topics, redis=replace(settings.redis, key_prefix=f"bench{run}")
    )
    bootstrap = settings.kafka.bootstrap or ""
    admin.create_topics(bootstrap, topics.names(), partitions)
    stats = publish_stream(
        read_jsonl(input_path), Publisher(settings.kafka), topics, rate=None,
        label_delay_ms=label_delay_ms,
    )  # fmt: skip
    print(f"published transactions={stats.transactions} labels={stats.labels}", flush=True)
    runtime = app.build(settings)
    stop = threading.Event()
    thread = threading.Thread(target=runtime.run, args=(stop,), name="detector")
    started = time.monotonic()
    thread.start()
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{run}-reader",
                         "auto.offset.reset": "earliest"})  # fmt: skip
    consumer.subscribe([topics.scores])
    written = 0
    try:
        with scores_out.open("wb") as fh:
            while written < stats.transactions and not runtime.failed:
                for msg in consumer.consume(5000, 0.5):
                    if msg.error() is None and msg.value():
                        fh.write(msg.value() + b"\n")  # type: ignore[operator]
                        written += 1
                if time.monotonic() - started > 24 * 3600:
                    break
    finally:
        consumer.close()
        stop.set()
        thread.join(120)
        admin.delete_topics(bootstrap, topics.names())
    elapsed = time.monotonic() - started
    print(f"scored={written} in {elapsed:.0f} s ({written / max(elapsed, 1e-9):,.0f} tx/s)")
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--input", type=Path, required=True, help="simulator JSONL")
    parser.add_argument("--label-delay", default="7d")
    parser.add_argument("--out", type=Path, default=None, help="RESULT.json")
    parser.add_argument("--scores-out", type=Path, default=None, help="SCORES.jsonl")
    parser.add_argument("--test-start", default=None)
    parser.add_argument("--test-end", default=None)
    parser.add_argument("--results", default=None, help="results directory")
    parser.add_argument(
        "--partitions",
        type=int,
        default=1,
        help="partitions of the input topics (default 1: event time then advances in order; "
        "with more, partitions consumed at different paces skew event time across terminals)",
    )
    args = parser.parse_args(argv)
    scores_out = args.scores_out or Path(tempfile.mkstemp(suffix=".jsonl")[1])
    env = os.environ
    with services.running_services(env) as endpoints:
        settings = Settings.from_env(env)
        settings = replace(
            settings,
            kafka=KafkaSettings(bootstrap=endpoints.kafka_bootstrap, extra=settings.kafka.extra),
            redis=RedisSettings(url=endpoints.redis_url, password=settings.redis.password),
        )
        run_pipeline(
            args.input, scores_out, parse_duration_ms(args.label_delay), settings, args.partitions
        )
    report_args = ["--input", str(args.input), "--scores", str(scores_out)]
    if args.out is not None:
        report_args += ["--out", str(args.out)]
    if args.results is not None:
        report_args += ["--results", args.results]
    if args.test_start:
        report_args += ["--test-start", args.test_start]
        if args.test_end:
            report_args += ["--test-end", args.test_end]
    return report.main(report_args)
