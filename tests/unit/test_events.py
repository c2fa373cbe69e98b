"""The event contract: decoding never raises, every refusal has a specific reason."""

from __future__ import annotations

import math
import random
from collections import Counter
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.hostile import hostile_records, tolerated_records, valid_record
from fraudstream.events import (
    REASON_CODES,
    DeadLetter,
    Label,
    Reason,
    Rejection,
    Score,
    Transaction,
    decode_label,
    decode_score,
    decode_transaction,
    encode_label,
    encode_score,
    encode_transaction,
    json_schema,
)
from fraudstream.settings import LimitSettings

LIMITS = LimitSettings()
TX_SCHEMA = jsonschema.Draft202012Validator(json_schema("transaction"))
LABEL_SCHEMA = jsonschema.Draft202012Validator(json_schema("label"))
SCORE_SCHEMA = jsonschema.Draft202012Validator(json_schema("score"))
DLQ_SCHEMA = jsonschema.Draft202012Validator(json_schema("dead_letter"))

ids = st.text(st.characters(codec="utf-8", exclude_categories=["Cc"]), min_size=1, max_size=128)
valid_transactions = st.fixed_dictionaries(
    {
        "transaction_id": ids,
        "card_id": ids,
        "amount": st.floats(0, 1e9, allow_nan=False) | st.integers(0, 10**9),
        "timestamp": st.integers(LIMITS.min_timestamp_ms, LIMITS.max_timestamp_ms),
    },
    optional={
        "terminal_id": ids,
        "currency": st.from_regex(r"[A-Z]{3}", fullmatch=True),
        "channel": st.sampled_from(["card_present", "card_not_present"]),
        "merchant_category": st.from_regex(r"[0-9]{4}", fullmatch=True),
        "country": st.from_regex(r"[A-Z]{2}", fullmatch=True),
        "lat": st.floats(-90, 90),
        "lon": st.floats(-180, 180),
        "unknown_extra_field": st.integers(-(2**63), 2**63 - 1),
    },
)


def _valid_tx() -> dict[str, Any]:
    return {"transaction_id": "t1", "card_id": "c1", "amount": 12.5, "timestamp": 1522540831000}


@given(valid_transactions)
def test_valid_transactions_decode_to_their_values_and_match_the_schema(
    obj: dict[str, Any],
) -> None:
    tx = decode_transaction(orjson.dumps(obj), LIMITS)
    assert isinstance(tx, Transaction), tx
    assert tx.transaction_id == obj["transaction_id"]
    assert tx.amount == float(obj["amount"])
    assert tx.timestamp_ms == obj["timestamp"]
    assert tx.currency == obj.get("currency", LIMITS.default_currency)
    TX_SCHEMA.validate(obj)
    assert decode_transaction(encode_transaction(tx), LIMITS) == tx


@pytest.mark.parametrize(
    ("stamp", "expected_ms"),
    [
        ("2018-04-01T00:00:31+00:00", 1522540831000),
        ("2018-04-01T00:00:31Z", 1522540831000),
        ("2018-04-01T02:00:31.250+02:00", 1522540831250),
        (1522540831000, 1522540831000),
    ],
)
def test_timestamps_accept_iso_with_offset_and_epoch_ms(stamp: object, expected_ms: int) -> None:
    tx = decode_transaction(orjson.dumps({**_valid_tx(), "timestamp": stamp}), LIMITS)
    assert isinstance(tx, Transaction)
    assert tx.timestamp_ms == expected_ms


BAD_RECORDS: list[tuple[bytes, str, str | None]] = [
    (b"", "invalid_json", None),
    (b"{", "invalid_json", None),
    (b'{"transaction_id": "t1",, }', "invalid_json", None),
    (b"\xff\xfe\x00garbage", "not_utf8", None),
    (b'{"transaction_id": "\xc3\x28"}', "not_utf8", None),
    (b'{"transaction_id":"t","card_id":"c","amount":NaN,"timestamp":1522540831000}',
     "non_finite_number", None),
    (b'{"transaction_id":"t","card_id":"c","amount":Infinity,"timestamp":1522540831000}',
     "non_finite_number", None),
    (b'{"transaction_id":"t","card_id":"c","amount":1e999,"timestamp":1522540831000}',
     "non_finite_number", None),
    (b'{"transaction_id":"t","card_id":"c","amount":1000000000000000000000000000000,'
     b'"timestamp":1522540831000}', "amount_too_large", "amount"),
    (b'{"transaction_id":"t","card_id":"c","amount":1,"timestamp":100000000000000000000}',
     "wrong_type", "timestamp"),
    (b'{"transaction_id":"t","card_id":"c","amount":-Infinity,"timestamp":1522540831000}',
     "non_finite_number", None),
    (b'{"transaction_id":"t","card_id":"c","lat":NaN,"note":"x"}', "non_finite_number", None),
    # A truncated record that merely mentions Infinity in a string is broken JSON, not a NaN.
    (b'{"transaction_id":"t","note":"Avengers: Infinity War","amount":1', "invalid_json", None),
    (b'{"transaction_id":"t","note":"to Infinity and beyond"', "invalid_json", None),
    (b"[1, 2]", "not_an_object", None),
    (b'"just a string"', "not_an_object", None),
    (b"null", "not_an_object", None),
]  # fmt: skip


