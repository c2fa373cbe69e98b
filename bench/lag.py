"""The bounded-lag check of ``python -m bench throughput``: open loop at a share of capacity.

A generator process publishes open-loop at ``rate`` for ``seconds`` to a detector at a given
batch size. Lag, sampled every second, is the transactions due by the schedule minus the Scores
received (a generator falling behind counts against the detector, as a payment system would see
it). Bounded = the lag's peak over the second half of the run is at most 1.5x its peak over the
first half plus 0.1 s of traffic (a lag growing linearly doubles); its least-squares trend is
reported too.
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.drain import Cpu, CpuMeter, ScoreReader, cpu_percent, stop_process
from bench.procs import PARTITIONS, cleanup_run, fresh_run, start_detector, wait_ready
from fraudstream import services
from fraudstream.settings import KafkaSettings, TopicSettings
from fraudstream.simulator import read_jsonl
from fraudstream.stream import admin
from fraudstream.stream.publish import Publisher, publish_stream

__all__ = ["BoundedLag", "run_bounded_lag"]


@dataclass
class BoundedLag:
    """The open-loop run at a share of the best capacity (lag in transactions)."""

    rate: int
    batch_size: int
    seconds: float
    published: int
    scored: int
    lost: int
    max_lag: int
    max_lag_s: float
    final_lag: int
    lag_trend_per_s: float
    bounded: bool
    generator_behind_s: float
    cpu_percent: Cpu
    lag_samples: list[tuple[float, int]] = field(default_factory=list)


def _generate(
    bootstrap: str,
    topics: TopicSettings,
    rate: int,
    path: str,
    n: int,
    label_delay_ms: int,
    ready: Any,
    start_box: Any,
    behind_box: Any,
) -> None:
    """The generator process: read its records, say ready, wait for the start time, publish."""
    records = list(itertools.islice(read_jsonl(path), n))
    # The project's producer defaults (linger 5 ms), as a payment gateway would batch.
    publisher = Publisher(KafkaSettings(bootstrap=bootstrap))
    ready.set()
    while start_box.value == 0.0:
        time.sleep(0.01)
    stats = publish_stream(
        records,
        publisher,
        topics,
        rate=rate,
        label_delay_ms=label_delay_ms,
        drain_labels=False,
        start=start_box.value,
    )
    behind_box.value = stats.behind_schedule_s


def run_bounded_lag(
    endpoints: services.ServiceEndpoints,
    records_path: Path,
    available: int,
    rate: int,
    batch_size: int,
    seconds: float,
    label_delay_ms: int,
    warmup_s: float,
) -> BoundedLag:
    """Publish open-loop at ``rate`` for ``seconds``; sample the detector's lag every second."""
    n = min(int(rate * seconds), available)
    seconds = n / rate
    run, topics = fresh_run(f"tp-lag{rate}")
    bootstrap = endpoints.kafka_bootstrap
    admin.create_topics(bootstrap, topics.names(), PARTITIONS)
    ctx = mp.get_context("spawn")
    ready, start_box, behind_box = ctx.Event(), ctx.Value("d", 0.0), ctx.Value("d", 0.0)
    generator = ctx.Process(
        target=_generate,
        name="generator",
        args=(
            bootstrap,
            topics,
            rate,
            str(records_path),
            n,
            label_delay_ms,
            ready,
            start_box,
            behind_box,
        ),
    )
    generator.start()
    reader = ScoreReader(bootstrap, topics.scores, run)
    detector, port = start_detector(endpoints, topics, run, batch_size)
    lags: list[tuple[float, int]] = []
    meter: CpuMeter | None = None
    try:
        wait_ready(port, detector)
        while not ready.wait(0.5):
            if not generator.is_alive():
                raise RuntimeError(
                    f"generator exited with {generator.exitcode} before it was ready"
                )
        assert generator.pid is not None
        meter = CpuMeter(endpoints, detector=detector.pid, generator=generator.pid)
        start = time.monotonic() + 0.5
        start_box.value = start
        time.sleep(0.5)
        cpu0 = meter.read()
        next_sample = start + 1.0
        while time.monotonic() < start + seconds:
            reader.read(0.05)
            now = time.monotonic()
            if now >= next_sample:
                due = min(n, int((now - start) * rate))
                lags.append((round(now - start, 2), max(0, due - len(reader.ids))))
                next_sample += 1.0
        cpu1 = meter.read()
        final_lag = n - len(reader.ids)
        deadline = time.monotonic() + 60.0
        while len(reader.ids) < n and time.monotonic() < deadline:
            reader.read(0.1)
    finally:
        if meter is not None:
            meter.close()
        stop_process(detector)
        reader.close()
        generator.join(30)
        if generator.is_alive():
            generator.kill()
        cleanup_run(endpoints, topics, run)
    steady = [(t, lag) for t, lag in lags if t >= warmup_s] or lags
    trend = _slope(steady)
    max_lag = max((lag for _, lag in lags), default=0)
    return BoundedLag(
        rate=rate,
        batch_size=batch_size,
        seconds=round(seconds, 2),
        published=n,
        scored=len(reader.ids),
        lost=n - len(reader.ids),
        max_lag=max_lag,
        max_lag_s=round(max_lag / rate, 3),
        final_lag=final_lag,
        lag_trend_per_s=round(trend, 1),
        bounded=_bounded(steady, rate),
        generator_behind_s=round(behind_box.value, 3),
        cpu_percent=cpu_percent(cpu0, cpu1),
        lag_samples=lags,
    )


def _bounded(points: Sequence[tuple[float, int]], rate: int) -> bool:
    """Whether the lag stays bounded: its peak over the second half of the run is at most 1.5x
    its peak over the first half, plus 0.1 s of traffic. A lag growing linearly doubles; one
    that only fluctuates does not.

    >>> _bounded([(1.0, 300), (2.0, 900), (3.0, 200), (4.0, 800)], 100)
    True
    >>> _bounded([(1.0, 100), (2.0, 200), (3.0, 300), (4.0, 400)], 100)
    False
    """
    half = len(points) // 2
    if half == 0:
        return True
    first = max(lag for _, lag in points[:half])
    second = max(lag for _, lag in points[half:])
    return second <= 1.5 * first + 0.1 * rate


def _slope(points: Sequence[tuple[float, int]]) -> float:
    """Least-squares slope of ``points`` (0 with fewer than two).

    >>> _slope([(0.0, 1), (1.0, 3), (2.0, 5)]), _slope([(0.0, 7)])
    (2.0, 0.0)
    """
    if len(points) < 2:
        return 0.0
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    var = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / var if var else 0.0
