"""The wire records and their codecs: Transaction, Label, Score (and Flag), DeadLetter.

Every record is JSON (orjson). Decoding never raises on bad bytes: :func:`decode_transaction` and
:func:`decode_label` return either the record or a :class:`Rejection` that names a reason code, the
field and a human message, ready to become a dead letter. The JSON Schemas shipped in
``fraudstream/schemas/`` describe the same contract for other languages and tools.
"""

from __future__ import annotations

import base64
import math
import re
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any, Final, Literal, cast, get_args

import orjson

from fraudstream.settings import LimitSettings

__all__ = [
    "Channel",
    "DeadLetter",
    "Label",
    "LabelSource",
    "Reason",
    "ReasonCode",
    "Rejection",
    "Score",
    "Transaction",
    "decode_label",
    "decode_score",
    "decode_transaction",
    "encode_label",
    "encode_score",
    "encode_transaction",
    "json_schema",
]

Channel = Literal["card_present", "card_not_present"]
LabelSource = Literal["chargeback", "analyst", "rule"]
ReasonCode = Literal[
    "record_too_large",  # more bytes than limits.max_record_bytes
    "not_utf8",  # the bytes are not UTF-8 text
    "invalid_json",  # not parseable JSON
    "non_finite_number",  # NaN, Infinity, or a number that overflows a double
    "not_an_object",  # valid JSON, but not a JSON object
    "missing_field",  # a required field is absent or null
    "wrong_type",  # a field has the wrong JSON type
    "empty_value",  # an id or code is the empty string
    "value_too_long",  # an id or code is longer than limits.max_id_chars
    "negative_amount",  # amount < 0
    "amount_too_large",  # amount > limits.max_amount
    "invalid_timestamp",  # not ISO-8601 with an offset, nor integer epoch milliseconds
    "timestamp_out_of_range",  # outside [limits.min_timestamp_ms, limits.max_timestamp_ms]
    "invalid_enum",  # channel or source outside its allowed values
    "invalid_code",  # currency, country or merchant category not in its format
    "invalid_coordinate",  # lat outside [-90, 90] or lon outside [-180, 180]
    "duplicate_field",  # a field of the record appears more than once in its object
    "invalid_id",  # an id holds a control character (U+0000-U+001F, U+007F-U+009F)
    "duplicate_id",  # the transaction id was first used by another transaction (found at scoring)
]
REASON_CODES: Final = frozenset(get_args(ReasonCode))
_CHANNELS: Final = frozenset(get_args(Channel))
_SOURCES: Final = frozenset(get_args(LabelSource))
_CURRENCY = re.compile(r"[A-Z]{3}")
_COUNTRY = re.compile(r"[A-Z]{2}")
_MCC = re.compile(r"[0-9]{4}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS: Final = timedelta(milliseconds=1)
# NaN or Infinity where the parser stopped expecting a value (after a sign for -Infinity).
_NON_FINITE_AT = re.compile(r"(NaN|Infinity)(?![\"\w])")
# In valid JSON: a string (escapes kept) followed by a colon is a key; brackets give the depth.
_STRING = r'"[^"\\]*(?:\\.[^"\\]*)*"'
_KEY_OR_BRACKET = re.compile(rf"({_STRING})\s*:|{_STRING}|[{{}}\[\]]")
_REPR: Final = reprlib.Repr()  # _show's: a few levels, items and characters of a bad value
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict = 3, 4, 4
_REPR.maxstring = _REPR.maxlong = _REPR.maxother = 40


@dataclass(frozen=True, slots=True)
class Transaction:
    """A card transaction as consumed from the ``transactions`` topic (key = card_id)."""

    transaction_id: str
    card_id: str
    amount: float
    timestamp_ms: int
    terminal_id: str | None = None
    currency: str = "EUR"
    channel: Channel | None = None
    merchant_category: str | None = None
    country: str | None = None
    lat: float | None = None
    lon: float | None = None


@dataclass(frozen=True, slots=True)
class Label:
    """A verdict on a past transaction, from the ``labels`` topic."""

    transaction_id: str
    is_fraud: bool
    card_id: str | None = None
    label_time_ms: int | None = None
    source: LabelSource | None = None


@dataclass(frozen=True, slots=True)
class Reason:
    """One feature's contribution to a score, for the analyst reading the alert."""

    feature: str
    value: float
    contribution: float


@dataclass(frozen=True, slots=True)
class Score:
    """The verdict on one transaction; a flagged Score is also published as a Flag."""

    transaction_id: str
    card_id: str
    score: float
    flagged: bool
    threshold: float
    model_version: str
    reasons: tuple[Reason, ...]
    features: Mapping[str, float]
    event_time_ms: int
    scored_at_ms: int
    processing_us: int


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a record was refused: a reason code, the offending field (if any) and a message."""

    reason: ReasonCode
    message: str
    field: str | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A refused record with its reason and where it came from.

    ``value`` and ``key`` are the original bytes, untouched. On Kafka the dead letter's value is
    the JSON envelope of :meth:`to_json` (original bytes in base64) and the reason and source are
    repeated in the headers, so a consumer can route on headers without parsing the body.
    """

    reason: ReasonCode
    message: str
    field: str | None
    source_topic: str
    source_partition: int
    source_offset: int
    value: bytes | None
    key: bytes | None = None
    source_timestamp_ms: int | None = None
    failed_at_ms: int = 0

    @classmethod
    def from_rejection(
        cls,
        rejection: Rejection,
        *,
        topic: str,
        partition: int,
        offset: int,
        value: bytes | None,
        key: bytes | None = None,
        timestamp_ms: int | None = None,
        failed_at_ms: int = 0,
    ) -> DeadLetter:
        """Build a dead letter for a rejected record."""
        return cls(
            rejection.reason,
            rejection.message,
            rejection.field,
            topic,
            partition,
            offset,
            value,
            key,
            timestamp_ms,
            failed_at_ms,
        )

    def to_json(self) -> bytes:
        """Encode the envelope: reason, message, source, and the original bytes in base64."""
        return orjson.dumps(
            {
                "reason": self.reason,
                "message": self.message,
                "field": self.field,
                "source": {
                    "topic": self.source_topic,
                    "partition": self.source_partition,
                    "offset": self.source_offset,
                    "timestamp_ms": self.source_timestamp_ms,
                },
                "key_b64": None if self.key is None else base64.b64encode(self.key).decode(),
                "value_b64": None if self.value is None else base64.b64encode(self.value).decode(),
                "failed_at_ms": self.failed_at_ms,
            }
        )

    def headers(self) -> list[tuple[str, str | bytes | None]]:
        """The Kafka headers: reason code, message, field and source coordinates."""
        return [
            ("fraudstream.reason", self.reason.encode()),
            ("fraudstream.message", self.message.encode()),
            ("fraudstream.field", (self.field or "").encode()),
            ("fraudstream.source.topic", self.source_topic.encode()),
            ("fraudstream.source.partition", str(self.source_partition).encode()),
            ("fraudstream.source.offset", str(self.source_offset).encode()),
        ]

    @classmethod
    def from_json(cls, data: bytes) -> DeadLetter:
        """Decode an envelope written by :meth:`to_json` (tools and tests; trusted input)."""
        obj = orjson.loads(data)
        src = obj["source"]
        return cls(
            obj["reason"],
            obj["message"],
            obj["field"],
            src["topic"],
            src["partition"],
            src["offset"],
            None if obj["value_b64"] is None else base64.b64decode(obj["value_b64"]),
            None if obj["key_b64"] is None else base64.b64decode(obj["key_b64"]),
            src["timestamp_ms"],
            obj["failed_at_ms"],
        )


_Fields = tuple[tuple[str, bytes], ...]  # a record's field names, and each quoted as in JSON


def _fields(*names: str) -> _Fields:
    return tuple((name, f'"{name}"'.encode()) for name in names)


_TRANSACTION_FIELDS: Final = _fields(
    "transaction_id", "card_id", "amount", "timestamp", "terminal_id", "currency", "channel",
    "merchant_category", "country", "lat", "lon",
)  # fmt: skip
_LABEL_FIELDS: Final = _fields("transaction_id", "is_fraud", "card_id", "label_time", "source")


class _RejectError(Exception):
    """Internal control flow: a field check failed. Never escapes this module."""

    def __init__(self, reason: ReasonCode, field: str | None, message: str) -> None:
        self.rejection = Rejection(reason, message, field)


def _parse(data: bytes, limits: LimitSettings, fields: _Fields, stamp_field: str) -> dict[str, Any]:
    if len(data) > limits.max_record_bytes:
        raise _RejectError(
            "record_too_large",
            None,
            f"expected at most {limits.max_record_bytes} bytes; got {len(data)}",
        )
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        text = str(exc)
        if "UTF-8" in text:
            raise _RejectError("not_utf8", None, "expected UTF-8 JSON; got invalid UTF-8") from None
        doc = exc.doc if isinstance(exc.doc, str) else ""
        if "infinity" in text or _NON_FINITE_AT.match(doc, exc.pos):
            raise _RejectError(
                "non_finite_number", None, f"expected finite numbers; {text}"
            ) from None
        raise _RejectError("invalid_json", None, f"expected a JSON object; {text}") from None
    if not isinstance(obj, dict):
        raise _RejectError(
            "not_an_object", None, f"expected a JSON object; got {type(obj).__name__}"
        )
    # Every key is followed by a colon: with as many colons as distinct keys, none repeats
    # (the common record, with an integer timestamp, is done here).
    colons = data.count(b":")
    if colons != len(obj):
        _reject_repeated_fields(data, obj, colons, fields, stamp_field)
    return obj


def _reject_repeated_fields(
    data: bytes, obj: dict[str, Any], colons: int, fields: _Fields, stamp_field: str
) -> None:
    """Reject a record whose object names one of its fields twice.

    Parsers disagree on which value wins (orjson: the last; others: the first), so another
    consumer of the topic could read a different amount or verdict than the one scored.
    Keys of nested objects and unknown fields are ignored, as their values are. ``data`` is
    valid JSON (parsed already), so strings and brackets tokenise it exactly; the text is
    tokenised only when two cheap proofs fail.
    """
    escaped = b"\\" in data
    if not escaped:
        # Without escapes every character is spelled literally: an ISO timestamp's colons are
        # not keys', and a key appears as its quoted name.
        stamp = obj.get(stamp_field)
        if type(stamp) is str and colons - stamp.count(":") == len(obj):
            return
        if all(data.count(quoted) <= 1 for name, quoted in fields if name in obj):
            return
    text = data.decode()
    wanted = {name for name, _ in fields}
    seen: dict[str, int] = {}
    depth = 0
    for match in _KEY_OR_BRACKET.finditer(text):
        token = match.group()
        if token[0] in "{[":
            depth += 1
        elif token[0] in "}]":
            depth -= 1
        elif depth == 1 and match.group(1) is not None:
            key = orjson.loads(match.group(1))
            if key in wanted:
                seen[key] = seen.get(key, 0) + 1
    for name, count in seen.items():
        if count > 1:
            raise _RejectError(
                "duplicate_field", name, f"{name}: expected the field once; got it {count} times"
            )


def _id(obj: Mapping[str, Any], name: str, limits: LimitSettings, *, required: bool) -> str | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise _RejectError("missing_field", name, f"{name}: required field is missing")
        return None
    if type(value) is not str:
        raise _RejectError("wrong_type", name, f"{name}: expected a string; got {_show(value)}")
    if not value:
        raise _RejectError("empty_value", name, f"{name}: expected a non-empty string; got ''")
    if len(value) > limits.max_id_chars:
        raise _RejectError(
            "value_too_long",
            name,
            f"{name}: expected at most {limits.max_id_chars} characters; got {len(value)}",
        )
    # No control characters: ids are joined by newlines in the feature store's records and
    # written to logs and keys. isprintable() is the fast pass for the common id.
    if not value.isprintable() and (bad := _CONTROL.search(value)):
        raise _RejectError(
            "invalid_id",
            name,
            f"{name}: expected no control characters; got {bad.group()!r} at {bad.start()}",
        )
    return value


def _timestamp(
    obj: Mapping[str, Any], name: str, limits: LimitSettings, *, required: bool
) -> int | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise _RejectError("missing_field", name, f"{name}: required field is missing")
        return None
    if type(value) is int:
        ms = value
    elif type(value) is str:
        try:
            when = datetime.fromisoformat(value) if len(value) <= 64 else None
        except ValueError:
            when = None
        if when is None or when.tzinfo is None:
            raise _RejectError(
                "invalid_timestamp",
                name,
                f"{name}: expected ISO-8601 with an offset or epoch ms; got {_show(value)}",
            )
        ms = (when - _EPOCH) // _ONE_MS
    else:
        raise _RejectError(
            "wrong_type",
            name,
            f"{name}: expected integer epoch ms or an ISO-8601 string; got {_show(value)}",
        )
    if not limits.min_timestamp_ms <= ms <= limits.max_timestamp_ms:
        raise _RejectError(
            "timestamp_out_of_range",
            name,
            f"{name}: expected epoch ms in [{limits.min_timestamp_ms}, "
            f"{limits.max_timestamp_ms}]; got {ms}",
        )
    return ms


def _number(obj: Mapping[str, Any], name: str) -> float | None:
    value = obj.get(name)
    if value is None:
        return None
    if type(value) is not float and type(value) is not int:
        raise _RejectError("wrong_type", name, f"{name}: expected a number; got {_show(value)}")
    if not math.isfinite(value):
        raise _RejectError(
            "non_finite_number", name, f"{name}: expected a finite number; got {value}"
        )
    return float(value)


def _code(obj: Mapping[str, Any], name: str, pattern: re.Pattern[str], what: str) -> str | None:
    value = obj.get(name)
    if value is None:
        return None
    if type(value) is not str:
        raise _RejectError("wrong_type", name, f"{name}: expected a string; got {_show(value)}")
    if pattern.fullmatch(value) is None:
        raise _RejectError("invalid_code", name, f"{name}: expected {what}; got {_show(value)}")
    return value


def _show(value: object) -> str:
    """Describe a bad value briefly: its JSON type and at most 40 characters of it."""
    kind = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
            dict: "object"}.get(type(value), type(value).__name__)  # fmt: skip
    # Bounded: a plain repr() of a value nested ~1,000 deep (a 2 kB record) raises
    # RecursionError, and of a long one builds the whole text only to cut it.
    text = _REPR.repr(value)
    return f"{kind} {text[:40]}{'...' if len(text) > 40 else ''}"


