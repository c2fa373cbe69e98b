"""Profiles: bit-identical to the book's scalar draws on the global generator."""

from __future__ import annotations

import numpy as np
import pytest

from fraudstream.simulator.profiles import (
    available_terminals,
    customer_profiles,
    terminal_profiles,
)


@pytest.mark.usefixtures("restore_global_rngs")
def test_customer_profiles_equal_the_books_scalar_global_draws() -> None:
    np.random.seed(3)
    expected = []
    for _ in range(50):
        x, y = np.random.uniform(0, 100), np.random.uniform(0, 100)
        mean = np.random.uniform(5, 100)
        rate = np.random.uniform(0, 4)
        expected.append((x, y, mean, mean / 2, rate))
    p = customer_profiles(50, 3)
    got = list(zip(p.x, p.y, p.mean_amount, p.std_amount, p.mean_nb_tx_per_day, strict=True))
    assert got == expected


@pytest.mark.usefixtures("restore_global_rngs")
def test_terminal_profiles_equal_the_books_scalar_global_draws() -> None:
    np.random.seed(4)
    expected = [(np.random.uniform(0, 100), np.random.uniform(0, 100)) for _ in range(80)]
    t = terminal_profiles(80, 4)
    assert list(zip(t.x, t.y, strict=True)) == expected


def test_customer_zero_has_the_published_profile() -> None:
    p = customer_profiles(5000, 0)
    values = (p.x, p.y, p.mean_amount, p.std_amount, p.mean_nb_tx_per_day)
    assert [round(float(v[0]), 2) for v in values] == [54.88, 71.52, 62.26, 31.13, 2.18]


def test_available_terminals_match_the_books_distance_rule() -> None:
    customers, terminals = customer_profiles(300, 0), terminal_profiles(2000, 1)
    got = available_terminals(customers, terminals, 7.5)
    terminal_xy = np.stack([terminals.x, terminals.y], axis=1)
    for c in range(len(customers)):
        customer_xy = np.array([customers.x[c], customers.y[c]])
        distance = np.sqrt(np.sum(np.square(customer_xy - terminal_xy), axis=1))
        assert got[c] == list(np.where(distance < 7.5)[0])


def test_default_population_reaches_75_2_terminals_on_average_and_never_none() -> None:
    got = available_terminals(customer_profiles(5000, 0), terminal_profiles(10000, 1), 5.0)
    sizes = [len(a) for a in got]
    assert round(sum(sizes) / len(sizes), 1) == 75.2
    assert min(sizes) > 0
    assert all(a == sorted(a) for a in got)
