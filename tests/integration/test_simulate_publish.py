"""`fraudstream simulate --publish` through a real broker: every transaction and label arrives."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest
from confluent_kafka import Consumer

from fraudstream.cli import main
from fraudstream.events import Label, Transaction, decode_label, decode_transaction
from fraudstream.settings import LimitSettings
from fraudstream.simulator import SimulatorConfig, iter_records, simulate

DAY_MS = 86_400_000


def _drain(bootstrap: str, topic: str, expected: int) -> list[tuple[bytes | None, bytes]]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"reader-{topic}",
         "auto.offset.reset": "earliest", "enable.auto.commit": False}
    )  # fmt: skip
    consumer.subscribe([topic])
    out: list[tuple[bytes | None, bytes]] = []
    try:
        for _ in range(200):
            for msg in consumer.consume(1000, timeout=0.5):
                assert msg.error() is None, msg.error()
                out.append((msg.key(), msg.value()))
            if len(out) >= expected:
                break
    finally:
        consumer.close()
    return out


@pytest.mark.kafka
def test_simulate_publish_sends_every_transaction_and_a_label_after_the_delay(
    kafka_bootstrap: str,
    tmp_topic: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tx_topic, label_topic = tmp_topic(), tmp_topic()
    monkeypatch.setenv("FRAUDSTREAM_KAFKA_BOOTSTRAP", kafka_bootstrap)
    argv = ["simulate", "--customers", "20", "--terminals", "30", "--days", "5",
            "--publish", "--label-delay", "1d", "--no-progress",
            "--topic-transactions", tx_topic, "--topic-labels", label_topic]  # fmt: skip
    assert main(argv) == 0

    expected = list(iter_records(simulate(SimulatorConfig(customers=20, terminals=30, days=5))))
    txs = _drain(kafka_bootstrap, tx_topic, len(expected))
    labels = _drain(kafka_bootstrap, label_topic, len(expected))
    assert len(txs) == len(labels) == len(expected)

    limits = LimitSettings()
    decoded = [decode_transaction(value, limits) for _, value in txs]
    assert all(isinstance(tx, Transaction) for tx in decoded)
    assert [tx.transaction_id for tx in decoded] == [r["transaction_id"] for r in expected]  # type: ignore[union-attr]
    assert all(key == str(orjson.loads(value)["card_id"]).encode() for key, value in txs)
    assert all(b"is_fraud" not in value for _, value in txs)

    truth = {r["transaction_id"]: (r["is_fraud"], r["timestamp"]) for r in expected}
    for _, value in labels:
        label = decode_label(value, limits)
        assert isinstance(label, Label)
        is_fraud, ts = truth[label.transaction_id]
        assert label.is_fraud == is_fraud
        assert label.label_time_ms == ts + DAY_MS