def decode_transaction(data: bytes, limits: LimitSettings) -> Transaction | Rejection:
    """Decode and validate one Transaction; never raises on bad bytes.

    >>> from fraudstream.settings import LimitSettings
    >>> decode_transaction(b'{"transaction_id":"t1","card_id":"c1","amount":9.5,'
    ...                    b'"timestamp":"2018-04-01T00:00:31+00:00"}', LimitSettings())
    ... # doctest: +NORMALIZE_WHITESPACE
    Transaction(transaction_id='t1', card_id='c1', amount=9.5, timestamp_ms=1522540831000,
                terminal_id=None, currency='EUR', channel=None, merchant_category=None,
                country=None, lat=None, lon=None)
    >>> decode_transaction(b'{"transaction_id":"t1","card_id":"c1","amount":-1,"timestamp":1}',
    ...                    LimitSettings()).reason
    'negative_amount'
    """
    try:
        obj = _parse(data, limits, _TRANSACTION_FIELDS, "timestamp")
        transaction_id = _id(obj, "transaction_id", limits, required=True)
        card_id = _id(obj, "card_id", limits, required=True)
        amount = _number(obj, "amount")
        if amount is None:
            raise _RejectError("missing_field", "amount", "amount: required field is missing")
        if amount < 0:
            raise _RejectError("negative_amount", "amount", f"amount: expected >= 0; got {amount}")
        if amount > limits.max_amount:
            raise _RejectError(
                "amount_too_large",
                "amount",
                f"amount: expected at most {limits.max_amount}; got {amount}",
            )
        timestamp_ms = _timestamp(obj, "timestamp", limits, required=True)
        channel = obj.get("channel")
        if channel is not None and (type(channel) is not str or channel not in _CHANNELS):
            raise _RejectError(
                "invalid_enum",
                "channel",
                f"channel: expected card_present or card_not_present; got {_show(channel)}",
            )
        lat = _number(obj, "lat")
        lon = _number(obj, "lon")
        if lat is not None and not -90.0 <= lat <= 90.0:
            raise _RejectError("invalid_coordinate", "lat", f"lat: expected -90..90; got {lat}")
        if lon is not None and not -180.0 <= lon <= 180.0:
            raise _RejectError("invalid_coordinate", "lon", f"lon: expected -180..180; got {lon}")
        return Transaction(
            transaction_id,  # type: ignore[arg-type]  # required=True never returns None
            card_id,  # type: ignore[arg-type]
            amount,
            timestamp_ms,  # type: ignore[arg-type]
            _id(obj, "terminal_id", limits, required=False),
            _code(obj, "currency", _CURRENCY, "an ISO 4217 code such as EUR")
            or limits.default_currency,
            cast("Channel | None", channel),
            _code(obj, "merchant_category", _MCC, "a 4-digit merchant category code"),
            _code(obj, "country", _COUNTRY, "an ISO 3166 alpha-2 code such as FR"),
            lat,
            lon,
        )
    except _RejectError as exc:
        return exc.rejection


