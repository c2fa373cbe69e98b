"""The book's simulator: draw for draw against a literal global-RNG reference, and in full."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from fraudstream.simulator import SimulatedDataset, SimulatorConfig, simulate


def _reference(config: SimulatorConfig) -> list[tuple[int, int, int, float, int]]:
    """The book's algorithm written plainly with the global generators, as chapter 3.2 does."""
    seed = config.seed
    np.random.seed(seed)
    customers = []
    for _ in range(config.customers):
        x, y = np.random.uniform(0, 100), np.random.uniform(0, 100)
        mean = np.random.uniform(5, 100)
        customers.append((x, y, mean, mean / 2, np.random.uniform(0, 4)))
    np.random.seed(seed + 1)
    terminal_xy = np.array(
        [(np.random.uniform(0, 100), np.random.uniform(0, 100)) for _ in range(config.terminals)]
    )
    rows: list[list[Any]] = []
    for c, (x, y, mean, std, rate) in enumerate(customers):
        distance = np.sqrt(np.sum(np.square(np.array([x, y]) - terminal_xy), axis=1))
        available = list(np.where(distance < config.radius)[0])
        random.seed(seed + c)
        np.random.seed(seed + c)
        for day in range(config.days):
            for _ in range(np.random.poisson(rate)):
                time = int(np.random.normal(86400 / 2, 20000))
                if 0 < time < 86400:
                    amount = np.random.normal(mean, std)
                    if amount < 0:
                        amount = np.random.uniform(0, mean * 2)
                    amount = np.round(amount, decimals=2)
                    if len(available) > 0:
                        terminal = random.choice(available)
                        rows.append([time + day * 86400, day, c, int(terminal), float(amount), 0])
    rows.sort(key=lambda r: r[0])  # list.sort is stable: ties keep generation order
    day_of = np.array([r[1] for r in rows])
    for r in rows:
        if r[4] > 220:
            r[5] = 1
    for day in range(int(day_of.max())):
        bad = set(np.random.RandomState(seed + day).choice(config.terminals, 2, replace=False))
        for r in rows:
            if day <= r[1] < day + 28 and r[3] in bad:
                r[5] = 2
    for day in range(int(day_of.max())):
        bad = set(np.random.RandomState(seed + day).choice(config.customers, 3, replace=False))
        hit = [i for i, r in enumerate(rows) if day <= r[1] < day + 14 and r[2] in bad]
        random.seed(seed + day)
        for i in random.sample(hit, k=int(len(hit) / 3)):
            rows[i][4] *= 5
            rows[i][5] = 3
    return [(int(r[0]), int(r[2]), int(r[3]), float(r[4]), int(r[5])) for r in rows]


def _rows(ds: SimulatedDataset) -> list[tuple[int, int, int, float, int]]:
    return list(
        zip(
            ds.seconds.tolist(),
            ds.customer.tolist(),
            ds.terminal.tolist(),
            ds.amount.tolist(),
            ds.fraud_scenario.tolist(),
            strict=True,
        )
    )


@pytest.mark.usefixtures("restore_global_rngs")
def test_small_run_equals_the_literal_book_algorithm_row_for_row(
    small: SimulatedDataset, small_config: SimulatorConfig
) -> None:
    expected = _reference(small_config)
    assert _rows(small) == expected
    assert {1, 2, 3} <= {r[4] for r in expected}  # every book scenario was exercised


@pytest.mark.usefixtures("restore_global_rngs")
def test_seed_shifts_every_book_seed_by_the_same_offset() -> None:
    config = SimulatorConfig(customers=30, terminals=100, days=40, radius=10.0, seed=7)
    assert _rows(simulate(config)) == _reference(config)


def test_small_config_leaves_some_customers_without_terminals_and_rows(
    small: SimulatedDataset, small_config: SimulatorConfig
) -> None:
    assert len(set(small.customer.tolist())) < small_config.customers


def test_simulation_does_not_touch_the_global_generators() -> None:
    np_before, py_before = np.random.get_state(), random.getstate()
    simulate(SimulatorConfig(customers=5, terminals=20, days=5))
    np_after = np.random.get_state()
    assert random.getstate() == py_before
    assert all(np.array_equal(a, b) for a, b in zip(np_before, np_after, strict=True))


def test_rows_are_sorted_by_time_and_ids_are_ranks(small: SimulatedDataset) -> None:
    assert np.all(np.diff(small.seconds) >= 0)
    assert small.transaction_id.tolist() == list(range(len(small)))
    assert np.array_equal(small.is_fraud, small.fraud_scenario > 0)


def test_same_config_gives_the_same_dataset() -> None:
    config = SimulatorConfig(customers=20, terminals=60, days=20, radius=15.0)
    assert _rows(simulate(config)) == _rows(simulate(config))


@pytest.mark.slow
def test_default_config_reproduces_the_published_dataset() -> None:
    ds = simulate(SimulatorConfig())
    assert len(ds) == 1_754_155
    assert int(ds.is_fraud.sum()) == 14_681
    assert np.bincount(ds.fraud_scenario).tolist() == [1_754_155 - 14_681, 973, 9_077, 4_631]
    first = list(zip(ds.seconds[:5], ds.customer[:5], ds.terminal[:5], ds.amount[:5], strict=True))
    assert first == [
        (31, 596, 3156, 57.16),
        (130, 4961, 3412, 81.51),
        (476, 2, 1365, 146.00),
        (569, 4128, 8737, 64.49),
        (634, 927, 9906, 50.99),
    ]
    assert int(ds.timestamp_ms[0]) == 1_522_540_831_000  # 2018-04-01T00:00:31Z
    profile = ds.customers
    assert [
        round(float(v[0]), 2)
        for v in (profile.x, profile.y, profile.mean_amount, profile.std_amount)
    ] + [round(float(profile.mean_nb_tx_per_day[0]), 2)] == [54.88, 71.52, 62.26, 31.13, 2.18]
    extras = (ds.card_not_present, ds.merchant_category, ds.country, ds.lat, ds.lon)
    assert all(column is None for column in extras)
