"""Rolling per-card and per-terminal aggregates: the feature vector of every transaction.

Two peer implementations of :class:`FeatureStore`: :class:`RedisFeatureStore` (production,
server-side Lua, one round trip per batch) and :class:`MemoryFeatureStore` (plain Python, the
test oracle). Window math lives in :mod:`.window`, names and derivation in :mod:`.catalogue`,
Redis keys in :mod:`.keys`.

Allowed imports: ``fraudstream.events``, ``.errors``, ``.settings``, numpy, redis. This is the
only package that imports ``redis``; it never imports ``fraudstream.stream`` or ``.model``.
"""

from __future__ import annotations

from fraudstream.features.base import FeatureStats, FeatureStore, LabelStats
from fraudstream.features.catalogue import describe, feature_names
from fraudstream.features.config import FeatureConfig
from fraudstream.features.memory import MemoryFeatureStore
from fraudstream.features.redis_store import RedisFeatureStore

__all__ = [
    "FeatureConfig",
    "FeatureStats",
    "FeatureStore",
    "LabelStats",
    "MemoryFeatureStore",
    "RedisFeatureStore",
    "describe",
    "feature_names",
]