def decode_label(data: bytes, limits: LimitSettings) -> Label | Rejection:
    """Decode and validate one Label; never raises on bad bytes.

    >>> from fraudstream.settings import LimitSettings
    >>> decode_label(b'{"transaction_id":"t1","is_fraud":true,"source":"chargeback"}',
    ...              LimitSettings())
    Label(transaction_id='t1', is_fraud=True, card_id=None, label_time_ms=None, source='chargeback')
    """
    try:
        obj = _parse(data, limits, _LABEL_FIELDS, "label_time")
        transaction_id = _id(obj, "transaction_id", limits, required=True)
        is_fraud = obj.get("is_fraud")
        if is_fraud is None:
            raise _RejectError("missing_field", "is_fraud", "is_fraud: required field is missing")
        if type(is_fraud) is not bool:
            raise _RejectError(
                "wrong_type", "is_fraud", f"is_fraud: expected a boolean; got {_show(is_fraud)}"
            )
        source = obj.get("source")
        if source is not None and (type(source) is not str or source not in _SOURCES):
            raise _RejectError(
                "invalid_enum",
                "source",
                f"source: expected chargeback, analyst or rule; got {_show(source)}",
            )
        return Label(
            transaction_id,  # type: ignore[arg-type]  # required=True never returns None
            is_fraud,
            _id(obj, "card_id", limits, required=False),
            _timestamp(obj, "label_time", limits, required=False),
            cast("LabelSource | None", source),
        )
    except _RejectError as exc:
        return exc.rejection


