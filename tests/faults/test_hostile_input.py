"""Bad input at scale: 100,000 hostile records (bench/hostile.py, and a hundred with no value)
mixed at random into a few thousand valid transactions, sent live to one `fraudstream detect`
process. Each hostile record lands on the dead-letter topic once, with its reason; each valid
transaction is scored once; the process never exits until it is told to, and then cleanly.

The same valid traffic, on the same schedule, also runs alone: the valid throughput and latency
of both runs are printed and recorded as numbers, not pass marks (speed targets belong to the
benchmarks)."""

from __future__ import annotations

import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import orjson
import psutil
import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer
from prometheus_client.parser import text_string_to_metric_families

from bench.hostile import Hostile, hostile_records, tolerated_records
from bench.procs import detector_env
from fraudstream.events import DeadLetter, Score, decode_score
from fraudstream.settings import TopicSettings
from fraudstream.simulator import SimulatorConfig, iter_records, simulate

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]

N_HOSTILE = 100_000
N_TOLERATED = 500  # odd but valid records (braces, quotes, emoji in ids...): scored like others
N_TOMBSTONES = 100  # records with no value at all (null, not empty): refused as invalid JSON
SEED = 20261129
DATA = SimulatorConfig(customers=150, terminals=300, days=15, seed=SEED)
SEND_S = 15.0  # both runs send their records evenly over this long

_Valid = tuple[str, bytes, bytes | None]  # transaction id, value, key
_Send = tuple[float, bytes | None, bytes | None]  # due (s after the start), value, key


