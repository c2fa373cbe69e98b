"""The examples in the simulator's docstrings run and hold."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "fraudstream.simulator",
    "fraudstream.simulator.config",
    "fraudstream.simulator.profiles",
    "fraudstream.simulator.handbook",
    "fraudstream.simulator.attacks",
    "fraudstream.simulator.extras",
    "fraudstream.simulator.dataset",
    "fraudstream.simulator.io",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
