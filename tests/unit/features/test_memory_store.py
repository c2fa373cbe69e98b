"""Semantics of the in-memory store (the oracle): windows, idempotence, labels, lateness, bounds."""

from __future__ import annotations

import doctest

import pytest

from fraudstream.events import Label, Transaction
from fraudstream.features import (
    FeatureConfig,
    LabelStats,
    MemoryFeatureStore,
    base,
    catalogue,
    config,
    describe,
    keys,
    window,
)
from fraudstream.features.config import DAY_MS, HOUR_MS

T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z, a Tuesday


def tx(
    i: int, t: int, card: str = "c", term: str | None = "t", amount: float = 10.0
) -> Transaction:
    return Transaction(f"x{i}", card, amount, t, term)


@pytest.mark.parametrize("module", [base, catalogue, config, keys, window])
def test_doctests_pass(module: object) -> None:
    result = doctest.testmod(module)  # type: ignore[arg-type]
    assert result.failed == 0


def test_every_feature_has_a_one_line_description() -> None:
    docs = describe(FeatureConfig())
    assert len(docs) == 29
    assert all(text and "\n" not in text for text in docs.values())
    assert "tx_count_7d_by_terminal_delayed_7d" in docs


def test_card_windows_include_the_current_transaction_and_drop_old_ones() -> None:
    store = MemoryFeatureStore()
    store.features_for([tx(1, T0, amount=10.0), tx(2, T0 + 2 * DAY_MS, amount=30.0)])
    (f,) = store.features_for([tx(3, T0 + 2 * DAY_MS + HOUR_MS, amount=20.0)])
    assert f["tx_count_1d_by_card"] == 2.0
    assert f["amount_mean_1d_by_card"] == 25.0
    assert f["tx_count_7d_by_card"] == 3.0
    assert f["amount_mean_7d_by_card"] == 20.0
    assert f["seconds_since_prev_tx_by_card"] == 3600.0
    assert f["terminal_first_use_30d_by_card"] == 0.0


def test_replayed_transaction_returns_first_features_and_is_not_counted_twice() -> None:
    store = MemoryFeatureStore()
    first = store.features_for([tx(1, T0)])
    store.features_for([tx(2, T0 + 1000)])
    assert store.features_for([tx(1, T0)]) == first
    (f,) = store.features_for([tx(3, T0 + 2000)])
    assert f["tx_count_1d_by_card"] == 3.0
    assert store.stats.replays == 1


def test_label_counts_only_after_the_delay_and_only_once() -> None:
    store = MemoryFeatureStore()
    store.features_for([tx(1, T0)])
    assert store.apply_labels([Label("x1", True)]) == LabelStats(applied=1)
    assert store.apply_labels([Label("x1", True), Label("nope", True)]) == LabelStats(
        duplicates=1, unknown=1
    )
    (early,) = store.features_for([tx(2, T0 + DAY_MS)])
    assert early["risk_30d_by_terminal_delayed_7d"] == 0.0  # inside the delay: not visible yet
    (later,) = store.features_for([tx(3, T0 + 7 * DAY_MS + 1)])
    assert later["risk_1d_by_terminal_delayed_7d"] == 1.0
    assert later["tx_count_1d_by_terminal_delayed_7d"] == 1.0
    assert later["risk_30d_by_card_delayed_7d"] == 1.0


def test_no_leakage_snapshot_keeps_the_features_scored_before_a_label() -> None:
    store = MemoryFeatureStore()
    store.features_for([tx(1, T0)])
    (scored,) = store.features_for([tx(2, T0 + 8 * DAY_MS)])
    store.apply_labels([Label("x1", True)])
    assert store.snapshot(["x2"])["x2"] == scored
    assert scored["risk_7d_by_terminal_delayed_7d"] == 0.0


def test_out_of_order_event_within_lateness_is_placed_exactly() -> None:
    store = MemoryFeatureStore()
    store.features_for([tx(1, T0 + HOUR_MS), tx(2, T0 + 3 * HOUR_MS)])
    (f,) = store.features_for([tx(3, T0 + 2 * HOUR_MS)])
    assert f["tx_count_1d_by_card"] == 2.0  # x1 and itself, not the later x2
    (g,) = store.features_for([tx(4, T0 + 4 * HOUR_MS)])
    assert g["tx_count_1d_by_card"] == 4.0
    assert store.stats.late_events == 0


def test_event_later_than_allowed_lateness_is_scored_counted_and_not_added() -> None:
    store = MemoryFeatureStore(FeatureConfig(allowed_lateness_ms=HOUR_MS))
    store.features_for([tx(1, T0 + 5 * HOUR_MS)])
    (late,) = store.features_for([tx(2, T0)])
    assert late["tx_count_1d_by_card"] == 1.0
    assert store.stats.late_events == 2  # card and terminal
    (f,) = store.features_for([tx(3, T0 + 6 * HOUR_MS)])
    assert f["tx_count_1d_by_card"] == 2.0


def test_hot_terminal_stays_within_its_record_bound() -> None:
    cfg = FeatureConfig(exact_cap=64)
    store = MemoryFeatureStore(cfg)
    # 20,000 transactions, one every 20 s (4,320 a day) on one terminal, many cards
    store.features_for([tx(i, T0 + 20_000 * i, card=f"c{i % 500}") for i in range(20_000)])
    log = store._terms["t"].log
    assert len(log) <= cfg.exact_cap + cfg.coarse_max
    assert log.window(-1.0, float("inf"))[0] == 20_000.0  # folding keeps totals exact


def test_location_features_are_neutral_without_coordinates() -> None:
    store = MemoryFeatureStore()
    a = Transaction("a", "c", 1.0, T0, "t", lat=48.8566, lon=2.3522)
    b = Transaction("b", "c", 1.0, T0 + HOUR_MS, "t", lat=51.5074, lon=-0.1278)
    c = Transaction("c", "c", 1.0, T0 + 2 * HOUR_MS, "t")
    fa, fb, fc = store.features_for([a, b, c])
    assert fa["distance_prev_km_by_card"] == 0.0
    assert round(fb["distance_prev_km_by_card"]) == 344
    assert round(fb["speed_prev_kmh_by_card"]) == 344
    assert round(fb["distance_usual_km_by_card"]) == 344
    assert fc["distance_prev_km_by_card"] == fc["distance_usual_km_by_card"] == 0.0
