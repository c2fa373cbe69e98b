"""Records and JSON Lines: the wire Transaction contract, in transaction_id order."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pytest

from fraudstream.events import Transaction, decode_transaction
from fraudstream.settings import LimitSettings
from fraudstream.simulator import SimulatedDataset, iter_records, read_jsonl, write_jsonl

BASE_KEYS = ["transaction_id", "card_id", "terminal_id", "amount", "timestamp"]
TRUTH_KEYS = ["is_fraud", "fraud_scenario"]
EXTRA_KEYS = ["channel", "merchant_category", "country", "lat", "lon"]


def test_records_carry_the_wire_fields_and_the_truth_in_order(small: SimulatedDataset) -> None:
    records = list(iter_records(small))
    assert len(records) == len(small)
    start_ms = int(small.start.timestamp() * 1000)
    for i, record in enumerate(records):
        assert list(record) == BASE_KEYS + TRUTH_KEYS
        assert record["transaction_id"] == str(i)
        assert record["card_id"] == str(small.customer[i])
        assert record["terminal_id"] == str(small.terminal[i])
        assert record["timestamp"] == start_ms + 1000 * int(small.seconds[i])
        assert record["is_fraud"] is bool(small.is_fraud[i])
        assert record["fraud_scenario"] == int(small.fraud_scenario[i])
        assert type(record["timestamp"]) is int
        assert type(record["amount"]) is float


def test_amounts_have_two_decimals_even_after_scenario_3(small: SimulatedDataset) -> None:
    for record in iter_records(small):
        text = orjson.dumps(record["amount"]).decode()
        assert len(text.partition(".")[2]) <= 2, text


def test_extra_fields_appear_only_when_their_options_are_on(
    all_options: SimulatedDataset,
) -> None:
    record = next(iter_records(all_options))
    assert list(record) == BASE_KEYS + EXTRA_KEYS + TRUTH_KEYS
    assert record["channel"] in {"card_present", "card_not_present"}


@pytest.mark.parametrize("name", ["small", "all_options"])
def test_records_decode_as_wire_transactions(name: str, request: pytest.FixtureRequest) -> None:
    dataset: SimulatedDataset = request.getfixturevalue(name)
    limits = LimitSettings()
    for record in iter_records(dataset):
        tx = decode_transaction(orjson.dumps(record), limits)
        assert isinstance(tx, Transaction), tx
        assert tx.timestamp_ms == record["timestamp"]


def test_jsonl_written_to_a_path_reads_back_as_the_records(
    all_options: SimulatedDataset, tmp_path: Path
) -> None:
    path = tmp_path / "tx.jsonl"
    assert write_jsonl(all_options, path) == len(all_options)
    assert list(read_jsonl(path)) == list(iter_records(all_options))
    assert path.read_bytes().count(b"\n") == len(all_options)


def test_jsonl_can_be_written_to_an_open_binary_file(small: SimulatedDataset) -> None:
    buffer = io.BytesIO()
    assert write_jsonl(small, buffer) == len(small)
    lines = buffer.getvalue().splitlines()
    assert [orjson.loads(line) for line in lines] == list(iter_records(small))


def test_read_jsonl_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"a": 1}\n\n{"a": 2}\n')
    assert list(read_jsonl(path)) == [{"a": 1}, {"a": 2}]


def test_progress_bar_goes_to_stderr_only_when_asked(
    small: SimulatedDataset, capsys: pytest.CaptureFixture[str]
) -> None:
    write_jsonl(small, io.BytesIO())
    assert capsys.readouterr().err == ""
    write_jsonl(small, io.BytesIO(), progress=True)
    captured = capsys.readouterr()
    assert "jsonl" in captured.err
    assert captured.out == ""
