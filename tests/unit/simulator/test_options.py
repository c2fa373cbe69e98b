"""Options beyond the book: off by default, never disturbing the book or each other."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fraudstream.simulator import SimulatedDataset, SimulatorConfig, simulate
from fraudstream.simulator.extras import grid_to_lat_lon
from fraudstream.simulator.profiles import available_terminals

OFF = {
    "cnp_share": 0.0,
    "merchant_categories": False,
    "locations": False,
    "card_testing_rate": 0.0,
    "stolen_card_rate": 0.0,
}


@pytest.fixture(scope="module")
def book_only(all_options_config: SimulatorConfig) -> SimulatorConfig:
    """The all-options population with every option off."""
    return dataclasses.replace(all_options_config, **OFF)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def book(book_only: SimulatorConfig) -> SimulatedDataset:
    return simulate(book_only)


def _book_rows(ds: SimulatedDataset) -> tuple[np.ndarray, ...]:
    keep = ds.fraud_scenario <= 3
    return tuple(
        getattr(ds, name)[keep]
        for name in ("seconds", "customer", "terminal", "amount", "fraud_scenario")
    )


def test_optional_columns_are_none_when_their_options_are_off(book: SimulatedDataset) -> None:
    extras = (book.card_not_present, book.merchant_category, book.country, book.lat, book.lon)
    assert all(column is None for column in extras)
    assert int(book.fraud_scenario.max()) <= 3


@pytest.mark.parametrize(
    "option",
    [
        {"cnp_share": 0.5},
        {"merchant_categories": True},
        {"locations": True},
        {"card_testing_rate": 3.0},
        {"stolen_card_rate": 2.0},
        {},
    ],
)
def test_each_option_leaves_the_book_rows_unchanged(
    book: SimulatedDataset, book_only: SimulatorConfig, option: dict[str, object]
) -> None:
    ds = simulate(dataclasses.replace(book_only, **option))  # type: ignore[arg-type]
    for got, expected in zip(_book_rows(ds), _book_rows(book), strict=True):
        assert np.array_equal(got, expected)


def test_all_options_together_leave_the_book_rows_unchanged(
    book: SimulatedDataset, all_options: SimulatedDataset
) -> None:
    for got, expected in zip(_book_rows(all_options), _book_rows(book), strict=True):
        assert np.array_equal(got, expected)
    assert np.all(np.diff(all_options.seconds) >= 0)
    assert all_options.transaction_id.tolist() == list(range(len(all_options)))


def test_an_option_does_not_change_another_options_values(
    all_options: SimulatedDataset, book_only: SimulatorConfig
) -> None:
    alone = simulate(dataclasses.replace(book_only, cnp_share=0.3, merchant_categories=True))
    keep = all_options.fraud_scenario <= 3
    assert alone.card_not_present is not None
    assert all_options.card_not_present is not None
    assert np.array_equal(alone.card_not_present, all_options.card_not_present[keep])
    assert alone.merchant_category is not None
    assert all_options.merchant_category is not None
    assert np.array_equal(alone.merchant_category, all_options.merchant_category[keep])


def test_channel_follows_the_share_and_the_fraud_type(all_options: SimulatedDataset) -> None:
    cnp, scenario = all_options.card_not_present, all_options.fraud_scenario
    assert cnp is not None
    assert abs(float(cnp[scenario == 0].mean()) - 0.3) < 0.02
    assert cnp[scenario == 3].all()  # the book's leaked-credentials fraud is card-not-present
    assert cnp[scenario == 4].all()
    assert not cnp[scenario == 5].any()


def test_each_terminal_has_one_four_digit_merchant_category(all_options: SimulatedDataset) -> None:
    mcc = all_options.merchant_category
    assert mcc is not None
    assert all(len(code) == 4 and code.isdigit() for code in set(mcc.tolist()))
    pairs = set(zip(all_options.terminal.tolist(), mcc.tolist(), strict=True))
    assert len(pairs) == len({t for t, _ in pairs})


def test_card_present_rows_are_at_their_terminal_in_belgium(all_options: SimulatedDataset) -> None:
    ds = all_options
    assert ds.lat is not None
    assert ds.lon is not None
    assert ds.country is not None
    assert ds.card_not_present is not None
    present = ~ds.card_not_present
    lat, lon = grid_to_lat_lon(ds.terminals.x[ds.terminal], ds.terminals.y[ds.terminal])
    assert np.array_equal(ds.lat[present], lat[present])
    assert np.array_equal(ds.lon[present], lon[present])
    assert set(ds.country[present].tolist()) == {"BE"}
    assert ds.lat[present].min() > 50.3
    assert ds.lat[present].max() < 51.4
    assert ds.lon[present].min() > 3.6
    assert ds.lon[present].max() < 5.1


def test_card_not_present_fraud_is_delivered_abroad(all_options: SimulatedDataset) -> None:
    ds = all_options
    assert ds.country is not None
    assert ds.card_not_present is not None
    cnp_fraud = ds.card_not_present & ds.is_fraud
    assert cnp_fraud.any()
    assert "BE" not in set(ds.country[cnp_fraud].tolist())
    genuine_abroad = (ds.country[ds.card_not_present & ~ds.is_fraud] != "BE").mean()
    assert 0.0 < genuine_abroad < 0.1
    assert all(len(c) == 2 and c.isupper() for c in set(ds.country.tolist()))


def test_card_testing_bursts_are_small_fast_and_on_terminals_new_to_the_card(
    all_options: SimulatedDataset, all_options_config: SimulatorConfig
) -> None:
    ds = all_options
    rows = np.flatnonzero(ds.fraud_scenario == 4)
    assert len(rows) > 30 * 2 * 5  # 2 bursts a day of at least 5 payments, give or take
    assert ds.amount[rows].max() <= 3.0
    reach = available_terminals(ds.customers, ds.terminals, all_options_config.radius)
    for card in set(ds.customer[rows].tolist()):
        mine = rows[ds.customer[rows] == card]
        assert not set(ds.terminal[mine].tolist()) & set(reach[card])
    gaps = np.diff(ds.seconds[rows][np.argsort(ds.customer[rows], kind="stable")])
    assert np.median(gaps[gaps >= 0]) < 120


def test_stolen_cards_spend_more_far_from_home(
    all_options: SimulatedDataset, all_options_config: SimulatorConfig
) -> None:
    ds = all_options
    rows = np.flatnonzero(ds.fraud_scenario == 5)
    assert len(rows) > 30
    home = np.hypot(
        ds.terminals.x[ds.terminal[rows]] - ds.customers.x[ds.customer[rows]],
        ds.terminals.y[ds.terminal[rows]] - ds.customers.y[ds.customer[rows]],
    )
    assert home.min() > 25.0 - all_options_config.radius  # spree around a spot >= 25 away
    ratio = ds.amount[rows] / ds.customers.mean_amount[ds.customer[rows]]
    assert ratio.min() > 1.49
    assert ratio.max() < 5.01


def test_extra_scenarios_stay_within_the_simulated_period(
    all_options: SimulatedDataset, all_options_config: SimulatorConfig
) -> None:
    assert int(all_options.seconds.max()) < all_options_config.days * 86_400
    assert int(all_options.seconds.min()) >= 0


def test_a_different_seed_changes_the_extras(all_options_config: SimulatorConfig) -> None:
    a = simulate(dataclasses.replace(all_options_config, days=5))
    b = simulate(dataclasses.replace(all_options_config, days=5, seed=1))
    assert not np.array_equal(a.terminal, b.terminal)
