"""Customer and terminal profiles on the Handbook's 100 x 100 grid, drawn exactly as the book.

The book draws each profile with scalar calls on the legacy global NumPy generator. A legacy
``uniform(low, high)`` is ``low + (high - low) * next_double()`` whether drawn one at a time or
as an array, so drawing all profiles as one C-ordered array consumes the same doubles in the
same order and yields bit-identical values, without touching the global generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "CustomerProfiles",
    "TerminalProfiles",
    "available_terminals",
    "customer_profiles",
    "terminal_profiles",
]

# Grid units added to the x window of candidate terminals, far above any rounding error.
_MARGIN = 1e-6


@dataclass(frozen=True, slots=True, eq=False)
class CustomerProfiles:
    """One row per customer id ``0..n-1``.

    Attributes:
        x: Grid abscissa in [0, 100).
        y: Grid ordinate in [0, 100).
        mean_amount: Mean transaction amount, in [5, 100).
        std_amount: Standard deviation of the amount, ``mean_amount / 2``.
        mean_nb_tx_per_day: Poisson mean of the daily transaction count, in [0, 4).
    """

    x: NDArray[np.float64]
    y: NDArray[np.float64]
    mean_amount: NDArray[np.float64]
    std_amount: NDArray[np.float64]
    mean_nb_tx_per_day: NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.x)


@dataclass(frozen=True, slots=True, eq=False)
class TerminalProfiles:
    """One row per terminal id ``0..n-1``: grid coordinates ``x`` and ``y`` in [0, 100)."""

    x: NDArray[np.float64]
    y: NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.x)


def customer_profiles(n: int, seed: int) -> CustomerProfiles:
    """Draw ``n`` customer profiles as the book does with ``np.random.seed(seed)``.

    Per customer, in order: x = U(0, 100), y = U(0, 100), mean_amount = U(5, 100),
    mean_nb_tx_per_day = U(0, 4); std_amount = mean_amount / 2 is not drawn.

    >>> p = customer_profiles(5000, 0)
    >>> [round(float(v[0]), 2) for v in (p.x, p.y, p.mean_amount, p.std_amount,
    ...                                  p.mean_nb_tx_per_day)]
    [54.88, 71.52, 62.26, 31.13, 2.18]
    """
    low = np.array([0.0, 0.0, 5.0, 0.0])
    high = np.array([100.0, 100.0, 100.0, 4.0])
    draws = np.random.RandomState(seed).uniform(low, high, size=(n, 4))
    mean_amount = np.ascontiguousarray(draws[:, 2])
    return CustomerProfiles(
        x=np.ascontiguousarray(draws[:, 0]),
        y=np.ascontiguousarray(draws[:, 1]),
        mean_amount=mean_amount,
        std_amount=mean_amount / 2,
        mean_nb_tx_per_day=np.ascontiguousarray(draws[:, 3]),
    )


def terminal_profiles(n: int, seed: int) -> TerminalProfiles:
    """Draw ``n`` terminal positions as the book does with ``np.random.seed(seed)``.

    >>> t = terminal_profiles(3, 1)
    >>> [round(float(v), 2) for v in t.x], [round(float(v), 2) for v in t.y]
    ([41.7, 0.01, 14.68], [72.03, 30.23, 9.23])
    """
    draws = np.random.RandomState(seed).uniform(0.0, 100.0, size=(n, 2))
    return TerminalProfiles(
        x=np.ascontiguousarray(draws[:, 0]), y=np.ascontiguousarray(draws[:, 1])
    )


def available_terminals(
    customers: CustomerProfiles, terminals: TerminalProfiles, radius: float
) -> list[list[int]]:
    """List, per customer, the terminal ids strictly closer than ``radius``, ascending.

    The distance is computed with the book's exact float operations (difference, square, sum of
    the two coordinates, square root) so that terminals near the boundary fall on the same side.

    >>> c = CustomerProfiles(*(np.array([v]) for v in (0.0, 0.0, 10.0, 5.0, 1.0)))
    >>> t = TerminalProfiles(np.array([3.0, 5.0, 1.0]), np.array([4.0, 0.0, 1.0]))
    >>> available_terminals(c, t, 5.0)
    [[2]]
    """
    terminal_xy = np.stack([terminals.x, terminals.y], axis=1)
    by_x = np.argsort(terminals.x, kind="stable")
    sorted_x = terminals.x[by_x]
    # Only terminals within the radius along x can be within it in the plane; the window is
    # widened by a margin so that rounding of ``x - radius`` can never exclude one of them.
    reach = radius + _MARGIN
    lows = np.searchsorted(sorted_x, customers.x - reach, side="left").tolist()
    highs = np.searchsorted(sorted_x, customers.x + reach, side="right").tolist()
    result: list[list[int]] = []
    for c, (lo, hi) in enumerate(zip(lows, highs, strict=True)):
        candidates = by_x[lo:hi]
        customer_xy = np.array([customers.x[c], customers.y[c]])
        distance = np.sqrt(np.sum(np.square(customer_xy - terminal_xy[candidates]), axis=1))
        result.append(np.sort(candidates[distance < radius]).tolist())
    return result