@dataclass
class _Run:
    """What one detector run produced, and when."""

    sent_at: dict[str, float] = field(default_factory=dict)  # valid id -> intended send (s)
    where: list[tuple[int, int]] = field(default_factory=list)  # (partition, offset) per send
    scores: list[Score] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    t0_ms: float = 0.0  # wall clock of the schedule's start
    log: str = ""
    metrics: str = ""

    def numbers(self, name: str) -> dict[str, float]:
        """Valid scores per second over the run; their latency from the intended send, and
        the part of it inside the detector (from the batch's receipt)."""
        at = sorted(s.scored_at_ms for s in self.scores)
        lat = sorted(s.scored_at_ms - self.t0_ms - 1000 * self.sent_at[s.transaction_id]
                     for s in self.scores)  # fmt: skip
        inside = sorted(s.processing_us / 1000 for s in self.scores)  # in the detector
        return {
            f"valid_tx_per_s_{name}": round((len(at) - 1) * 1000 / max(1, at[-1] - at[0])),
            f"valid_p50_ms_{name}": round(lat[len(lat) // 2], 1),
            f"valid_p99_ms_{name}": round(lat[len(lat) * 99 // 100], 1),
            f"valid_processing_p99_ms_{name}": round(inside[len(inside) * 99 // 100], 1),
        }


def _key(rng: random.Random) -> bytes | None:
    """A hostile record's key: none, or random bytes."""
    return None if rng.random() < 0.5 else rng.randbytes(rng.randrange(1, 16))


def _topics(tmp_topic: Callable[..., str]) -> TopicSettings:
    return TopicSettings(
        transactions=tmp_topic(3), labels=tmp_topic(), scores=tmp_topic(), flags=tmp_topic(),
        dead_letters=tmp_topic(),
    )  # fmt: skip


def _delivered(
    where: list[tuple[int, int]], errors: list[object], i: int, err: KafkaError | None,
    msg: Message,
) -> None:  # fmt: skip
    if err is not None:
        errors.append(err)
    else:
        where[i] = (msg.partition() or 0, msg.offset() or 0)


def _send(
    bootstrap: str, topic: str, schedule: list[_Send], run: _Run, errors: list[object]
) -> None:
    """Produce each record at its due time; note where each landed."""
    try:
        run.where = [(-1, -1)] * len(schedule)
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        run.t0_ms = time.time() * 1000
        t0 = time.monotonic()
        for i, (due, value, key) in enumerate(schedule):
            ahead = t0 + due - time.monotonic()
            if ahead > 0.002:
                time.sleep(ahead)
            cb = partial(_delivered, run.where, errors, i)
            while True:
                try:
                    producer.produce(topic, value, key, on_delivery=cb)
                    break
                except BufferError:  # local queue full: let deliveries drain it
                    producer.poll(0.05)
            producer.poll(0)
        if producer.flush(120):
            errors.append("undelivered records")
    except Exception as exc:  # reported by the test thread
        errors.append(exc)


def _metrics_address(log_path: Path, proc: subprocess.Popen[bytes]) -> str:
    """The detector's metrics URL once it is ready (partitions assigned, model loaded)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log_path.read_text()[-3000:]
        found = re.search(r"started metrics=(\S+)/metrics", log_path.read_text())
        if found:
            try:
                with urllib.request.urlopen(f"{found.group(1)}/readyz", timeout=1) as resp:
                    if resp.status == 200:
                        return found.group(1)
            except OSError:
                pass
        time.sleep(0.2)
    raise AssertionError("detector not ready in time")


def _run(
    bootstrap: str, env: dict[str, str], topics: TopicSettings, schedule: list[_Send],
    run: _Run, n_dead: int, log_path: Path,
) -> _Run:  # fmt: skip
    """One detector, sent ``schedule`` live; outputs read until every input has one. It must be
    the same live process throughout; SIGTERM then stops it with exit code 0."""
    with log_path.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fraudstream", "detect", "--metrics-port", "0"],
            env=env, stderr=fh,
        )  # fmt: skip
    born = psutil.Process(proc.pid).create_time()  # with the pid: this very process
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex,
                         "auto.offset.reset": "earliest"})  # fmt: skip
    consumer.subscribe([topics.scores, topics.dead_letters])
    errors: list[object] = []
    sender = threading.Thread(
        target=_send, args=(bootstrap, topics.transactions, schedule, run, errors)
    )
    try:
        address = _metrics_address(log_path, proc)
        sender.start()
        n_scores = len(run.sent_at)
        deadline = time.monotonic() + SEND_S + 180
        extra_until = None  # once complete, read 2 s more: a duplicate output would show
        while extra_until is None or time.monotonic() < extra_until:
            assert proc.poll() is None, f"detector exited: {log_path.read_text()[-3000:]}"
            assert time.monotonic() < deadline, (
                f"{len(run.scores)}/{n_scores} scores, {len(run.dead)}/{n_dead} dead letters"
            )
            for msg in consumer.consume(5000, 0.1):
                assert msg.error() is None, msg.error()
                if msg.topic() == topics.scores:
                    run.scores.append(decode_score(msg.value() or b""))
                else:
                    run.dead.append(DeadLetter.from_json(msg.value() or b""))
            if extra_until is None and len(run.scores) >= n_scores and len(run.dead) >= n_dead:
                extra_until = time.monotonic() + 2.0
        sender.join()
        assert not errors, errors[:5]
        # Never exited, never restarted: the process started is the one running, started once.
        assert proc.poll() is None
        assert psutil.Process(proc.pid).create_time() == born
        assert log_path.read_text().count("started metrics=") == 1
        with urllib.request.urlopen(f"{address}/metrics", timeout=10) as resp:
            run.metrics = resp.read().decode()
    finally:
        consumer.close()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
        sender.join(60)
    run.log = log_path.read_text()
    assert code == 0, run.log[-3000:]
    assert "Traceback" not in run.log, run.log[-3000:]
    assert "feature store failed" not in run.log, run.log[-3000:]  # odd ids broke no Redis call
    return run


@pytest.mark.timeout(600)
def test_a_hundred_thousand_hostile_records_are_dead_lettered_and_valid_traffic_is_scored_once(
    kafka_bootstrap: str,
    redis_url: str,
    redis_prefix: str,
    tmp_topic: Callable[..., str],
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    rng = random.Random(SEED)
    valid: list[_Valid] = []
    for record in iter_records(simulate(DATA)):
        wire = {k: v for k, v in record.items() if k not in ("is_fraud", "fraud_scenario")}
        key = str(wire["card_id"]).encode()
        valid.append((str(wire["transaction_id"]), orjson.dumps(wire), key))
    span_ms = DATA.days * 86_400_000
    for tx_id, value in tolerated_records(N_TOLERATED, SEED, span_ms=span_ms):
        valid.insert(rng.randrange(len(valid) + 1), (tx_id, value, None))
    valid_ids = Counter(tx_id for tx_id, _, _ in valid)
    assert max(valid_ids.values()) == 1
    hostile = list(hostile_records(N_HOSTILE, SEED))
    tombstone = Hostile(b"", "invalid_json", None, "tombstone")
    hostile[len(hostile) :] = [tombstone] * N_TOMBSTONES

    # Valid records keep their order; hostile ones fall between them at random.
    slots = [True] * len(valid) + [False] * len(hostile)
    rng.shuffle(slots)
    good, bad = iter(valid), iter(hostile)
    mixed: list[_Valid | Hostile] = [next(good) if is_valid else next(bad) for is_valid in slots]
    step = SEND_S / len(mixed)
    alone, both = _Run(), _Run()
    alone_schedule: list[_Send] = []
    schedule: list[_Send] = []
    for i, m in enumerate(mixed):
        if isinstance(m, Hostile):
            schedule.append((i * step, None if m is tombstone else m.value, _key(rng)))
        else:
            alone.sent_at[m[0]] = both.sent_at[m[0]] = i * step
            alone_schedule.append((i * step, m[1], m[2]))
            schedule.append((i * step, m[1], m[2]))

    # The valid traffic alone, on the schedule it has among the hostile records.
    topics = _topics(tmp_topic)
    env = detector_env(kafka_bootstrap, redis_url, f"{redis_prefix}alone", topics)
    _run(kafka_bootstrap, env, topics, alone_schedule, alone, 0, tmp_path / "alone.log")
    assert Counter(s.transaction_id for s in alone.scores) == valid_ids
    assert not alone.dead

    topics = _topics(tmp_topic)
    env = detector_env(kafka_bootstrap, redis_url, f"{redis_prefix}mixed", topics)
    _run(kafka_bootstrap, env, topics, schedule, both, len(hostile), tmp_path / "mixed.log")
    # Every valid transaction scored exactly once; every hostile record dead-lettered exactly
    # once, with its own reason and field, its bytes untouched, naming where it came from.
    assert Counter(s.transaction_id for s in both.scores) == valid_ids
    expected = {both.where[i]: m for i, m in enumerate(mixed) if isinstance(m, Hostile)}
    sources = Counter((d.source_partition, d.source_offset) for d in both.dead)
    assert sources.most_common(1)[0][1] == 1
    assert set(sources) == set(expected)
    wrong: Counter[tuple[str, str, str | None, str, str | None]] = Counter()
    for dead in both.dead:
        h = expected[(dead.source_partition, dead.source_offset)]
        assert dead.source_topic == topics.transactions
        assert dead.value == (None if h is tombstone else h.value)
        if (dead.reason, dead.field) != (h.reason, h.field):
            wrong[(h.kind, h.reason, h.field, dead.reason, dead.field)] += 1
    assert not wrong, wrong.most_common(10)  # (kind, expected reason, field, got reason, field)
    counted = {
        s.labels["reason"]: s.value
        for family in text_string_to_metric_families(both.metrics)
        for s in family.samples
        if s.name == "fraudstream_dead_letters_total"
    }
    assert counted == Counter(h.reason for h in hostile)  # the metric counts them, by reason

    # Speed is recorded, not asserted (the benchmarks hold the targets).
    numbers = {
        **alone.numbers("alone"),
        **both.numbers("with_hostile"),
        "valid_sent_per_s": round(len(valid) / SEND_S),
        "hostile_sent_per_s": round(len(hostile) / SEND_S),
        "hostile_mb": round(sum(len(h.value) for h in hostile) / 1e6, 1),
    }
    for name, value in numbers.items():
        record_property(name, value)
    print(f"\nhostile input: {numbers}")