@pytest.mark.parametrize(("data", "reason", "field"), BAD_RECORDS)
def test_malformed_bytes_get_a_specific_reason(data: bytes, reason: str, field: str | None) -> None:
    result = decode_transaction(data, LIMITS)
    assert isinstance(result, Rejection)
    assert (result.reason, result.field) == (reason, field)
    assert result.message


FIELD_CASES: list[tuple[dict[str, Any], str, str]] = [
    ({"transaction_id": None}, "missing_field", "transaction_id"),
    ({"card_id": None}, "missing_field", "card_id"),
    ({"amount": None}, "missing_field", "amount"),
    ({"timestamp": None}, "missing_field", "timestamp"),
    ({"transaction_id": 17}, "wrong_type", "transaction_id"),
    ({"card_id": ["c"]}, "wrong_type", "card_id"),
    ({"amount": "12.5"}, "wrong_type", "amount"),
    ({"amount": True}, "wrong_type", "amount"),
    ({"timestamp": 1.5e12}, "wrong_type", "timestamp"),
    ({"timestamp": {"s": 1}}, "wrong_type", "timestamp"),
    ({"transaction_id": ""}, "empty_value", "transaction_id"),
    ({"card_id": "c" * 129}, "value_too_long", "card_id"),
    ({"card_id": "victim\nT1"}, "invalid_id", "card_id"),  # the feature store joins ids by \n
    ({"transaction_id": "t\x00"}, "invalid_id", "transaction_id"),
    ({"terminal_id": "\x85T"}, "invalid_id", "terminal_id"),
    ({"card_id": "c\x7f"}, "invalid_id", "card_id"),
    ({"terminal_id": "x" * 1000}, "value_too_long", "terminal_id"),
    ({"amount": -0.01}, "negative_amount", "amount"),
    ({"amount": 1e12}, "amount_too_large", "amount"),
    ({"timestamp": "yesterday"}, "invalid_timestamp", "timestamp"),
    ({"timestamp": "2018-04-01T00:00:31"}, "invalid_timestamp", "timestamp"),
    ({"timestamp": 1522540831}, "timestamp_out_of_range", "timestamp"),
    ({"timestamp": "9999-12-31T23:59:59+00:00"}, "timestamp_out_of_range", "timestamp"),
    ({"channel": "online"}, "invalid_enum", "channel"),
    ({"currency": "euro"}, "invalid_code", "currency"),
    ({"country": "FRA"}, "invalid_code", "country"),
    ({"merchant_category": "59a1"}, "invalid_code", "merchant_category"),
    ({"merchant_category": 5411}, "wrong_type", "merchant_category"),
    ({"lat": 91.0}, "invalid_coordinate", "lat"),
    ({"lon": -180.5}, "invalid_coordinate", "lon"),
    ({"lat": "north"}, "wrong_type", "lat"),
]


@pytest.mark.parametrize(("change", "reason", "field"), FIELD_CASES)
def test_bad_fields_get_a_specific_reason_naming_the_field(
    change: dict[str, Any], reason: str, field: str
) -> None:
    obj = {**_valid_tx(), **change}
    obj = {k: v for k, v in obj.items() if v is not None}
    result = decode_transaction(orjson.dumps(obj), LIMITS)
    assert isinstance(result, Rejection), result
    assert (result.reason, result.field) == (reason, field)
    assert result.message.startswith(f"{field}: ")


