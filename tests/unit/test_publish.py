"""Publishing order: each label is released once the stream's event time reaches its due time."""

from __future__ import annotations

import orjson

from fraudstream.settings import TopicSettings
from fraudstream.stream.publish import PublishStats, publish_stream

DAY = 86_400_000


class RecordingSink:
    """Keeps what would be sent, in order; the real Kafka path is tested in integration."""

    def __init__(self) -> None:
        self.stats = PublishStats()
        self.sent: list[tuple[str, dict[str, object], bytes | None]] = []

    def send(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        self.sent.append((topic, orjson.loads(value), key))
        self.stats.delivered += 1

    def poll(self) -> None:
        pass

    def flush(self, timeout_s: float = 30.0) -> int:
        return 0


def _records(times_ms: list[int]) -> list[dict[str, object]]:
    return [
        {"transaction_id": str(i), "card_id": f"c{i % 3}", "terminal_id": "t", "amount": 1.0,
         "timestamp": t, "is_fraud": i % 2 == 0, "fraud_scenario": 1 if i % 2 == 0 else 0}
        for i, t in enumerate(times_ms)
    ]  # fmt: skip


def test_labels_follow_their_transactions_by_the_delay_in_event_time() -> None:
    sink = RecordingSink()
    times = [0, DAY // 2, DAY, DAY + 1, 3 * DAY, 10 * DAY]
    stats = publish_stream(_records(times), sink, TopicSettings(), rate=None, label_delay_ms=DAY)
    assert (stats.transactions, stats.labels) == (6, 6)
    # In a time-ordered stream, a label goes out after every transaction earlier than its due
    # time and right before the first transaction at or past it (or at the end).
    tx_times = [int(str(v["timestamp"])) for t, v, _ in sink.sent if t == "transactions"]
    for pos, (topic, value, _) in enumerate(sink.sent):
        if topic != "labels":
            continue
        due = int(str(value["label_time"]))
        before = [int(str(v["timestamp"])) for t, v, _ in sink.sent[:pos] if t == "transactions"]
        after = [int(str(v["timestamp"])) for t, v, _ in sink.sent[pos:] if t == "transactions"]
        assert all(ts < due for ts in before)
        assert not after or after[0] >= due
    assert all("is_fraud" not in v for t, v, _ in sink.sent if t == "transactions")
    assert tx_times == times
    order = [(t, v.get("transaction_id")) for t, v, _ in sink.sent]
    # The label of tx 0 (due at DAY) goes out before tx 2 (at DAY), not before tx 1 (at DAY/2).
    assert order.index(("labels", "0")) == order.index(("transactions", "2")) - 1
    assert order.index(("labels", "0")) > order.index(("transactions", "1"))
    # Labels still pending at the end are drained; every label carries the truth and due time.
    labels = {v["transaction_id"]: v for t, v, _ in sink.sent if t == "labels"}
    assert labels["5"]["label_time"] == 11 * DAY
    assert labels["4"]["is_fraud"] is True
    assert labels["3"]["is_fraud"] is False


def test_without_a_delay_no_labels_are_published_and_keys_are_card_ids() -> None:
    sink = RecordingSink()
    publish_stream(_records([0, 1, 2]), sink, TopicSettings(), rate=None, label_delay_ms=None)
    assert [t for t, _, _ in sink.sent] == ["transactions"] * 3
    assert [k for _, _, k in sink.sent] == [b"c0", b"c1", b"c2"]


def test_pacing_is_open_loop_from_the_intended_send_times() -> None:
    sink = RecordingSink()
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    publish_stream(
        _records([0, 1, 2, 3]), sink, TopicSettings(), rate=10.0, label_delay_ms=None,
        clock=lambda: now[0], sleep=sleep,
    )  # fmt: skip
    assert [round(s, 6) for s in slept] == [0.1, 0.1, 0.1]
