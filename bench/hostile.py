"""Hostile transaction records from a seed, each with the reason the decoder must give it.

The fuzz tests feed them to the decoder and to a running detector: each must become a dead
letter with exactly this reason and field. Each is a valid record with one thing broken, or bytes
that are no record at all. Not here, by design: unknown fields (tolerated, see
:func:`tolerated_records`; hostile only once they make a record too large) and repeated
transaction ids (conflicting repeats are for the feature store and the loop to settle).

>>> [h.kind for h in hostile_records(3, seed=1)] == [h.kind for h in hostile_records(3, seed=1)]
True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from random import Random
from typing import Final

import orjson

from fraudstream.events import ReasonCode
from fraudstream.settings import LimitSettings

__all__ = ["KINDS", "START_MS", "Hostile", "hostile_records", "tolerated_records", "valid_record"]

START_MS: Final = 1_522_540_800_000  # 2018-04-01, where the simulator's streams start
_SPAN_MS: Final = 30 * 86_400_000


@dataclass(frozen=True, slots=True)
class Hostile:
    """One hostile record: its bytes, the reason and field the decoder must name, its kind."""

    value: bytes
    reason: ReasonCode
    field: str | None
    kind: str


_Record = dict[str, object]
_Made = tuple[bytes, ReasonCode, str | None]
_Kind = Callable[[Random, _Record, LimitSettings], _Made]
_IST = timezone(timedelta(hours=5, minutes=30))  # an offset with minutes, for ISO timestamps
_IDS = ("transaction_id", "card_id", "terminal_id")
_CODES = {"currency": ["eur", "EURO", "E1R", "", "\uff21BC", "EUR\n"], "country": ["FRA", "f", ""],
          "merchant_category": ["541", "54111", "54a1", "\u0661\u0662\u0663\u0664"]}  # fmt: skip
_SAMPLES: list[object] = [17, -3, 0, 1.5, True, False, [], ["x"], {}, {"a": 1}, "12.5", "x"]
# The JSON values each field refuses as of the wrong type (a boolean is no number).
_WRONG: dict[str, Callable[[object], bool]] = {
    **{f: (lambda v: type(v) is not str) for f in (*_IDS, *_CODES)},
    **{f: (lambda v: type(v) not in (int, float)) for f in ("amount", "lat", "lon")},
    "timestamp": lambda v: type(v) not in (int, str),
}
_BAD_STAMPS = ["yesterday", "", "2018-04-01T00:00:31", "2018-02-30T00:00:00Z", "2018-04-01T25:00Z",
               "2018-04-01T23:59:60Z", "2018-04-01T00:00:31+24:00", "2018-04-01T00:00:31Z\n",
               "2018-04-01T00:00:31+00:00" + " " * 40]  # fmt: skip
_NON_FINITE = [b"NaN", b"Infinity", b"-Infinity", b"-NaN", b"1e400", b"-1e400", b"1e309",
               b"9" * 400, b"-0.5e99999"]  # fmt: skip
_NOT_JSON = [b"", b" ", b"\n\t", b"\x00", b"nan", b"inf", b"-inf", b"None", b"True", b"undefined",
             b"{'a': 1}", b'{"a":1,}', b'{"a":1} // c', b"/* c */ {}", b"{a:1}", b'{"a" 1}',
             b"\x00\x00\x00\x00", b"{]", b"0x1F"]  # fmt: skip
_BAD_UTF8 = [b"\xff", b"\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf8\x88\x80\x80\x80"]


def valid_record(rng: Random, i: int, start_ms: int = START_MS, span_ms: int = _SPAN_MS) -> _Record:
    """A valid wire transaction with every field set (ASCII only, so any cut is bad JSON)."""
    return {
        "transaction_id": f"h-{i}",
        "card_id": f"hc-{rng.randrange(1000)}",
        "amount": round(rng.uniform(0, 500), 2),
        "timestamp": start_ms + rng.randrange(span_ms),
        "terminal_id": f"ht-{rng.randrange(2000)}",
        "currency": rng.choice(["EUR", "USD", "GBP"]),
        "channel": rng.choice(["card_present", "card_not_present"]),
        "merchant_category": rng.choice(["5411", "5812", "7995"]),
        "country": rng.choice(["FR", "DE", "US"]),
        "lat": round(rng.uniform(-90, 90), 4),
        "lon": round(rng.uniform(-180, 180), 4),
    }


def _with(base: _Record, field: str, raw: bytes) -> bytes:
    """``base`` with ``field`` set to JSON text ``raw`` (NaN, 2**70: what orjson won't write)."""
    rest = orjson.dumps({k: v for k, v in base.items() if k != field})
    return rest[:-1] + b',"' + field.encode() + b'":' + raw + b"}"


def _set(base: _Record, field: str, value: object) -> bytes:
    return orjson.dumps({**base, field: value})


def _not_utf8(rng: Random, base: _Record, lim: LimitSettings) -> _Made:
    bad = rng.choice(_BAD_UTF8)
    if rng.random() < 0.5:  # in a string of a record
        return _set(base, rng.choice(_IDS), "\x00").replace(b"\\u0000", bad), "not_utf8", None
    data = rng.randbytes(rng.randrange(300))  # with bad bytes no neighbour can make UTF-8
    at = rng.randrange(len(data) + 1)
    return data[:at] + bad + data[at:], "not_utf8", None


def _not_json(rng: Random, base: _Record, lim: LimitSettings) -> _Made:
    if rng.random() < 0.5:
        return rng.choice(_NOT_JSON), "invalid_json", None
    text = "".join(rng.choice("abcxyz{}[]:,\"' 0123\x00\x1f") for _ in range(rng.randrange(60)))
    return b"#" + text.encode(), "invalid_json", None


def _truncated(rng: Random, base: _Record, lim: LimitSettings) -> _Made:
    data = orjson.dumps(base)
    if rng.random() < 0.8:
        return data[: rng.randrange(len(data))], "invalid_json", None
    tail = rng.choice([b"}", b",", b" x", b"\x00", b"]", data, b"\n{}"])  # or more than one
    return data + tail, "invalid_json", None


def _deep_nesting(rng: Random, base: _Record, lim: LimitSettings) -> _Made:
    depth = rng.choice([1025, 1100, 2000, 10_000])  # orjson stops at 1,024 levels
    opener, closer = rng.choice([(b"[", b"]"), (b'{"a":', b"}")])
    nested = opener * depth + closer * depth * rng.randrange(2)  # closed or not
    at_top = rng.random() < 0.5  # the whole record, or a field's value
    return nested if at_top else _with(base, rng.choice([*_WRONG]), nested), "invalid_json", None


def _nested_value(rng: Random, base: _Record, lim: LimitSettings) -> _Made:
    # It parses, but no field takes an array or an object (some as deep as orjson goes).
    depth = rng.randrange(1, 50) if rng.random() < 0.8 else rng.randrange(900, 1001)
    field = rng.choice([*_WRONG, "channel"])
    raw = rng.choice([b"[" * depth + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth])
    return _with(base, field, raw), "invalid_enum" if field == "channel" else "wrong_type", field


def _not_an_object(rng: Random, base: _Record, lim: LimitSettings) -> _Made:
    depth = rng.randrange(1, 1025)
    value = rng.choice([b"[]", b"[1,2]", b"0", b"-1.5e3", b'"str"', b"null", b"true", b"false",
                        b"[" + orjson.dumps(base) + b"]", b"[" * depth + b"]" * depth])  # fmt: skip
    return value, "not_an_object", None


def _wrong_type(rng: Random, base: _Record, lim: LimitSettings) -> _Made:
    field = rng.choice(list(_WRONG))
    value = rng.choice([v for v in _SAMPLES if _WRONG[field](v)])
    return _set(base, field, value), "wrong_type", field


def _missing_field(rng: Random, base: _Record, lim: LimitSettings) -> _Made:
    field = rng.choice(["transaction_id", "card_id", "amount", "timestamp"])
    if rng.random() < 0.5:
        return _set(base, field, None), "missing_field", field  # null counts as missing
    return orjson.dumps({k: v for k, v in base.items() if k != field}), "missing_field", field


def _huge_string(rng: Random, base: _Record, lim: LimitSettings) -> _Made:
    field = rng.choice([*_IDS, *_CODES])
    n = lim.max_id_chars + 1 + rng.randrange(lim.max_id_chars * rng.choice([1, 1, 1, 10]))
    data = _set(base, field, rng.choice("x\u00e9\u4e2d\U0001f600") * n)
    if len(data) > lim.max_record_bytes:
        return data, "record_too_large", None
    return data, "invalid_code" if field in _CODES else "value_too_long", field


def _oversized(rng: Random, base: _Record, lim: LimitSettings) -> _Made:
    over = lim.max_record_bytes + rng.randrange(1, 4096)
    style = rng.randrange(3)
    if style == 0:  # an unknown field, tolerated but for its size
        return _set(base, "padding", "x" * over), "record_too_large", None
    if style == 1:  # thousands of unknown fields
        extra = {f"f{i}": i for i in range(over // 10)}
        return orjson.dumps({**base, **extra}), "record_too_large", None
    return orjson.dumps(base) + b" " * over, "record_too_large", None


def _non_finite(rng: Random, base: _Record, lim: LimitSettings) -> _Made:
    field = rng.choice(["amount", "lat", "lon", "timestamp", "note"])  # note: an unknown field
    return _with(base, field, rng.choice(_NON_FINITE)), "non_finite_number", None


# Beyond 64 bits an integer parses as a float, and a float timestamp is of the wrong type.
_HUGE: list[tuple[str, int | float, ReasonCode]] = [
    ("amount", 2**70, "amount_too_large"), ("amount", 10**30, "amount_too_large"),
    ("amount", -(2**70), "negative_amount"), ("amount", 1.7e308, "amount_too_large"),
    ("timestamp", 2**64, "wrong_type"), ("timestamp", 2**63, "timestamp_out_of_range"),
    ("timestamp", -(2**63), "timestamp_out_of_range"), ("timestamp", -(2**64), "wrong_type"),
    ("lat", 2**70, "invalid_coordinate"), ("lon", -1e300, "invalid_coordinate"),
]  # fmt: skip


def _huge_number(rng: Random, base: _Record, lim: LimitSettings) -> _Made:
    field, value, reason = rng.choice(_HUGE)
    return _with(base, field, repr(value).encode()), reason, field


def _timestamp_out_of_range(rng: Random, base: _Record, lim: LimitSettings) -> _Made:
    value = rng.choice([
        lim.max_timestamp_ms + 1 + rng.randrange(10**15), lim.min_timestamp_ms - 1,
        rng.randrange(-(10**15), lim.min_timestamp_ms), 0, -1, 1_522_540_831,  # in seconds
        "9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00+00:00", "1999-12-31T23:59:59.999Z",
        "2100-01-01T00:00:00.001+00:00",
    ])  # fmt: skip
    return _set(base, "timestamp", value), "timestamp_out_of_range", "timestamp"


def _amount_too_large(rng: Random, base: _Record, lim: LimitSettings) -> _Made:
    value = rng.choice([lim.max_amount * 1.000001, lim.max_amount + 0.01, 1e300, 2**62])
    return _set(base, "amount", value), "amount_too_large", "amount"


def _duplicate_field(rng: Random, base: _Record, lim: LimitSettings) -> _Made:
    field = rng.choice(list(base))
    name = field.encode()
    if rng.random() < 0.5:  # one letter escaped: the same key to a parser
        at = rng.randrange(len(name))
        name = name[:at] + b"\\u%04x" % name[at] + name[at + 1 :]
    again = b',"' + name + b'":' + orjson.dumps(valid_record(rng, 0)[field])
    return orjson.dumps(base)[:-1] + again + b"}", "duplicate_field", field


# One field set to one of a few values; the kind is named after the reason.
_SIMPLE: dict[ReasonCode, list[tuple[str, object]]] = {
    "empty_value": [(f, "") for f in _IDS],
    "invalid_timestamp": [("timestamp", v) for v in _BAD_STAMPS],
    "negative_amount": [("amount", v) for v in (-0.01, -1, -(10**9), -5e-324)],
    "invalid_enum": [("channel", v) for v in ("online", "CARD_PRESENT", "", " card_present", 1)],
    "invalid_id": [(f, v) for f in _IDS for v in ("a\nb", "\x00", "\tc", "d\r", "\x7f", "\x85")],
    "invalid_code": [(f, v) for f, values in _CODES.items() for v in values],
    "invalid_coordinate": [("lat", 90.000001), ("lat", -90.5), ("lat", 1e300), ("lon", 180.0001),
                           ("lon", -181), ("lon", 1e6)],
}  # fmt: skip


def _simple(reason: ReasonCode, cases: list[tuple[str, object]]) -> _Kind:
    """A kind that sets one of ``cases``' fields to its value; ``reason`` is the one expected."""

    def make(rng: Random, base: _Record, lim: LimitSettings) -> _Made:
        field, value = rng.choice(cases)
        return _set(base, field, value), reason, field

    return make


# Kinds by name, each with its weight: the tens-of-kB ones come less, for a modest volume.
_MAKERS = (_not_utf8, _not_json, _truncated, _deep_nesting, _nested_value, _not_an_object,
           _wrong_type, _missing_field, _huge_string, _oversized, _non_finite, _huge_number,
           _timestamp_out_of_range, _amount_too_large, _duplicate_field)  # fmt: skip
_LIGHT = {"deep_nesting": 3, "oversized": 1}
_KINDS: dict[str, tuple[_Kind, int]] = {
    **{m.__name__[1:]: (m, _LIGHT.get(m.__name__[1:], 20)) for m in _MAKERS},
    **{reason: (_simple(reason, cases), 20) for reason, cases in _SIMPLE.items()},
}
KINDS: Final = tuple(_KINDS)


def hostile_records(
    count: int, seed: int = 0, limits: LimitSettings | None = None, start_ms: int = START_MS
) -> Iterator[Hostile]:
    """``count`` hostile records, the same ones for the same seed (and limits)."""
    lim = limits or LimitSettings()
    rng = Random(seed)
    for i, kind in enumerate(rng.choices(KINDS, [w for _, w in _KINDS.values()], k=count)):
        value, reason, field = _KINDS[kind][0](rng, valid_record(rng, i, start_ms), lim)
        yield Hostile(value, reason, field, kind)


def tolerated_records(
    count: int, seed: int = 0, start_ms: int = START_MS, span_ms: int = _SPAN_MS
) -> Iterator[tuple[str, bytes]]:
    """``count`` odd but valid records, as (transaction id, bytes), by default limits.

    Ids at the length limit, in any script, with braces, quotes, backslashes; amounts of 0 and
    at the maximum; coordinates at the poles; ISO timestamps with an offset; unknown fields,
    many, nested 900 deep or repeated; an amount that underflows to 0; odd whitespace.
    """
    lim = LimitSettings()
    rng = Random(seed)
    odd = ["{c:1}", '"', "\\", ":", " ", "\u00e9", "\u4e2d", "\U0001f600", "\u200d", "}"]
    for i in range(count):
        base = valid_record(rng, i, start_ms, span_ms)
        tx_id = base["transaction_id"] = f"ok-{i}-{rng.choice(odd)}"
        field = rng.choice(_IDS[1:])
        base[field] = (rng.choice(odd) + str(base[field]) + rng.choice(odd))[: lim.max_id_chars]
        style = rng.randrange(6)
        if style == 0:
            base[rng.choice(_IDS[1:])] = (rng.choice(odd) * lim.max_id_chars)[: lim.max_id_chars]
        elif style == 1:
            base.update(amount=rng.choice([0, 0.0, lim.max_amount]), lat=90.0, lon=-180.0)
        elif style == 2:
            base.update({f"extra{j}": [j, {"k": None}] for j in range(rng.randrange(1, 500))})
        elif style == 3:
            ms = int(str(base["timestamp"]))
            base["timestamp"] = datetime.fromtimestamp(ms / 1000, _IST).isoformat()
        data = orjson.dumps(base)
        if style == 4:
            nested = b"[" * 900 + b"]" * 900
            data = _with(base, "amount", b"1e-400")[:-1] + b',"n":' + nested + b',"n":null}'
        elif style == 5:
            data = b" \n" + data.replace(b'","', b'" ,\t"') + b"\r\n"
        yield tx_id, data
