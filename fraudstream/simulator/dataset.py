"""Run the whole simulation and hold its result as time-sorted numpy columns."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from fraudstream.simulator import attacks, extras
from fraudstream.simulator.config import SimulatorConfig
from fraudstream.simulator.handbook import (
    Transactions,
    apply_book_scenarios,
    generate_transactions,
)
from fraudstream.simulator.profiles import (
    CustomerProfiles,
    TerminalProfiles,
    available_terminals,
    customer_profiles,
    terminal_profiles,
)

__all__ = ["SimulatedDataset", "simulate"]


@dataclass(frozen=True, slots=True, eq=False)
class SimulatedDataset:
    """Simulated transactions as columns sorted by time; row ``i`` has ``transaction_id`` ``i``.

    Optional columns are ``None`` when their option is off.

    Attributes:
        start: Midnight UTC of day 0 (tz-aware).
        transaction_id: Rank by time, ``0..n-1``.
        seconds: Seconds since ``start``.
        customer: Customer (card) id.
        terminal: Terminal id.
        amount: Amount, 2 decimals (up to float noise where scenario 3 multiplied it by 5).
        is_fraud: Fraud label.
        fraud_scenario: 0 for genuine; 1-3 the book's scenarios; 4 card testing; 5 stolen card.
        card_not_present: Channel, ``True`` for card-not-present (option ``cnp_share``).
        merchant_category: 4-digit MCC strings (option ``merchant_categories``).
        country: ISO 3166 alpha-2 codes (option ``locations``).
        lat: Latitude in degrees (option ``locations``).
        lon: Longitude in degrees (option ``locations``).
        customers: The customer profiles.
        terminals: The terminal profiles.
    """

    start: dt.datetime
    transaction_id: NDArray[np.int64]
    seconds: NDArray[np.int64]
    customer: NDArray[np.int64]
    terminal: NDArray[np.int64]
    amount: NDArray[np.float64]
    is_fraud: NDArray[np.bool_]
    fraud_scenario: NDArray[np.int8]
    card_not_present: NDArray[np.bool_] | None
    merchant_category: NDArray[np.str_] | None
    country: NDArray[np.str_] | None
    lat: NDArray[np.float64] | None
    lon: NDArray[np.float64] | None
    customers: CustomerProfiles
    terminals: TerminalProfiles

    def __len__(self) -> int:
        return len(self.transaction_id)

    @property
    def timestamp_ms(self) -> NDArray[np.int64]:
        """Event times as integer epoch milliseconds (UTC)."""
        start_ms = int(self.start.timestamp()) * 1000
        return start_ms + self.seconds * 1000


def simulate(config: SimulatorConfig, progress: bool = False) -> SimulatedDataset:
    """Simulate transactions; the default config reproduces the Handbook's dataset exactly.

    Args:
        config: What to simulate.
        progress: Show a progress bar on stderr while transactions are drawn.

    Returns:
        The transactions, sorted by time (same-second ties: book rows in generation order,
        then scenario 4 rows, then scenario 5 rows).
    """
    seed = config.seed
    customers = customer_profiles(config.customers, seed)
    terminals = terminal_profiles(config.terminals, seed + 1)
    available = available_terminals(customers, terminals, config.radius)
    book = generate_transactions(customers, available, config.days, seed, progress=progress)
    apply_book_scenarios(book, config.customers, config.terminals, seed)

    parts = [book]
    if config.card_testing_rate > 0:
        rng = extras.option_rng(seed, extras.OPTION_CARD_TESTING)
        parts.append(
            attacks.card_testing(
                config.card_testing_rate, config.days, available, config.terminals, rng
            )
        )
    if config.stolen_card_rate > 0:
        rng = extras.option_rng(seed, extras.OPTION_STOLEN_CARD)
        parts.append(
            attacks.stolen_cards(
                config.stolen_card_rate, config.days, customers, terminals, config.radius, rng
            )
        )

    categories = None
    if config.merchant_categories:
        rng = extras.option_rng(seed, extras.OPTION_CATEGORY)
        categories = extras.terminal_categories(config.terminals, rng)
    added = [
        _extra_columns(config, part, part_no, categories, customers, terminals)
        for part_no, part in enumerate(parts)
    ]
    merged = _concatenate(parts)
    order = np.argsort(merged.seconds, kind="stable")
    return SimulatedDataset(
        start=config.start,
        transaction_id=np.arange(len(order), dtype=np.int64),
        seconds=merged.seconds[order],
        customer=merged.customer[order],
        terminal=merged.terminal[order],
        amount=merged.amount[order],
        is_fraud=merged.fraud_scenario[order] > 0,
        fraud_scenario=merged.fraud_scenario[order],
        card_not_present=_merge([a.card_not_present for a in added], order),
        merchant_category=_merge([a.merchant_category for a in added], order),
        country=_merge([a.country for a in added], order),
        lat=_merge([a.lat for a in added], order),
        lon=_merge([a.lon for a in added], order),
        customers=customers,
        terminals=terminals,
    )


@dataclass(frozen=True, slots=True, eq=False)
class _Extras:
    """The optional columns of one part of the rows, ``None`` when off."""

    card_not_present: NDArray[np.bool_] | None = None
    merchant_category: NDArray[np.str_] | None = None
    country: NDArray[np.str_] | None = None
    lat: NDArray[np.float64] | None = None
    lon: NDArray[np.float64] | None = None


def _extra_columns(
    config: SimulatorConfig,
    part: Transactions,
    part_no: int,
    categories: NDArray[np.str_] | None,
    customers: CustomerProfiles,
    terminals: TerminalProfiles,
) -> _Extras:
    """Compute the optional columns of one part, each option from its own generator."""
    cnp = None
    if config.cnp_share > 0:
        rng = extras.option_rng(config.seed, extras.OPTION_CHANNEL, part_no)
        cnp = extras.card_not_present(part, config.cnp_share, rng)
    lat = lon = country = None
    if config.locations:
        rng = extras.option_rng(config.seed, extras.OPTION_LOCATION, part_no)
        lat, lon, country = extras.locations(part, cnp, customers, terminals, rng)
    return _Extras(
        card_not_present=cnp,
        merchant_category=None if categories is None else categories[part.terminal],
        country=country,
        lat=lat,
        lon=lon,
    )


_T = TypeVar("_T", bound=np.generic)


def _merge(columns: list[NDArray[_T] | None], order: NDArray[np.intp]) -> NDArray[_T] | None:
    """Concatenate one optional column over the parts and sort it; ``None`` when off."""
    present = [c for c in columns if c is not None]
    if not present:
        return None
    return np.concatenate(present)[order]


def _concatenate(parts: list[Transactions]) -> Transactions:
    if len(parts) == 1:
        return parts[0]
    return Transactions(
        seconds=np.concatenate([p.seconds for p in parts]),
        customer=np.concatenate([p.customer for p in parts]),
        terminal=np.concatenate([p.terminal for p in parts]),
        amount=np.concatenate([p.amount for p in parts]),
        fraud_scenario=np.concatenate([p.fraud_scenario for p in parts]),
    )
