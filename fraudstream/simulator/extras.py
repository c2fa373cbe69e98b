"""Columns beyond the book: payment channel, merchant category and location.

Each option draws from its own ``numpy.random.Generator`` (see :func:`option_rng`), and draws
a fixed number of values per row of a given part (book rows, scenario 4 rows, scenario 5 rows),
so turning one option on changes neither the book's draws nor another option's values.

Geography: the book's 100 x 100 grid becomes a 100 km x 100 km square centred on Brussels
(1 grid unit = 1 km), so all terminals and homes are in Belgium (``BE``).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from fraudstream.simulator.attacks import CARD_TESTING, STOLEN_CARD
from fraudstream.simulator.handbook import Transactions
from fraudstream.simulator.profiles import CustomerProfiles, TerminalProfiles

__all__ = [
    "HOME_COUNTRY",
    "card_not_present",
    "grid_to_lat_lon",
    "locations",
    "option_rng",
    "terminal_categories",
]

# Spawn keys of the per-option generators; never renumber them, or seeded runs change.
OPTION_CHANNEL = 1
OPTION_CATEGORY = 2
OPTION_LOCATION = 3
OPTION_CARD_TESTING = 4
OPTION_STOLEN_CARD = 5

HOME_COUNTRY = "BE"
_CENTRE_LAT, _CENTRE_LON = 50.85, 4.35  # Brussels
_KM_PER_DEGREE_LAT = 111.32
_KM_PER_DEGREE_LON = _KM_PER_DEGREE_LAT * math.cos(math.radians(_CENTRE_LAT))
# Genuine card-not-present goods go to the home address (within a few km) except for this
# share sent abroad (gifts, holidays), so a foreign delivery hints at, but does not prove, fraud.
_GENUINE_ABROAD_SHARE = 0.03
_HOME_JITTER_KM = 2.0
_CITY_JITTER_DEGREES = 0.05
# Foreign delivery places: country, latitude, longitude.
_ABROAD: tuple[tuple[str, float, float], ...] = (
    ("NL", 52.37, 4.90),
    ("FR", 48.86, 2.35),
    ("DE", 52.52, 13.40),
    ("GB", 51.51, -0.13),
    ("ES", 40.42, -3.70),
    ("IT", 45.46, 9.19),
    ("PL", 52.23, 21.01),
    ("RO", 44.43, 26.10),
    ("US", 40.71, -74.01),
    ("BR", -23.55, -46.63),
    ("NG", 6.52, 3.38),
)
# Merchant category codes (ISO 18245) and the share of terminals in each.
_CATEGORIES: tuple[tuple[str, float], ...] = (
    ("5411", 0.22),  # grocery stores, supermarkets
    ("5812", 0.12),  # restaurants
    ("5814", 0.09),  # fast food
    ("5541", 0.08),  # service stations
    ("5999", 0.08),  # miscellaneous retail
    ("5912", 0.06),  # drug stores, pharmacies
    ("5311", 0.05),  # department stores
    ("5651", 0.05),  # family clothing
    ("5200", 0.04),  # home supply, hardware
    ("4111", 0.04),  # commuter transport
    ("5732", 0.03),  # electronics
    ("5942", 0.02),  # book stores
    ("7832", 0.02),  # cinemas
    ("7011", 0.02),  # hotels
    ("4814", 0.02),  # telecommunication services
    ("5944", 0.02),  # jewellery
    ("5816", 0.02),  # digital goods: games
    ("5968", 0.02),  # direct marketing: subscriptions
)


def option_rng(seed: int, option: int, part: int = 0) -> np.random.Generator:
    """Return the independent generator of one option (and one part of the rows).

    >>> float(option_rng(0, 1).random()) == float(option_rng(0, 1).random())
    True
    >>> float(option_rng(0, 1).random()) == float(option_rng(0, 2).random())
    False
    """
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(option, part)))


def card_not_present(tx: Transactions, share: float, rng: np.random.Generator) -> NDArray[np.bool_]:
    """Draw each row's channel: ``True`` for card-not-present.

    Genuine rows are card-not-present with probability ``share``. Scenario 3 (leaked
    credentials, the book's card-not-present fraud) and 4 (card testing) are always
    card-not-present; scenario 5 (a stolen plastic card) is always card-present.
    """
    cnp = rng.random(len(tx)) < share
    cnp[(tx.fraud_scenario == 3) | (tx.fraud_scenario == CARD_TESTING)] = True
    cnp[tx.fraud_scenario == STOLEN_CARD] = False
    return cnp


def terminal_categories(n_terminals: int, rng: np.random.Generator) -> NDArray[np.str_]:
    """Draw a 4-digit merchant category code for each terminal, weighted by the table."""
    codes = np.array([code for code, _ in _CATEGORIES], dtype="U4")
    weights = np.array([weight for _, weight in _CATEGORIES])
    return codes[rng.choice(len(codes), size=n_terminals, p=weights / weights.sum())]


def grid_to_lat_lon(
    x: NDArray[np.float64], y: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Map grid coordinates (km, 0-100) to latitude and longitude around Brussels.

    >>> lat, lon = grid_to_lat_lon(np.array([50.0, 0.0]), np.array([50.0, 100.0]))
    >>> [round(float(v), 3) for v in lat], [round(float(v), 3) for v in lon]
    ([50.85, 51.299], [4.35, 3.639])
    """
    lat = _CENTRE_LAT + (y - 50.0) / _KM_PER_DEGREE_LAT
    lon = _CENTRE_LON + (x - 50.0) / _KM_PER_DEGREE_LON
    return lat, lon


def locations(
    tx: Transactions,
    cnp: NDArray[np.bool_] | None,
    customers: CustomerProfiles,
    terminals: TerminalProfiles,
    rng: np.random.Generator,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.str_]]:
    """Place each row: latitude, longitude and ISO 3166 alpha-2 country.

    Card-present rows (all rows when ``cnp`` is ``None``) take their terminal's place.
    Card-not-present rows take a delivery address: near the card's home (a few km), except
    for fraud, and for 3 % of genuine rows, which are delivered to a foreign city (one city per
    card for fraud).
    """
    n = len(tx)
    jitter_km = rng.normal(0.0, _HOME_JITTER_KM, size=(2, n))
    abroad_draw = rng.random(n)
    city = rng.integers(len(_ABROAD), size=n)
    # A fraudster ships everything bought with one card to one place.
    fraud_city = rng.integers(len(_ABROAD), size=len(customers))
    city_jitter = rng.normal(0.0, _CITY_JITTER_DEGREES, size=(2, n))
    lat, lon = grid_to_lat_lon(terminals.x[tx.terminal], terminals.y[tx.terminal])
    country = np.full(n, HOME_COUNTRY, dtype="U2")
    if cnp is None:
        return lat, lon, country
    home_lat, home_lon = grid_to_lat_lon(
        customers.x[tx.customer] + jitter_km[0], customers.y[tx.customer] + jitter_km[1]
    )
    lat = np.where(cnp, home_lat, lat)
    lon = np.where(cnp, home_lon, lon)
    fraud = tx.fraud_scenario > 0
    abroad = cnp & (fraud | (abroad_draw < _GENUINE_ABROAD_SHARE))
    city = np.where(fraud, fraud_city[tx.customer], city)
    codes = np.array([c for c, _, _ in _ABROAD], dtype="U2")
    city_lat = np.array([la for _, la, _ in _ABROAD])[city] + city_jitter[0]
    city_lon = np.array([lo for _, _, lo in _ABROAD])[city] + city_jitter[1]
    lat = np.where(abroad, city_lat, lat)
    lon = np.where(abroad, city_lon, lon)
    country = np.where(abroad, codes[city], country)
    return lat, lon, country
