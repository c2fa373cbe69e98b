"""What the backlog benchmarks (throughput, scale) share: a downstream reader of Scores, the
CPU of every process over a window, the steady middle of a drain, and stopping a child."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence

import orjson
import psutil
import redis
from confluent_kafka import Consumer, TopicPartition

from bench.procs import PARTITIONS, broker_process, cpu_seconds, redis_cpu
from fraudstream import services

__all__ = [
    "Cpu",
    "CpuMeter",
    "ScoreReader",
    "cpu_percent",
    "drain",
    "steady_window",
    "stop_process",
]

# Every Score's JSON starts with its transaction id (orjson keeps the encoder's key order):
# slicing it out costs ~0.1 us, decoding 1.5 KB of JSON ~5 us of the reader's shared core.
_ID_PREFIX = b'{"transaction_id":"'

Cpu = dict[str, float | None]


class ScoreReader:
    """The downstream consumer: every Score on a run's scores topic, from offset 0."""

    def __init__(self, bootstrap: str, topic: str, run: str) -> None:
        # Fetches wait for 64 KB (~40 Scores) or 50 ms: few requests, so the reader costs the
        # broker little; a Score is seen at most 50 ms late (the lag samples are 1 s apart).
        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"tp-{run}-reader",
                                   "fetch.min.bytes": 65536, "fetch.wait.max.ms": 50,
                                   "enable.auto.commit": False})  # fmt: skip
        self._consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        self.received = 0
        self.ids: set[bytes] = set()
        self.first_at = 0.0  # monotonic time of the first Score

    def read(self, timeout_s: float) -> None:
        """Take whatever arrives within ``timeout_s``."""
        n = len(_ID_PREFIX)
        for msg in self._consumer.consume(10_000, timeout_s):
            value = msg.value()
            if msg.error() is not None or not value:
                continue
            end = value.find(b'"', n) if value.startswith(_ID_PREFIX) else -1
            if end > 0:
                self.ids.add(value[n:end])
            else:
                self.ids.add(str(orjson.loads(value)["transaction_id"]).encode())
            self.received += 1
        if self.received and not self.first_at:
            self.first_at = time.monotonic()

    def close(self) -> None:
        """Leave (nothing committed: the reader's group is never reused)."""
        self._consumer.close()


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 30 s."""
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


class CpuMeter:
    """CPU seconds of the detector, the broker, Redis and this process, read on demand."""

    def __init__(self, endpoints: services.ServiceEndpoints, **procs: int) -> None:
        self._redis = redis.Redis.from_url(endpoints.redis_url)
        self._procs: dict[str, psutil.Process | None] = {
            name: psutil.Process(pid) for name, pid in procs.items()
        }
        self._procs["broker"] = broker_process(endpoints.kafka_bootstrap)
        self._procs["reader"] = psutil.Process()

    def read(self) -> tuple[float, Cpu]:
        """Now (monotonic) and every process's CPU seconds so far."""
        snap: Cpu = {k: cpu_seconds(p) for k, p in self._procs.items()}
        snap["redis"] = redis_cpu(self._redis)
        return time.monotonic(), snap

    def close(self) -> None:
        """Close the Redis connection the meter reads ``INFO cpu`` on."""
        self._redis.close()


def drain(
    reader: ScoreReader, meter: CpuMeter, n: int, max_s: float, every_s: float
) -> list[tuple[int, tuple[float, Cpu]]]:
    """Read Scores until ``n`` arrived or ``max_s`` passed; (Scores so far, CPU reading) about
    every ``every_s``, plus one at the start and one at the end."""
    samples = [(0, meter.read())]
    deadline = time.monotonic() + max_s
    while len(reader.ids) < n and time.monotonic() < deadline:
        reader.read(0.05)
        if time.monotonic() - samples[-1][1][0] >= every_s:
            samples.append((len(reader.ids), meter.read()))
    samples.append((len(reader.ids), meter.read()))
    return samples


def cpu_percent(a: tuple[float, Cpu], b: tuple[float, Cpu]) -> Cpu:
    span = max(b[0] - a[0], 1e-9)
    out: Cpu = {}
    for name, v0 in a[1].items():
        v1 = b[1].get(name)
        out[name] = None if v0 is None or v1 is None else round(100 * (v1 - v0) / span, 1)
    return out


def steady_window(
    samples: Sequence[tuple[int, tuple[float, Cpu]]],
    first_at: float,
    warmup_s: float,
    end_count: float,
) -> tuple[int, int, bool]:
    """Sample indexes bounding the steady middle, and whether it was found (else whole drain).

    >>> s = [(c, (float(t), {})) for t, c in enumerate([0, 5, 10, 20, 30, 40, 45])]
    >>> steady_window(s, first_at=1.0, warmup_s=1.0, end_count=40), steady_window(s, 1.0, 1.0, 10)
    ((2, 5, True), (0, 6, False))
    """
    start = next((i for i, (_, (t, _)) in enumerate(samples) if t >= first_at + warmup_s), None)
    end = next((i for i, (c, _) in enumerate(samples) if c >= end_count), len(samples) - 1)
    if start is not None and end > start and samples[end][1][0] - samples[start][1][0] >= 1.0:
        return start, end, True
    if samples[-1][0] == 0:  # nothing scored: a zero rate over the whole run
        return 0, len(samples) - 1, False
    begin = max(i for i, (c, _) in enumerate(samples) if c == 0)
    last = next(i for i, (c, _) in enumerate(samples) if c == samples[-1][0])
    return begin, max(last, begin + 1), False
