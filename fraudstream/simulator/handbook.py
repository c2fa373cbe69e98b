"""The Handbook's transactions and fraud scenarios 1-3, reproducing its random draws exactly.

The book seeds the *global* generators (``np.random.seed``, ``random.seed``) and draws scalars.
Private ``RandomState`` / ``random.Random`` instances seeded with the same integers produce the
very same sequences, so they are used instead: the caller's global random state is left alone.
The draw order is the book's, call for call; only work that consumes no randomness (rounding,
sorting, labelling) is vectorised.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from fraudstream.simulator.profiles import CustomerProfiles

__all__ = ["SECONDS_PER_DAY", "Transactions", "apply_book_scenarios", "generate_transactions"]

SECONDS_PER_DAY = 86_400
_TIME_MEAN = SECONDS_PER_DAY / 2
_TIME_STD = 20_000.0
_SCENARIO_1_THRESHOLD = 220.0
_SCENARIO_2_TERMINALS = 2
_SCENARIO_2_DAYS = 28
_SCENARIO_3_CUSTOMERS = 3
_SCENARIO_3_DAYS = 14
_SCENARIO_3_FACTOR = 5.0


@dataclass(frozen=True, slots=True, eq=False)
class Transactions:
    """Columns of simulated transactions, one row per transaction.

    :func:`generate_transactions` returns them sorted by time, so that row ``i`` is the book's
    ``TRANSACTION_ID`` ``i``; the extra scenarios return them in generation order.

    Attributes:
        seconds: Seconds since day 0 midnight (``TX_TIME_SECONDS``).
        customer: Customer (card) id.
        terminal: Terminal id.
        amount: Amount; scenario 3 frauds are already multiplied by 5.
        fraud_scenario: 0 for genuine, else the last scenario that labelled the row.
    """

    seconds: NDArray[np.int64]
    customer: NDArray[np.int64]
    terminal: NDArray[np.int64]
    amount: NDArray[np.float64]
    fraud_scenario: NDArray[np.int8]

    def __len__(self) -> int:
        return len(self.seconds)


def generate_transactions(
    customers: CustomerProfiles,
    available: list[list[int]],
    days: int,
    seed: int,
    *,
    progress: bool = False,
) -> Transactions:
    """Draw every customer's transactions as the book does, then sort them by time.

    Per customer ``c`` (generators seeded with ``seed + c``), per day: a Poisson count; per
    transaction: the time of day (kept only if strictly inside the day), the amount (redrawn
    uniformly when negative) and, if the customer has any terminal in reach, the terminal. The
    sort is stable, so same-second ties keep generation order (customer, day, draw). Scenarios
    are not applied here; see :func:`apply_book_scenarios`.
    """
    rs = np.random.RandomState()
    rnd = random.Random()
    poisson, normal, uniform, choice = rs.poisson, rs.normal, rs.uniform, rnd.choice
    seconds: list[int] = []
    terminal: list[int] = []
    raw_amount: list[float] = []
    counts: list[int] = []
    means = customers.mean_amount.tolist()
    stds = customers.std_amount.tolist()
    rates = customers.mean_nb_tx_per_day.tolist()
    bar = tqdm(total=len(customers), desc="customers", unit="cust", disable=not progress)
    with bar:
        for c in range(len(customers)):
            rs.seed(seed + c)
            rnd.seed(seed + c)
            mean, std, rate, terms = means[c], stds[c], rates[c], available[c]
            before = len(seconds)
            for day in range(days):
                offset = day * SECONDS_PER_DAY
                for _ in range(poisson(rate)):
                    time = int(normal(_TIME_MEAN, _TIME_STD))
                    if not 0 < time < SECONDS_PER_DAY:
                        continue  # the book drops it: no amount or terminal draw follows
                    amount = normal(mean, std)
                    if amount < 0:
                        amount = uniform(0, mean * 2)
                    if terms:  # the book draws no terminal, and keeps no row, when none
                        terminal.append(choice(terms))
                        seconds.append(time + offset)
                        raw_amount.append(amount)
            counts.append(len(seconds) - before)
            bar.update()
    times = np.array(seconds, dtype=np.int64)
    order = np.argsort(times, kind="stable")
    customer = np.repeat(np.arange(len(customers), dtype=np.int64), counts)
    # np.round on the whole array applies the same scale-rint-unscale as on each scalar.
    amounts = np.array(raw_amount, dtype=np.float64)
    np.round(amounts, 2, out=amounts)
    return Transactions(
        seconds=times[order],
        customer=customer[order],
        terminal=np.array(terminal, dtype=np.int64)[order],
        amount=amounts[order],
        fraud_scenario=np.zeros(len(order), dtype=np.int8),
    )


def apply_book_scenarios(tx: Transactions, n_customers: int, n_terminals: int, seed: int) -> None:
    """Label frauds in place with the book's scenarios 1, 2 and 3, in that order.

    1. Amount above 220 (before scenario 3 multiplies any amount).
    2. For each day ``d`` before the last transaction's day: 2 terminals drawn with
       ``RandomState(seed + d).choice(n_terminals, 2, replace=False)`` (what
       ``pandas.Series.sample(n=2, random_state=d)`` does); all their transactions on days
       ``d .. d + 27``.
    3. Same days: 3 customers drawn alike; of their transactions on days ``d .. d + 13`` (in
       row order), ``random.Random(seed + d).sample(rows, k=len(rows) // 3)`` have their amount
       multiplied by 5.

    Later scenarios overwrite earlier labels, as in the book.
    """
    if len(tx) == 0:
        return
    tx.fraud_scenario[tx.amount > _SCENARIO_1_THRESHOLD] = 1
    day = tx.seconds // SECONDS_PER_DAY
    last_day = int(day[-1])  # the book loops over range(TX_TIME_DAYS.max())
    bounds = np.searchsorted(day, np.arange(last_day + _SCENARIO_2_DAYS + 1), side="left")
    for d in range(last_day):
        chosen = np.random.RandomState(seed + d).choice(
            n_terminals, _SCENARIO_2_TERMINALS, replace=False
        )
        lo, hi = bounds[d], bounds[d + _SCENARIO_2_DAYS]
        rows = lo + np.flatnonzero(_among(tx.terminal[lo:hi], chosen))
        tx.fraud_scenario[rows] = 2
    rnd = random.Random()
    for d in range(last_day):
        chosen = np.random.RandomState(seed + d).choice(
            n_customers, _SCENARIO_3_CUSTOMERS, replace=False
        )
        lo, hi = bounds[d], bounds[d + _SCENARIO_3_DAYS]
        rows = (lo + np.flatnonzero(_among(tx.customer[lo:hi], chosen))).tolist()
        rnd.seed(seed + d)
        picked = np.array(rnd.sample(rows, k=len(rows) // 3), dtype=np.int64)
        tx.amount[picked] *= _SCENARIO_3_FACTOR
        tx.fraud_scenario[picked] = 3


def _among(values: NDArray[np.int64], chosen: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Tell which ``values`` are in the few ``chosen`` (faster than ``np.isin`` for 2 or 3).

    >>> _among(np.array([4, 1, 7, 1]), np.array([1, 7])).tolist()
    [False, True, True, True]
    """
    mask: NDArray[np.bool_] = values == chosen[0]
    for value in chosen[1:]:
        mask |= values == value
    return mask