@pytest.mark.parametrize("field", ["transaction_id", "amount", "timestamp", "channel", "lat"])
def test_a_value_nested_a_thousand_deep_is_rejected_not_raised(field: str) -> None:
    # 2 kB of brackets: within orjson's depth limit (1,024), beyond repr()'s recursion limit.
    nested = b"[" * 1000 + b"]" * 1000
    data = orjson.dumps(_valid_tx())[:-1] + b',"' + field.encode() + b'":' + nested + b"}"
    result = decode_transaction(data, LIMITS)
    assert isinstance(result, Rejection)
    assert result.field == field
    assert len(result.message) < 200
    label = decode_label(b'{"transaction_id":' + nested + b',"is_fraud":true}', LIMITS)
    assert isinstance(label, Rejection)
    assert (label.reason, label.field) == ("wrong_type", "transaction_id")


TX = b'{"transaction_id":"t1","card_id":"c1","amount":12.5,"timestamp":1522540831000'


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (TX + b',"amount":9000}', "amount"),
        (TX + b' , "amount" :\t0.01}', "amount"),
        (TX + b',"amo\\u0075nt":0.01}', "amount"),  # the same name, escaped
        (b'{"card_id":"c2",' + TX[1:] + b"}", "card_id"),
        (TX.replace(b"1522540831000", b'"2018-04-01T00:00:31Z"') + b',"timestamp":1}', "timestamp"),
    ],
)
def test_a_field_given_twice_is_refused_since_parsers_disagree_on_which_wins(
    data: bytes, field: str
) -> None:
    result = decode_transaction(data, LIMITS)
    assert isinstance(result, Rejection), result
    assert (result.reason, result.field) == ("duplicate_field", field)
    assert result.message == f"{field}: expected the field once; got it 2 times"
    label = decode_label(b'{"transaction_id":"t1","is_fraud":false,"is_fraud":true}', LIMITS)
    assert isinstance(label, Rejection)
    assert (label.reason, label.field) == ("duplicate_field", "is_fraud")


@pytest.mark.parametrize(
    "data",
    [
        TX + b',"note":1,"note":2}',  # an unknown field is ignored, so is its repetition
        TX + b',"x":{"amount":1,"amount":2}}',  # a nested object's keys are not fields
        TX + b',"x":"\\"amount\\": \\"amount\\""}',  # a name inside a string value
        TX.replace(b"1522540831000", b'"2018-04-01T00:00:31+00:00"') + b',"y":"a:b"}',
    ],
)
def test_repeated_names_that_are_not_repeated_fields_are_accepted(data: bytes) -> None:
    assert isinstance(decode_transaction(data, LIMITS), Transaction)


def test_oversized_record_is_refused_before_parsing() -> None:
    data = orjson.dumps({**_valid_tx(), "padding": "x" * LIMITS.max_record_bytes})
    result = decode_transaction(data, LIMITS)
    assert isinstance(result, Rejection)
    assert result.reason == "record_too_large"


def test_limits_are_configurable() -> None:
    tight = LimitSettings(max_id_chars=4, max_record_bytes=200, max_amount=100.0)
    obj = {**_valid_tx(), "card_id": "card-1"}
    assert decode_transaction(orjson.dumps(obj), tight) == Rejection(
        "value_too_long", "card_id: expected at most 4 characters; got 6", "card_id"
    )
    result = decode_transaction(orjson.dumps({**_valid_tx(), "amount": 101}), tight)
    assert isinstance(result, Rejection)
    assert result.reason == "amount_too_large"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats() | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
hostile = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS)
                    if not isinstance(v, float) or math.isfinite(v) else b"NaN"),
    st.builds(lambda d, k, v: orjson.dumps({**d, k: v}),
              valid_transactions, st.sampled_from(["transaction_id", "card_id", "amount",
                                                   "timestamp", "channel", "lat", "currency"]),
              json_values.filter(lambda v: not isinstance(v, float) or math.isfinite(v))),
    st.builds(lambda d, k: orjson.dumps({x: y for x, y in d.items() if x != k}),
              valid_transactions, st.sampled_from(["transaction_id", "card_id", "amount",
                                                   "timestamp"])),
    st.builds(lambda d, n: orjson.dumps(d)[: n], valid_transactions, st.integers(0, 60)),
)  # fmt: skip


@settings(max_examples=500)
@given(hostile)
def test_hostile_input_never_raises_and_accepted_records_obey_the_schema(data: bytes) -> None:
    result = decode_transaction(data, LIMITS)
    if isinstance(result, Rejection):
        assert result.reason in REASON_CODES
        assert result.message
    else:
        TX_SCHEMA.validate(orjson.loads(data))


