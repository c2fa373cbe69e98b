"""Fraud scenarios beyond the book: card-testing bursts (4) and stolen cards (5).

Both add new transactions (the book's rows are never altered) and draw from their own
``numpy.random.Generator``, so they leave the book's draws untouched. Rows are returned in
generation order; the caller merges them into the time-sorted stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from fraudstream.simulator.handbook import SECONDS_PER_DAY, Transactions
from fraudstream.simulator.profiles import CustomerProfiles, TerminalProfiles

__all__ = ["CARD_TESTING", "STOLEN_CARD", "card_testing", "stolen_cards"]

CARD_TESTING = 4
STOLEN_CARD = 5


@dataclass(frozen=True, slots=True)
class _Burst:
    """Shape of one fraud episode: how many transactions, how far apart, how large."""

    min_size: int
    max_size: int
    mean_gap_seconds: float
    first_hour: int
    last_hour: int


# Card testing: 5-20 tiny payments about 30 s apart, any time of day, to see which work.
_TESTING = _Burst(min_size=5, max_size=20, mean_gap_seconds=30.0, first_hour=0, last_hour=24)
_TESTING_AMOUNT = (0.10, 3.00)
# Stolen card: 3-10 purchases about 10 min apart in shop hours, worth 1.5-5x the card's mean.
_STOLEN = _Burst(min_size=3, max_size=10, mean_gap_seconds=600.0, first_hour=8, last_hour=20)
_STOLEN_AMOUNT_FACTOR = (1.5, 5.0)
# A stolen card is used around a terminal at least this far (grid units) from its owner.
_FAR_FROM_HOME = 25.0


def card_testing(
    rate: float,
    days: int,
    available: list[list[int]],
    n_terminals: int,
    rng: np.random.Generator,
) -> Transactions:
    """Simulate card-testing bursts, fraud scenario 4.

    Each day brings Poisson(``rate``) bursts. A burst takes one random card and makes 5-20
    small payments (0.10-3.00) within minutes, each on a different terminal the card has never
    used (one out of its reach).
    """
    rows: list[tuple[NDArray[np.int64], int, NDArray[np.int64], NDArray[np.float64]]] = []
    everything = np.arange(n_terminals, dtype=np.int64)
    for day in range(days):
        for _ in range(int(rng.poisson(rate))):
            card = int(rng.integers(len(available)))
            seconds = _episode_times(day, _TESTING, rng)
            new = np.setdiff1d(everything, available[card], assume_unique=True)
            if len(new) == 0:
                continue
            seconds = seconds[: len(new)]
            terminals = rng.choice(new, size=len(seconds), replace=False)
            amounts = np.round(rng.uniform(*_TESTING_AMOUNT, size=len(seconds)), 2)
            rows.append((seconds, card, terminals, amounts))
    return _assemble(rows, days, CARD_TESTING)


def stolen_cards(
    rate: float,
    days: int,
    customers: CustomerProfiles,
    terminals: TerminalProfiles,
    radius: float,
    rng: np.random.Generator,
) -> Transactions:
    """Simulate stolen cards, fraud scenario 5.

    Each day brings Poisson(``rate``) thefts. The thief takes the card far from home (to a
    terminal at least 25 grid units away, or the farthest one when none is) and makes 3-10
    purchases of 1.5-5 times the card's mean amount, about ten minutes apart, on terminals
    within ``radius`` of that spot.
    """
    rows: list[tuple[NDArray[np.int64], int, NDArray[np.int64], NDArray[np.float64]]] = []
    for day in range(days):
        for _ in range(int(rng.poisson(rate))):
            card = int(rng.integers(len(customers)))
            seconds = _episode_times(day, _STOLEN, rng)
            home = np.hypot(terminals.x - customers.x[card], terminals.y - customers.y[card])
            far = np.flatnonzero(home >= _FAR_FROM_HOME)
            spot = int(rng.choice(far)) if len(far) else int(np.argmax(home))
            around = np.hypot(terminals.x - terminals.x[spot], terminals.y - terminals.y[spot])
            nearby = np.flatnonzero(around < radius)
            chosen = rng.choice(nearby, size=len(seconds)).astype(np.int64)
            factor = rng.uniform(*_STOLEN_AMOUNT_FACTOR, size=len(seconds))
            amounts = np.round(customers.mean_amount[card] * factor, 2)
            rows.append((seconds, card, chosen, amounts))
    return _assemble(rows, days, STOLEN_CARD)


def _episode_times(day: int, burst: _Burst, rng: np.random.Generator) -> NDArray[np.int64]:
    """Draw the seconds of one episode starting on ``day``: a start, then exponential gaps."""
    size = int(rng.integers(burst.min_size, burst.max_size + 1))
    start = day * SECONDS_PER_DAY + int(
        rng.integers(burst.first_hour * 3600, burst.last_hour * 3600)
    )
    gaps = np.maximum(1, np.rint(rng.exponential(burst.mean_gap_seconds, size=size)))
    gaps[0] = 0
    return start + np.cumsum(gaps).astype(np.int64)


def _assemble(
    rows: list[tuple[NDArray[np.int64], int, NDArray[np.int64], NDArray[np.float64]]],
    days: int,
    scenario: int,
) -> Transactions:
    """Concatenate episodes into columns, dropping payments after the simulated period."""
    if rows:
        seconds = np.concatenate([r[0] for r in rows])
        customer = np.concatenate([np.full(len(r[0]), r[1], dtype=np.int64) for r in rows])
        terminal = np.concatenate([r[2] for r in rows])
        amount = np.concatenate([r[3] for r in rows])
    else:
        seconds = customer = terminal = np.zeros(0, dtype=np.int64)
        amount = np.zeros(0, dtype=np.float64)
    keep = seconds < days * SECONDS_PER_DAY
    return Transactions(
        seconds=seconds[keep],
        customer=customer[keep],
        terminal=terminal[keep],
        amount=amount[keep],
        fraud_scenario=np.full(int(keep.sum()), scenario, dtype=np.int8),
    )
