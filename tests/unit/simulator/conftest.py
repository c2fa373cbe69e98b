"""Shared fixtures of the simulator tests: small configurations and global RNG hygiene."""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import pytest

from fraudstream.simulator import SimulatedDataset, SimulatorConfig, simulate

# Small enough to run in well under a second; radius 5 on 300 terminals leaves some customers
# with no terminal in reach, which exercises the book's "no terminal, no row" branch.
SMALL = SimulatorConfig(customers=80, terminals=300, days=60)
ALL_OPTIONS = SimulatorConfig(
    customers=300,
    terminals=600,
    days=30,
    cnp_share=0.3,
    merchant_categories=True,
    locations=True,
    card_testing_rate=2.0,
    stolen_card_rate=1.0,
)


@pytest.fixture
def restore_global_rngs() -> Iterator[None]:
    """Put NumPy's and Python's global generators back as they were after the test."""
    numpy_state = np.random.get_state()
    python_state = random.getstate()
    yield
    np.random.set_state(numpy_state)
    random.setstate(python_state)


@pytest.fixture(scope="session")
def small_config() -> SimulatorConfig:
    return SMALL


@pytest.fixture(scope="session")
def all_options_config() -> SimulatorConfig:
    return ALL_OPTIONS


@pytest.fixture(scope="session")
def small() -> SimulatedDataset:
    return simulate(SMALL)


@pytest.fixture(scope="session")
def all_options() -> SimulatedDataset:
    return simulate(ALL_OPTIONS)
