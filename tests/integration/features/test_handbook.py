"""Online features on the handbook's simulated data equal the book's offline definitions."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fraudstream.features import FeatureConfig, RedisFeatureStore
from fraudstream.simulator import SimulatorConfig, simulate

from .handbook import match_rate, offline_features, online_features

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.mark.timeout(900)
def test_handbook_features_match_offline_definitions(
    make_store: Callable[[FeatureConfig], RedisFeatureStore],
) -> None:
    ds = simulate(SimulatorConfig(customers=600, terminals=1200, days=75))
    assert len(ds) > 40_000
    online = online_features(make_store(FeatureConfig()), ds)
    assert match_rate(online, offline_features(ds)) >= 0.9999
