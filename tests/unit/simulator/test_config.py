"""SimulatorConfig: book defaults, validation messages."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from fraudstream.errors import ConfigError
from fraudstream.simulator import SimulatorConfig


def test_defaults_are_the_handbook_setup_with_every_extra_off() -> None:
    config = SimulatorConfig()
    assert (config.customers, config.terminals, config.days) == (5000, 10000, 183)
    assert (config.start_date, config.seed, config.radius) == (dt.date(2018, 4, 1), 0, 5.0)
    assert config.cnp_share == config.card_testing_rate == config.stolen_card_rate == 0.0
    assert not config.merchant_categories
    assert not config.locations


def test_start_is_midnight_utc_of_the_start_date() -> None:
    start = SimulatorConfig(start_date=dt.date(2020, 2, 29)).start
    assert start == dt.datetime(2020, 2, 29, tzinfo=dt.UTC)
    assert start.utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"customers": -1}, "expected customers >= 3; got -1"),
        ({"customers": 2}, "expected customers >= 3; got 2"),
        ({"customers": 5.0}, "expected customers to be an int; got 5.0"),
        ({"terminals": 1}, "expected terminals >= 2; got 1"),
        ({"days": 0}, "expected days >= 1; got 0"),
        ({"seed": -3}, "expected seed >= 0; got -3"),
        ({"seed": True}, "expected seed to be an int; got True"),
        ({"seed": 2**32 - 10}, "expected seed + max(customers, days) <= 4294967295"),
        ({"radius": 0.0}, "expected radius > 0; got 0.0"),
        ({"radius": float("nan")}, "expected radius to be finite; got nan"),
        ({"cnp_share": 1.5}, "expected cnp_share <= 1; got 1.5"),
        ({"cnp_share": -0.1}, "expected cnp_share >= 0; got -0.1"),
        ({"card_testing_rate": -1}, "expected card_testing_rate >= 0; got -1"),
        ({"stolen_card_rate": "2"}, "expected stolen_card_rate to be a number; got '2'"),
        ({"locations": 1}, "expected locations to be a bool; got 1"),
        ({"start_date": "2018-04-01"}, "expected start_date to be a datetime.date"),
    ],
)
def test_invalid_values_raise_config_error_naming_the_value(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        SimulatorConfig(**changes)  # type: ignore[arg-type]


def test_config_is_frozen() -> None:
    config = SimulatorConfig()
    with pytest.raises(AttributeError):
        config.days = 3  # type: ignore[misc]