def encode_transaction(tx: Transaction) -> bytes:
    """Encode a Transaction to its wire JSON (timestamp as epoch milliseconds)."""
    out: dict[str, object] = {
        "transaction_id": tx.transaction_id,
        "card_id": tx.card_id,
        "amount": tx.amount,
        "timestamp": tx.timestamp_ms,
        "currency": tx.currency,
    }
    for name in ("terminal_id", "channel", "merchant_category", "country", "lat", "lon"):
        value = getattr(tx, name)
        if value is not None:
            out[name] = value
    return orjson.dumps(out)


def encode_label(label: Label) -> bytes:
    """Encode a Label to its wire JSON."""
    out: dict[str, object] = {"transaction_id": label.transaction_id, "is_fraud": label.is_fraud}
    if label.card_id is not None:
        out["card_id"] = label.card_id
    if label.label_time_ms is not None:
        out["label_time"] = label.label_time_ms
    if label.source is not None:
        out["source"] = label.source
    return orjson.dumps(out)


def encode_score(score: Score) -> bytes:
    """Encode a Score (or Flag) to its wire JSON; ``features`` exactly as scored."""
    return orjson.dumps(
        {
            "transaction_id": score.transaction_id,
            "card_id": score.card_id,
            "score": score.score,
            "flagged": score.flagged,
            "threshold": score.threshold,
            "model_version": score.model_version,
            "reasons": [
                {"feature": r.feature, "value": r.value, "contribution": r.contribution}
                for r in score.reasons
            ],
            "features": score.features,
            "event_time_ms": score.event_time_ms,
            "scored_at_ms": score.scored_at_ms,
            "processing_us": score.processing_us,
        }
    )


def decode_score(data: bytes) -> Score:
    """Decode a Score written by :func:`encode_score` (downstream consumers, tests)."""
    obj = orjson.loads(data)
    return Score(
        obj["transaction_id"],
        obj["card_id"],
        obj["score"],
        obj["flagged"],
        obj["threshold"],
        obj["model_version"],
        tuple(Reason(r["feature"], r["value"], r["contribution"]) for r in obj["reasons"]),
        obj["features"],
        obj["event_time_ms"],
        obj["scored_at_ms"],
        obj["processing_us"],
    )


def json_schema(name: Literal["transaction", "label", "score", "flag", "dead_letter"]) -> Any:
    """Load one of the JSON Schemas shipped in ``fraudstream/schemas/``.

    >>> json_schema("label")["required"]
    ['transaction_id', 'is_fraud']
    """
    path = resources.files("fraudstream") / "schemas" / f"{name}.schema.json"
    return orjson.loads(path.read_bytes())
