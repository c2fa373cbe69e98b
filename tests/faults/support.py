"""What the fault tests share: a detector child process, a background reader of its outputs,
and the check that Redis' aggregates equal an offline recomputation from the input."""

from __future__ import annotations

import dataclasses
import math
import re
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import redis
from confluent_kafka import Consumer, Producer
from redis.cluster import RedisCluster

from fraudstream.events import Transaction, decode_transaction
from fraudstream.features import FeatureConfig, MemoryFeatureStore, RedisFeatureStore
from fraudstream.settings import FeatureSettings, LimitSettings, TopicSettings

__all__ = [
    "Outputs",
    "aggregate_mismatches",
    "finish",
    "label_records",
    "metric",
    "metrics_url",
    "publish_raw",
    "start_detector",
    "valid_transactions",
    "wait_for",
    "wire",
]


def start_detector(env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``fraudstream detect`` as a child process, its stderr appended to ``log``."""
    with log.open("ab") as fh:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "fraudstream", "detect", "--metrics-port", "0"],
            env=dict(env), stderr=fh,
        )  # fmt: skip


def wait_for(done: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``done`` until it is true; fail the test naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.1)


def publish_raw(bootstrap: str, topic: str, records: Iterable[tuple[bytes, bytes | None]]) -> None:
    """Produce (value, key) pairs to ``topic`` as fast as the broker takes them."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for value, key in records:
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(60) == 0


class Outputs:
    """Reads the scores and dead-letter topics in the background, from the start.

    ``scores`` maps a transaction id to every Score published for it (as dicts), ``dead`` maps
    a dead letter's source (partition, offset) to how many dead letters it got.
    """

    def __init__(self, bootstrap: str, topics: TopicSettings, isolation: str) -> None:
        self.scores: dict[str, list[dict[str, Any]]] = {}
        self.dead: Counter[tuple[int, int]] = Counter()
        self.dead_reasons: dict[tuple[int, int], str] = {}
        self._topics = topics
        self._consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex,
            "auto.offset.reset": "earliest", "isolation.level": isolation,
        })  # fmt: skip
        self._consumer.subscribe([topics.scores, topics.dead_letters])
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._guarded, daemon=True)
        self._thread.start()

    def _guarded(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by counts(), not lost with the thread
            self._failure = exc

    def _run(self) -> None:
        while not self._stop.is_set():
            for msg in self._consumer.consume(2000, 0.2):
                if msg.error() is not None:
                    continue
                record = orjson.loads(msg.value() or b"{}")
                with self._lock:
                    if msg.topic() == self._topics.scores:
                        self.scores.setdefault(record["transaction_id"], []).append(record)
                    else:
                        source = (record["source"]["partition"], record["source"]["offset"])
                        self.dead[source] += 1
                        self.dead_reasons[source] = record["reason"]
        self._consumer.close()

    def counts(self) -> tuple[int, int]:
        """Distinct transaction ids scored, distinct sources dead-lettered."""
        if self._failure is not None:
            raise AssertionError("the output reader failed") from self._failure
        with self._lock:
            return len(self.scores), len(self.dead)

    def total_scores(self) -> int:
        with self._lock:
            return sum(len(v) for v in self.scores.values())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


def wire(record: Mapping[str, object]) -> tuple[bytes, bytes]:
    """A simulator record as a payment system would publish it: (value, key = card id)."""
    tx = {k: v for k, v in record.items() if k not in ("is_fraud", "fraud_scenario")}
    return orjson.dumps(tx), str(record["card_id"]).encode()


def finish(outputs: Outputs, *children: subprocess.Popen[bytes] | None) -> None:
    """After a test: close the reader, kill any child still running (a failed test's)."""
    outputs.close()
    for child in children:
        if child is not None and child.poll() is None:
            child.kill()
            child.wait(30)


def valid_transactions(records: Sequence[Mapping[str, object]]) -> list[Transaction]:
    """The wire records (simulator dicts) decoded as the detector decodes them."""
    out = []
    limits = LimitSettings()
    for record in records:
        tx = decode_transaction(wire(record)[0], limits)
        assert isinstance(tx, Transaction), tx
        out.append(tx)
    return out


def aggregate_mismatches(
    redis_url: str, prefix: str, counted: Sequence[Transaction], tol: float = 1e-6,
    *, cluster: bool = False,
) -> list[str]:  # fmt: skip
    """Compare the detector's aggregates in Redis with an in-memory recomputation.

    ``counted`` are the transactions the aggregates should hold, each once. One probe per card
    an hour after the last event, at a terminal cycled through all terminals, goes to both
    stores; every window of every card and terminal shows in the probes' features, so a
    transaction lost or counted twice shows as a difference. Returns the differences found.
    """
    config = FeatureConfig(key_prefix=prefix, **dataclasses.asdict(FeatureSettings()))
    oracle = MemoryFeatureStore(config)
    ordered = sorted(counted, key=lambda tx: tx.timestamp_ms)
    for i in range(0, len(ordered), 1000):
        oracle.features_for(ordered[i : i + 1000])
    t = ordered[-1].timestamp_ms + 3_600_000
    cards = sorted({tx.card_id for tx in counted})
    terminals = sorted({tx.terminal_id for tx in counted if tx.terminal_id is not None})
    size = max(len(cards), len(terminals))
    probes = [
        Transaction(f"probe-{i}", cards[i % len(cards)], 10.0, t, terminals[i % len(terminals)])
        for i in range(size)
    ]
    client = RedisCluster.from_url(redis_url) if cluster else redis.Redis.from_url(redis_url)
    try:
        online = RedisFeatureStore(client, config).features_for(probes)
    finally:
        client.close()
    offline = oracle.features_for(probes)
    out = []
    for probe, got, want in zip(probes, online, offline, strict=True):
        for name, value in want.items():
            if not math.isclose(got[name], value, rel_tol=tol, abs_tol=tol):
                out.append(f"{probe.card_id}/{probe.terminal_id} {name}: {got[name]} != {value}")
    return out


def metrics_url(log: Path, timeout_s: float = 60.0) -> str:
    """The metrics URL a detector logs at start (``metrics=<url>``), waiting for it."""
    wait_for(lambda: log.exists() and "metrics=" in log.read_text(), timeout_s, f"{log}'s URL")
    match = re.search(r"metrics=(\S+)", log.read_text())
    assert match is not None, f"no metrics URL in {log}"
    return match.group(1)


def metric(url: str, name: str) -> float:
    """One sample of the Prometheus text at ``url``, by its full name (labels included)."""
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def label_records(
    records: Sequence[Mapping[str, object]], delay_ms: int
) -> list[tuple[bytes, bytes]]:
    """Each record's verdict as published on the labels topic, ``delay_ms`` after it."""
    return [
        (orjson.dumps({"transaction_id": r["transaction_id"], "is_fraud": r["is_fraud"],
                       "label_time": r["timestamp"] + delay_ms}),  # type: ignore[operator]
         str(r["card_id"]).encode())
        for r in records
    ]  # fmt: skip
