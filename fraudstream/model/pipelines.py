"""River pipelines selectable by name, with their measured cost and what they are for.

Every pipeline takes the feature dict (``dict[str, float]``) and returns ``{True: p}`` from
``predict_proba_one``. The default, ``gam``, is a logistic regression over compressed features
plus one learned bin per feature (a generalised additive model) and crossed bins for pairs of
the strongest signals, scoring with a moving average of its SGD weights: the only one that beat
every published row of the handbook while scoring in tens of microseconds (see ``bench/quality``).
Costs per call are measured by ``python -m bench.quality.cost`` and listed in the README.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Literal, get_args

from river import anomaly, base, compose, forest, linear_model, optim, preprocessing, tree
from river.base.typing import ClfTarget, FeatureName

from fraudstream.errors import ModelError
from fraudstream.model.transforms import LogScale, QuantileBins, TerminalFrauds

__all__ = ["MODEL_NAMES", "AveragedLogisticRegression", "ModelName", "build_pipeline"]

ModelName = Literal["gam", "logistic", "hoeffding_tree", "arf", "amf", "gam_anomaly", "gam_arf"]
MODEL_NAMES: tuple[str, ...] = get_args(ModelName)

# Bins are fitted on the first 20,000 learned examples (~19 days of the handbook stream at
# a 10 % negative rate): long enough for the label-derived risk features to have matured.
_BIN_WARMUP = 20_000
# Crossed bins (one weight per cell of two features' bins) for every pair of the strongest
# signals: the amount against the card's habits and known frauds, and the terminal's delayed
# risk at three horizons. Chosen on the July validation weeks (bench/quality): AP 0.671 ->
# 0.694 with AUC and CP@100 level or better, for ~28 more dict entries per vector.
_CROSSED = (
    "amount",
    "amount_ratio_30d_by_card",
    "risk_30d_by_card_delayed_7d",
    "risk_1d_by_terminal_delayed_7d",
    "risk_7d_by_terminal_delayed_7d",
    "risk_30d_by_terminal_delayed_7d",
    "frauds_7d_by_terminal_delayed_7d",
    "tx_count_1d_by_card",
)
_CROSSES = tuple(itertools.combinations(_CROSSED, 2))
# Weights averaged over about the last 3,300 updates (~3 days of learned labels): validation
# AUC 0.874 -> 0.877, AP 0.694 -> 0.704 over the plain SGD iterate.
_AVERAGE_RATE = 3e-4


class AveragedLogisticRegression(linear_model.LogisticRegression):
    """Logistic regression that scores with a moving average of its SGD weights.

    Constant-step SGD on rare, noisy frauds keeps jittering around its optimum; an exponential
    moving average of the iterates (rate ``alpha``: about the last ``1 / alpha`` updates)
    smooths that out yet still follows drift. The average is kept lazily: a weight only moves
    when its feature is present, so an absent one's average decays towards it in closed form
    and each call costs O(features present), however many bins and crosses exist. ``weights``
    are the averaged ones, the ones that score (so explanations match the score).

    >>> model = AveragedLogisticRegression(alpha=0.5)
    >>> model.learn_one({"a": 1.0}, True)
    >>> round(model.weights["a"], 4), model.predict_proba_one({"a": 1.0})[True] > 0.5
    (0.0025, True)
    >>> model.learn_one({"b": 1.0}, False)  # "a" unchanged: its average moves half way to it
    >>> round(model.weights["a"], 5)
    0.00375
    """

    def __init__(self, alpha: float = 1e-3, optimizer: optim.base.Optimizer | None = None) -> None:
        super().__init__(optimizer=optimizer)
        self.alpha = alpha
        self._average: dict[FeatureName, float] = {}  # as of update _last[name]
        self._last: dict[FeatureName, int] = {}
        self._n = 0
        self._average_intercept = 0.0

    def _averaged(self, name: FeatureName) -> float:
        w = float(self._weights.get(name, 0.0))
        avg = self._average.get(name)
        if avg is None:
            return w
        return w + (avg - w) * (1.0 - self.alpha) ** (self._n - self._last[name])

    @property
    def weights(self) -> dict[FeatureName, float]:
        """The averaged weights (all of them: O(every feature, bin and cell ever seen))."""
        return {name: self._averaged(name) for name in self._average}

    def weight(self, name: FeatureName) -> float:
        """One averaged weight, as in :attr:`weights` (0.0 for a name never learned)."""
        return self._averaged(name) if name in self._average else 0.0

    def learn_one(self, x: dict[FeatureName, Any], y: ClfTarget, w: float = 1.0) -> None:
        """One SGD step, then move the averages of the weights it changed."""
        caught_up = {name: self._averaged(name) if name in self._average else 0.0 for name in x}
        super().learn_one(x, y, w)
        a, n = self.alpha, self._n + 1
        weights, average, last = self._weights, self._average, self._last
        for name, avg in caught_up.items():
            average[name] = avg + a * (float(weights.get(name, 0.0)) - avg)
            last[name] = n
        self._n = n
        self._average_intercept += a * (self.intercept - self._average_intercept)

    def predict_proba_one(self, x: dict[FeatureName, Any], **kwargs: Any) -> dict[ClfTarget, float]:
        """Probability from the averaged weights."""
        # _averaged() inlined (same arithmetic, same result): this loop is the scoring hot path.
        z = self._average_intercept
        average, last, weights = self._average, self._last, self._weights
        n, decay = self._n, 1.0 - self.alpha
        for name, value in x.items():
            avg = average.get(name)
            if avg is not None:
                w = float(weights.get(name, 0.0))
                z += (w + (avg - w) * decay ** (n - last[name])) * value
        p = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))
        return {False: 1.0 - p, True: p}


def _gam(seed: int) -> Any:
    del seed  # deterministic
    bins = QuantileBins(
        n_bins=32, warmup=_BIN_WARMUP, keep_input=False, split_depth=4, crosses=_CROSSES
    )
    return (
        TerminalFrauds()
        | LogScale()
        | (preprocessing.StandardScaler() + bins)
        | AveragedLogisticRegression(alpha=_AVERAGE_RATE, optimizer=optim.SGD(0.01))
    )


def _logistic(seed: int) -> Any:
    del seed
    return (
        LogScale()
        | preprocessing.StandardScaler()
        | linear_model.LogisticRegression(optimizer=optim.SGD(0.01))
    )


def _hoeffding_tree(seed: int) -> Any:
    # River's defaults never split on this stream; a short grace period, a looser bound and
    # naive-Bayes leaves let it grow on the undersampled labels.
    return LogScale() | tree.HoeffdingAdaptiveTreeClassifier(
        grace_period=50, delta=1e-3, leaf_prediction="nb", seed=seed
    )


def _arf(seed: int) -> Any:
    return LogScale() | forest.ARFClassifier(n_models=10, leaf_prediction="mc", seed=seed)


def _amf(seed: int) -> Any:
    return LogScale() | forest.AMFClassifier(n_estimators=5, use_aggregation=True, seed=seed)


def _gam_anomaly(seed: int) -> Any:
    # Half-space trees score how unusual the vector is; the score enters the GAM as one more
    # feature, so labels decide how much novelty matters.
    hst = compose.Pipeline(
        LogScale(),
        preprocessing.MinMaxScaler(),
        anomaly.HalfSpaceTrees(n_trees=10, height=8, window_size=250, seed=seed),
    )
    return compose.TransformerUnion(compose.FuncTransformer(_identity), _AnomalyFeature(hst)) | (
        _gam(seed)
    )


def _identity(x: dict[FeatureName, Any]) -> dict[FeatureName, Any]:
    return x


class _AnomalyFeature(base.Transformer):
    """Emit ``anomaly_score`` from an unsupervised detector that learns every vector it sees."""

    def __init__(self, detector: Any) -> None:
        self.detector = detector

    def learn_one(self, x: dict[FeatureName, Any]) -> None:
        """Update the detector."""
        self.detector.learn_one(x)

    def transform_one(self, x: dict[FeatureName, Any]) -> dict[FeatureName, Any]:
        """The detector's score of ``x`` (higher is more unusual)."""
        return {"anomaly_score": float(self.detector.score_one(x))}