@settings(max_examples=300)
@given(hostile)
def test_hostile_labels_never_raise(data: bytes) -> None:
    result = decode_label(data, LIMITS)
    assert isinstance(result, Label | Rejection)
    if isinstance(result, Label):
        LABEL_SCHEMA.validate(orjson.loads(data))


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ({"transaction_id": "t1"}, "missing_field"),
        ({"transaction_id": "t1", "is_fraud": 1}, "wrong_type"),
        ({"transaction_id": "t1", "is_fraud": True, "source": "oracle"}, "invalid_enum"),
        ({"transaction_id": "t1", "is_fraud": True, "label_time": "soon"}, "invalid_timestamp"),
    ],
)
def test_bad_labels_get_a_specific_reason(obj: dict[str, Any], reason: str) -> None:
    result = decode_label(orjson.dumps(obj), LIMITS)
    assert isinstance(result, Rejection)
    assert result.reason == reason


def test_label_round_trips_through_its_codec() -> None:
    label = Label("t1", True, "c1", 1522540831000, "analyst")
    data = encode_label(label)
    LABEL_SCHEMA.validate(orjson.loads(data))
    assert decode_label(data, LIMITS) == label


def test_score_encodes_to_the_schema_and_round_trips() -> None:
    score = Score(
        "t1", "c1", 0.93, True, 0.5, "3-ab12cd34",
        (Reason("amount", 250.0, 1.7),), {"amount": 250.0, "night": 1.0},
        1522540831000, 1522540831005, 420,
    )  # fmt: skip
    data = encode_score(score)
    SCORE_SCHEMA.validate(orjson.loads(data))
    jsonschema.Draft202012Validator(
        json_schema("flag"),
        registry=_registry(),
    ).validate(orjson.loads(data))
    assert decode_score(data) == score


def _registry() -> Any:
    from referencing import Registry, Resource

    return Registry().with_resource(
        "fraudstream/score.schema.json", Resource.from_contents(json_schema("score"))
    )


def test_dead_letter_keeps_the_original_bytes_and_repeats_the_reason_in_headers() -> None:
    original = b"\xff\x00not json"
    rejection = decode_transaction(original, LIMITS)
    assert isinstance(rejection, Rejection)
    dead = DeadLetter.from_rejection(
        rejection, topic="transactions", partition=3, offset=42, value=original, key=b"c1"
    )
    envelope = dead.to_json()
    DLQ_SCHEMA.validate(orjson.loads(envelope))
    assert DeadLetter.from_json(envelope) == dead
    headers = dict(dead.headers())
    assert headers["fraudstream.reason"] == b"not_utf8"
    assert headers["fraudstream.source.offset"] == b"42"
    assert headers["fraudstream.source.partition"] == b"3"


def test_a_hundred_thousand_hostile_records_are_each_refused_with_their_own_reason() -> None:
    """The seeded fuzz corpus the end-to-end test sends (bench/hostile.py), at decoder level."""
    wrong: Counter[tuple[str, str, str | None, str, str | None]] = Counter()
    reasons: set[str] = set()
    for h in hostile_records(100_000, seed=20261129):
        result = decode_transaction(h.value, LIMITS)  # raising fails the test
        assert isinstance(decode_label(h.value, LIMITS), Label | Rejection)
        if not isinstance(result, Rejection):
            wrong[(h.kind, h.reason, h.field, "accepted", None)] += 1
        elif (result.reason, result.field) != (h.reason, h.field):
            wrong[(h.kind, h.reason, h.field, result.reason, result.field)] += 1
        reasons.add(h.reason)
    assert not wrong, wrong.most_common(10)  # (kind, expected reason, field, got reason, field)
    # every reason code the decoder gives is exercised (a duplicate id is found at scoring)
    assert reasons == REASON_CODES - {"duplicate_id"}


def test_odd_but_valid_records_are_accepted() -> None:
    rng = random.Random(7)
    valid = [(f"h-{i}", orjson.dumps(valid_record(rng, i))) for i in range(1000)]
    for tx_id, data in [*tolerated_records(5000, seed=7), *valid]:
        tx = decode_transaction(data, LIMITS)
        assert isinstance(tx, Transaction), (tx, data[:200])
        assert tx.transaction_id == tx_id
