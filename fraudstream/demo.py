"""``fraudstream demo``: services, simulated payments, the detector and feedback, live numbers.

Starts Kafka and Redis (from FRAUDSTREAM_* variables, Docker when an engine answers, else
local processes), creates the topics, publishes the handbook simulator's payments at a steady
rate with each label released a delay later in event time, runs the detector in this process,
and redraws a one-screen view every second until Ctrl-C, which stops everything it started.

The payments are published from a child process, as a payment system would: a publisher
thread in this process would hold the GIL in turns with the detector (CPython hands it over
every 5 ms), which alone put a detector's per-transaction latency in the milliseconds.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event as ProcessEvent
from typing import TextIO

from fraudstream import app, services
from fraudstream.settings import KafkaSettings, Settings, redact_url
from fraudstream.simulator import SimulatorConfig, iter_records, simulate
from fraudstream.stream import admin
from fraudstream.stream.publish import Publisher, publish_stream

__all__ = ["DemoOptions", "run_demo"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What the demo simulates and how fast."""

    rate: float = 2000.0
    label_delay_ms: int = 7 * 86_400_000
    customers: int = 5000
    terminals: int = 10000
    days: int = 183
    seed: int = 0
    duration_s: float | None = None  # None: until Ctrl-C


def _view(out: TextIO, rows: Mapping[str, str], clear: bool) -> None:
    width = max(len(k) for k in rows)
    text = "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows.items())
    if clear:
        out.write("\x1b[H\x1b[2J")  # home + clear: redraw in place on a terminal
    out.write(f"fraudstream demo (Ctrl-C stops everything)\n\n{text}\n\n")
    out.flush()


def run_demo(env: Mapping[str, str], settings: Settings, options: DemoOptions) -> int:
    """Run the demo until Ctrl-C (or ``options.duration_s``); return the exit code."""
    stop = threading.Event()
    out = sys.stdout
    clear = out.isatty()
    with services.running_services(env) as endpoints:
        settings = replace(
            settings,
            kafka=replace(settings.kafka, bootstrap=endpoints.kafka_bootstrap)
            if settings.kafka.bootstrap is None
            else settings.kafka,
            redis=replace(settings.redis, url=endpoints.redis_url)
            if settings.redis.url is None
            else settings.redis,
        )
        _create_topics(settings.kafka, settings)
        runtime = app.build(settings)
        detector = threading.Thread(target=runtime.run, args=(stop,), name="detector")
        detector.start()
        # spawn, not fork: this process already runs librdkafka threads.
        ctx = multiprocessing.get_context("spawn")
        feed_stop = ctx.Event()
        sent: Synchronized[int] = ctx.Value("q", 0)
        feeder = ctx.Process(
            target=_feed, args=(settings, options, feed_stop, sent), name="payments", daemon=True
        )
        feeder.start()
        started = time.monotonic()
        try:
            while detector.is_alive():
                time.sleep(1.0)
                snap = runtime.snapshot()
                _view(
                    out,
                    {
                        "kafka": f"{endpoints.kafka_bootstrap} ({endpoints.kafka_origin})",
                        "redis": f"{redact_url(endpoints.redis_url)} ({endpoints.redis_origin})",
                        "published": f"{sent.value:,} transactions",
                        **snap,
                    },
                    clear,
                )
                if (
                    options.duration_s is not None
                    and time.monotonic() - started > options.duration_s
                ):
                    break
        except KeyboardInterrupt:
            pass
        finally:
            # Stop the payments first, then the detector, then (leaving the block) the services.
            feed_stop.set()
            feeder.join(30)
            if feeder.is_alive():
                feeder.terminate()
                feeder.join(5)
            stop.set()
            detector.join(60)
        return 0 if not runtime.failed else 3


def _create_topics(kafka: KafkaSettings, settings: Settings) -> None:
    admin.create_topics(
        kafka.bootstrap or "",
        settings.topics.names(),
        settings.detector.partitions,
        extra_config=dict(kafka.extra),
    )


def _feed(
    settings: Settings, options: DemoOptions, stop: ProcessEvent, sent: Synchronized[int]
) -> None:
    """The payments process: simulate, then publish at the demo's rate until ``stop``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the group: the parent stops us
    config = SimulatorConfig(
        customers=options.customers, terminals=options.terminals, days=options.days,
        seed=options.seed,
    )  # fmt: skip
    dataset = simulate(config)
    publisher = Publisher(settings.kafka)

    def records() -> Iterator[dict[str, object]]:
        for record in iter_records(dataset):
            if stop.is_set():
                return
            yield record

    def progress(n: int) -> None:
        sent.value += n  # one writer: no lock needed

    publish_stream(
        records(), publisher, settings.topics, rate=options.rate,
        label_delay_ms=options.label_delay_ms, drain_labels=False, on_progress=progress,
    )  # fmt: skip
