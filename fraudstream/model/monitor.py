"""Online metrics from feedback, and drift detection on the error stream.

Fed with every label joined to its snapshot (see :class:`~fraudstream.model.labels.Feedback`),
including the genuine ones undersampling kept out of learning, so the metrics describe the real
traffic. All windows count labelled examples, not time.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from dataclasses import dataclass

from river import drift, metrics

__all__ = ["DELAY_BUCKETS_MS", "DriftEvent", "OnlineMetrics"]

_HOUR_MS = 3_600_000
# Upper bounds of the label-delay histogram buckets: 1 h, 1 d, 3 d, 7 d, 14 d, 30 d, beyond.
DELAY_BUCKETS_MS: tuple[int, ...] = tuple(h * _HOUR_MS for h in (1, 24, 72, 168, 336, 720))


@dataclass(frozen=True, slots=True)
class DriftEvent:
    """ADWIN saw the mean squared error of the scores change.

    Attributes:
        event_time_ms: Event time of the transaction whose label revealed it.
        labels_seen: Labelled examples seen by the monitor so far.
        error_before: Mean squared error (Brier score) over the window before the change.
        error_after: Mean squared error over the window kept after the change.
    """

    event_time_ms: int
    labels_seen: int
    error_before: float
    error_after: float

    @property
    def worse(self) -> bool:
        """Whether the model got worse (the case an operator acts on)."""
        return self.error_after > self.error_before


class OnlineMetrics:
    """Rolling ROC AUC, AP, precision and recall at the threshold, calibration, label delays.

    Args:
        threshold: The flag threshold precision and recall are computed at.
        window: Labelled examples in each rolling window.
        calibration_bins: Equal-width score bins of the reliability table.

    >>> m = OnlineMetrics(threshold=0.5, window=100)
    >>> for i in range(200):
    ...     _ = m.update(i % 10 == 0, 0.9 if i % 10 == 0 else 0.1, 86_400_000, i)
    >>> s = m.summary()
    >>> s["roc_auc"], s["precision"], s["recall"], s["labels_delay_le_1d"], s["frauds_seen"]
    (1.0, 1.0, 1.0, 200.0, 20.0)
    """

    def __init__(self, threshold: float, window: int = 20_000, calibration_bins: int = 10) -> None:
        self.threshold = threshold
        self.window = window
        self.roc_auc = metrics.RollingROCAUC(window_size=window)  # type: ignore[no-untyped-call]
        self.pr_auc = metrics.RollingPRAUC(window_size=window)  # type: ignore[no-untyped-call]
        self._recent: deque[tuple[bool, float]] = deque(maxlen=window)
        self._bins = calibration_bins
        self.delays = [0] * (len(DELAY_BUCKETS_MS) + 1)
        self.adwin = drift.ADWIN()  # type: ignore[no-untyped-call]
        self.seen = 0
        self.frauds = 0

    def update(self, y: bool, score: float, delay_ms: int, event_time_ms: int) -> DriftEvent | None:
        """Add one labelled score; return a :class:`DriftEvent` when ADWIN detects a change."""
        self.seen += 1
        self.frauds += y
        self.roc_auc.update(y, score)  # type: ignore[no-untyped-call]
        self.pr_auc.update(y, score)  # type: ignore[no-untyped-call]
        self._recent.append((y, score))
        self.delays[bisect_right(DELAY_BUCKETS_MS, delay_ms - 1)] += 1
        before = self.adwin.estimation
        self.adwin.update((float(y) - score) ** 2)  # type: ignore[no-untyped-call]
        if self.adwin.drift_detected:
            return DriftEvent(event_time_ms, self.seen, float(before), float(self.adwin.estimation))
        return None

    def calibration(self) -> list[tuple[float, float, int]]:
        """Reliability table over the window: (mean score, fraud rate, count) per score bin."""
        sums = [[0.0, 0.0, 0] for _ in range(self._bins)]
        for y, p in self._recent:
            row = sums[min(self._bins - 1, int(p * self._bins))]
            row[0] += p
            row[1] += y
            row[2] += 1
        return [(s / n, f / n, int(n)) for s, f, n in sums if n]

    def summary(self) -> dict[str, float]:
        """Every metric as a flat name -> value mapping (Prometheus gauges)."""
        tp = fp = fn = 0
        brier = 0.0
        for y, p in self._recent:
            flagged = p >= self.threshold
            tp += y and flagged
            fp += flagged and not y
            fn += y and not flagged
            brier += (float(y) - p) ** 2
        n = len(self._recent)
        out = {
            "roc_auc": float(self.roc_auc.get()),  # type: ignore[no-untyped-call]
            "average_precision": float(self.pr_auc.get()),  # type: ignore[no-untyped-call]
            "precision": tp / (tp + fp) if tp + fp else 0.0,
            "recall": tp / (tp + fn) if tp + fn else 0.0,
            "brier": brier / n if n else 0.0,
            "labels_seen": float(self.seen),
            "frauds_seen": float(self.frauds),
        }
        names = ["1h", "1d", "3d", "7d", "14d", "30d"]
        for name, count in zip(names, self.delays, strict=False):
            out[f"labels_delay_le_{name}"] = float(count)
        out["labels_delay_gt_30d"] = float(self.delays[-1])
        return out
