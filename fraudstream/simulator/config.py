"""The simulator's one configuration object, validated when it is built.

Seeding scheme (``seed`` = 0 reproduces the Fraud Detection Handbook's published dataset):

- customer profiles: legacy NumPy ``RandomState(seed)``;
- terminal profiles: legacy NumPy ``RandomState(seed + 1)``;
- transactions of customer ``c``: ``RandomState(seed + c)`` and ``random.Random(seed + c)``;
- fraud scenarios 2 and 3 on day ``d``: ``RandomState(seed + d)`` and ``random.Random(seed + d)``;
- everything beyond the book (channels, merchant categories, locations, scenarios 4 and 5):
  one independent ``numpy.random.Generator`` per option, spawned from ``SeedSequence(seed)``, so
  turning an option on never changes the book's draws nor another option's draws.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from fraudstream.errors import ConfigError

__all__ = ["MAX_LEGACY_SEED", "SimulatorConfig"]

# Legacy ``RandomState`` seeds are unsigned 32-bit integers; ``seed + customer`` and
# ``seed + day`` must stay within that range.
MAX_LEGACY_SEED = 2**32 - 1


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """What to simulate; the defaults reproduce the Handbook's dataset exactly.

    Attributes:
        customers: Number of customers (cards); at least 3, scenario 3 draws 3 a day.
        terminals: Number of terminals; at least 2, scenario 2 draws 2 a day.
        days: Number of simulated days.
        start_date: Day 0, midnight UTC.
        seed: Base seed, see the module docstring; 0 reproduces the book.
        radius: A customer uses the terminals strictly closer than this (grid units, 0-100).
        cnp_share: Share of genuine transactions that are card-not-present; 0 turns the
            ``channel`` column off.
        merchant_categories: Give each terminal a 4-digit merchant category code (MCC).
        locations: Add ``lat``, ``lon`` and ``country`` to each transaction.
        card_testing_rate: Mean number of card-testing bursts (fraud scenario 4) per day over
            the whole population; 0 turns the scenario off.
        stolen_card_rate: Mean number of stolen cards (fraud scenario 5) per day over the whole
            population; 0 turns the scenario off.
    """

    customers: int = 5000
    terminals: int = 10000
    days: int = 183
    start_date: dt.date = dt.date(2018, 4, 1)
    seed: int = 0
    radius: float = 5.0
    cnp_share: float = 0.0
    merchant_categories: bool = False
    locations: bool = False
    card_testing_rate: float = 0.0
    stolen_card_rate: float = 0.0

    def __post_init__(self) -> None:
        _check_int("customers", self.customers, 3)
        _check_int("terminals", self.terminals, 2)
        _check_int("days", self.days, 1)
        _check_int("seed", self.seed, 0)
        if self.seed + max(self.customers, self.days) > MAX_LEGACY_SEED:
            raise ConfigError(
                f"expected seed + max(customers, days) <= {MAX_LEGACY_SEED}; "
                f"got {self.seed + max(self.customers, self.days)}"
            )
        if not isinstance(self.start_date, dt.date) or isinstance(self.start_date, dt.datetime):
            raise ConfigError(f"expected start_date to be a datetime.date; got {self.start_date!r}")
        _check_float("radius", self.radius, 0.0, None, low_open=True)
        _check_float("cnp_share", self.cnp_share, 0.0, 1.0)
        _check_float("card_testing_rate", self.card_testing_rate, 0.0, None)
        _check_float("stolen_card_rate", self.stolen_card_rate, 0.0, None)
        for name in ("merchant_categories", "locations"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise ConfigError(f"expected {name} to be a bool; got {value!r}")

    @property
    def start(self) -> dt.datetime:
        """Midnight UTC of ``start_date``, the origin of the simulated clock.

        >>> SimulatorConfig().start.isoformat()
        '2018-04-01T00:00:00+00:00'
        """
        return dt.datetime.combine(self.start_date, dt.time(), tzinfo=dt.UTC)


def _check_int(name: str, value: object, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"expected {name} to be an int; got {value!r}")
    if value < minimum:
        raise ConfigError(f"expected {name} >= {minimum}; got {value}")


def _check_float(
    name: str,
    value: object,
    low: float,
    high: float | None,
    *,
    low_open: bool = False,
) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ConfigError(f"expected {name} to be a number; got {value!r}")
    if value != value or value in (float("inf"), float("-inf")):
        raise ConfigError(f"expected {name} to be finite; got {value}")
    if low_open and value <= low:
        raise ConfigError(f"expected {name} > {low:g}; got {value}")
    if value < low:
        raise ConfigError(f"expected {name} >= {low:g}; got {value}")
    if high is not None and value > high:
        raise ConfigError(f"expected {name} <= {high:g}; got {value}")
