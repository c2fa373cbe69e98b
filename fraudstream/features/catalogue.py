"""The feature catalogue: names, one-line meanings, and the derivation from raw aggregates.

Both stores return, per transaction, two raw vectors of numbers: the card part (``C_*``
offsets) and the terminal part (``T_*``). :func:`derive` turns them into the feature dict.
The raw vectors are what Redis stores as the transaction's snapshot (packed: doubles, and the
counts, which are whole numbers, as 4-byte integers), so a redelivered transaction, and
:meth:`FeatureStore.snapshot`, yield bit-identical features.

Neutral values: with no history the counts are 1 (the transaction itself), means equal the
amount, ratios 1, z-scores 0, risks 0; with a missing location all distances and the speed are 0;
with no previous transaction within the horizon the gap is the 30-day cap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

from fraudstream.features.config import DAY_MS, FeatureConfig
from fraudstream.features.window import haversine_km

__all__ = ["CARD_LEN", "NO_LOCATION", "TERM_LEN", "derive", "describe", "feature_names"]

NO_LOCATION: Final = 999.0  # latitude sentinel: the transaction carried no lat/lon
_GAP_CAP_S: Final = 30 * 86_400.0
_MIN_SPEED_GAP_H: Final = 1.0 / 60.0  # speeds use at least one minute, so bursts stay finite
# Card vector offsets: flags (1 = late), own fields, sums, previous record, centroid, cnp, and
# the integer counts last (Redis packs them as 4-byte integers, see engine.lua MARK_C).
(C_LATE, C_T, C_AMOUNT, C_LAT, C_LON, C_TERM, C_A1D, C_A7D, C_A30D, C_A2_30D,
 C_PREV_T, C_PREV_LAT, C_PREV_LON, C_X30, C_Y30, C_Z30, C_CNP,
 C_N10M, C_N1H, C_N1D, C_N7D, C_N30D, C_CNP7D, C_DISTINCT1D, C_SEEN30D, C_LOCN30,
 C_NDEL, C_FDEL) = range(28)  # fmt: skip
CARD_LEN: Final = 28
# Terminal vector offsets: flags, time, counts and frauds in the three delayed windows.
T_LATE, T_T, T_N1, T_N7, T_N30, T_F1, T_F7, T_F30 = range(8)
TERM_LEN: Final = 8
EMPTY_TERM: Final[tuple[float, ...]] = (0.0,) * TERM_LEN


def describe(config: FeatureConfig) -> dict[str, str]:
    """Every feature name with its one-line meaning, in output order."""
    d = config.delay_tag
    out = {
        "amount": "the transaction amount",
        "is_weekend": "1 if the event time (UTC) falls on Saturday or Sunday",
        "is_night": "1 if the event hour (UTC) is 0-6, i.e. 00:00:00-06:59:59",
    }
    for n in ("1d", "7d", "30d"):
        out[f"tx_count_{n}_by_card"] = f"card transactions in (t-{n}, t], this one included"
        out[f"amount_mean_{n}_by_card"] = f"mean amount of those {n} card transactions"
    for n in ("1d", "7d", "30d"):
        out[f"tx_count_{n}_by_terminal_delayed_{d}"] = (
            f"terminal transactions in (t-{d}-{n}, t-{d}]"
        )
        out[f"risk_{n}_by_terminal_delayed_{d}"] = (
            "labelled frauds / transactions in that terminal window (0 when empty)"
        )
    out |= {
        "amount_ratio_30d_by_card": "amount / mean of the card's earlier 30-day amounts (1: none)",
        "amount_zscore_30d_by_card": "(amount - earlier 30-day mean) / std (0 if < 2 or std 0)",
        "seconds_since_prev_tx_by_card": "gap to the card's previous event, capped at 30 days",
        "tx_count_10m_by_card": "card transactions in (t-10min, t], this one included",
        "tx_count_1h_by_card": "card transactions in (t-1h, t], this one included",
        "distinct_terminals_1d_by_card": "distinct terminals of the card in (t-1d, t]",
        "terminal_first_use_30d_by_card": "1 if the card did not use this terminal in 30 days",
        "cnp_share_7d_by_card": "share of card-not-present transactions in (t-7d, t]",
        "distance_prev_km_by_card": "km from the card's previous location (0 if unknown)",
        "speed_prev_kmh_by_card": "that distance / the gap (gap floored at 1 min), km/h",
        "distance_usual_km_by_card": "km from the centroid of the card's 30-day locations",
        "hour_sin": "sin(2 pi * time of day / 24h), UTC",
        "hour_cos": "cos(2 pi * time of day / 24h), UTC",
        f"risk_30d_by_card_delayed_{d}": f"card frauds / transactions in (t-{d}-30d, t-{d}]",
    }
    return out


def feature_names(config: FeatureConfig) -> tuple[str, ...]:
    """The stable feature names, in output order."""
    return tuple(describe(config))


def derive(card: Sequence[float], term: Sequence[float], names: Sequence[str]) -> dict[str, float]:
    """Turn the raw card and terminal vectors into the feature dict (keys from ``names``).

    Hot path (once per transaction): one tuple unpacking, then plain float arithmetic.
    """
    (_, t_ms, amount, lat, lon, term_id, a1d, a7d, a30d, a2_30d, prev_t, prev_lat, prev_lon,
     x30, y30, z30, cnp, n10m, n1h, n1d, n7d, n30d, cnp7d, distinct, seen30, locn30,
     ndel, fdel) = card  # fmt: skip
    _, _, n_t1, n_t7, n_t30, f_t1, f_t7, f_t30 = term
    n1, n7, n30 = n1d + 1.0, n7d + 1.0, n30d + 1.0
    day_ms = t_ms % DAY_MS
    weekday = (int(t_ms // DAY_MS) + 3) % 7  # 1970-01-01 was a Thursday (weekday 3)
    mean_prior = a30d / n30d if n30d > 0 else amount
    var = a2_30d / n30d - mean_prior * mean_prior if n30d > 1 else 0.0
    zscore = (amount - mean_prior) / math.sqrt(var) if var > 1e-12 else 0.0
    ratio = amount / mean_prior if mean_prior > 0 else 1.0
    gap_s = (t_ms - prev_t) / 1000.0 if prev_t >= 0 else _GAP_CAP_S
    gap_s = min(gap_s, _GAP_CAP_S)
    has_loc = lat != NO_LOCATION
    dist_prev = dist_usual = 0.0
    if has_loc and prev_t >= 0 and prev_lat != NO_LOCATION:
        dist_prev = haversine_km(lat, lon, prev_lat, prev_lon)
    if has_loc and locn30 > 0:
        c_lat = math.degrees(math.atan2(z30, math.hypot(x30, y30)))
        c_lon = math.degrees(math.atan2(y30, x30))
        dist_usual = haversine_km(lat, lon, c_lat, c_lon)
    angle = 2.0 * math.pi * day_ms / DAY_MS
    values = (
        amount,
        1.0 if weekday >= 5 else 0.0,
        1.0 if day_ms < 7 * 3_600_000 else 0.0,
        n1,
        (a1d + amount) / n1,
        n7,
        (a7d + amount) / n7,
        n30,
        (a30d + amount) / n30,
        float(n_t1),
        min(1.0, f_t1 / n_t1) if n_t1 > 0 else 0.0,
        float(n_t7),
        min(1.0, f_t7 / n_t7) if n_t7 > 0 else 0.0,
        float(n_t30),
        min(1.0, f_t30 / n_t30) if n_t30 > 0 else 0.0,
        ratio,
        zscore,
        gap_s,
        n10m + 1.0,
        n1h + 1.0,
        float(distinct),
        0.0 if term_id == 0 else 1.0 - seen30,
        (cnp7d + cnp) / n7,
        dist_prev,
        dist_prev / max(gap_s / 3600.0, _MIN_SPEED_GAP_H),
        dist_usual,
        math.sin(angle),
        math.cos(angle),
        min(1.0, fdel / ndel) if ndel > 0 else 0.0,
    )
    return dict(zip(names, values, strict=True))
