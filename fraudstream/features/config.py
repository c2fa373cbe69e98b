"""Feature-engine configuration: windows, label delay, lateness, caps and TTLs.

Until the lead adds a ``FeatureSettings`` section to :mod:`fraudstream.settings`, the engine is
configured with this frozen dataclass; every field has a safe default.
"""

from __future__ import annotations

from dataclasses import dataclass

from fraudstream.errors import ConfigError

__all__ = ["DAY_MS", "HOUR_MS", "MINUTE_MS", "FeatureConfig"]

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
# The longest window the catalogue looks back: 30 days, shifted by the label delay.
_LONGEST_WINDOW_MS = 30 * DAY_MS


@dataclass(frozen=True, slots=True)
class FeatureConfig:
    """How the rolling aggregates behave.

    Attributes:
        key_prefix: First part of every Redis key (tests use a unique prefix each).
        label_delay_ms: Shift of the label-derived windows (the book's 7 days).
        allowed_lateness_ms: Events at most this much older than the entity's newest event are
            placed exactly; older ones are scored but not added (counted as late).
        exact_cap: Exact records per entity log before the oldest are folded into buckets.
        fold_bucket_ms: Width of the coarse buckets that folded records collapse into.
        terminals_cap: Unused: first use and distinct terminals are read from the card's
            log (exact over 30 days, unless the log is folded). Kept so settings still load.
        entity_ttl_ms: TTL of per-card and per-terminal state, refreshed on every write.
        record_ttl_ms: TTL of per-transaction records and snapshots (longest label delay
            plus margin): a label or a redelivery later than this is reported as unknown.
    """

    key_prefix: str = "fs"
    label_delay_ms: int = 7 * DAY_MS
    allowed_lateness_ms: int = DAY_MS
    exact_cap: int = 512
    fold_bucket_ms: int = HOUR_MS
    terminals_cap: int = 512
    entity_ttl_ms: int = 40 * DAY_MS
    record_ttl_ms: int = 30 * DAY_MS

    def __post_init__(self) -> None:
        if self.label_delay_ms < 0 or self.allowed_lateness_ms < 0:
            raise ConfigError(
                f"expected non-negative delay and lateness; got label_delay_ms="
                f"{self.label_delay_ms}, allowed_lateness_ms={self.allowed_lateness_ms}"
            )
        if self.exact_cap < 4 or self.terminals_cap < 2 or self.fold_bucket_ms <= 0:
            raise ConfigError(
                f"expected exact_cap >= 4, terminals_cap >= 2, fold_bucket_ms > 0; got "
                f"{self.exact_cap}, {self.terminals_cap}, {self.fold_bucket_ms}"
            )
        if self.entity_ttl_ms < self.horizon_ms:
            raise ConfigError(
                f"expected entity_ttl_ms >= horizon_ms ({self.horizon_ms}); "
                f"got {self.entity_ttl_ms}"
            )
        if not self.key_prefix or "{" in self.key_prefix or "}" in self.key_prefix:
            raise ConfigError(f"expected a key prefix without braces; got {self.key_prefix!r}")

    @property
    def horizon_ms(self) -> int:
        """How far behind the newest event state is kept: longest lookback plus lateness."""
        return self.label_delay_ms + _LONGEST_WINDOW_MS + self.allowed_lateness_ms

    @property
    def coarse_max(self) -> int:
        """Most coarse records a log can hold: one per fold bucket over the horizon, plus one."""
        return -(-self.horizon_ms // self.fold_bucket_ms) + 1

    @property
    def delay_tag(self) -> str:
        """The label delay as it appears in feature names, e.g. ``7d`` or ``36h``.

        >>> FeatureConfig().delay_tag, FeatureConfig(label_delay_ms=36 * HOUR_MS).delay_tag
        ('7d', '36h')
        """
        if self.label_delay_ms % DAY_MS == 0:
            return f"{self.label_delay_ms // DAY_MS}d"
        if self.label_delay_ms % HOUR_MS == 0:
            return f"{self.label_delay_ms // HOUR_MS}h"
        return f"{self.label_delay_ms}ms"