class _Blend(base.Classifier):
    """Average the fraud probabilities of several classifiers; each learns every example."""

    def __init__(self, models: list[Any]) -> None:
        self.models = models

    def learn_one(self, x: dict[FeatureName, Any], y: ClfTarget) -> None:
        """Teach every member."""
        for model in self.models:
            model.learn_one(x, y)

    def predict_proba_one(self, x: dict[FeatureName, Any], **kwargs: Any) -> dict[ClfTarget, float]:
        """Mean of the members' fraud probabilities."""
        p = sum(m.predict_proba_one(x).get(True, 0.0) for m in self.models) / len(self.models)
        return {False: 1.0 - p, True: p}


def _gam_arf(seed: int) -> Any:
    # The strongest tested, at ARF's cost (see the README cost table): GAM and a forest agree on
    # the easy frauds and disagree usefully on the rest.
    return _Blend([_gam(seed), _arf(seed)])


_FACTORIES = {
    "gam": _gam,
    "logistic": _logistic,
    "hoeffding_tree": _hoeffding_tree,
    "arf": _arf,
    "amf": _amf,
    "gam_anomaly": _gam_anomaly,
    "gam_arf": _gam_arf,
}


def build_pipeline(name: str, seed: int = 42) -> Any:
    """Build a fresh, untrained pipeline by name.

    Args:
        name: One of :data:`MODEL_NAMES`.
        seed: Seed for the randomised learners (trees, forests, anomaly detector).

    Raises:
        ModelError: For an unknown name.

    >>> sorted(build_pipeline("logistic").steps)
    ['LogScale', 'LogisticRegression', 'StandardScaler']
    """
    factory = _FACTORIES.get(name)
    if factory is None:
        raise ModelError(f"model: expected one of {', '.join(MODEL_NAMES)}; got {name!r}")
    return factory(seed)
