"""River pipelines selectable by name, with their measured cost and what they are for.

Every pipeline takes the feature dict (``dict[str, float]``) and returns ``{True: p}`` from
``predict_proba_one``. The default, ``gam``, is a logistic regression over compressed features
plus one learned bin per feature (a generalised additive model): the only one that beat every
published row of the handbook while scoring in tens of microseconds (see ``bench/quality``).
Costs per call are measured by ``python -m bench.quality.cost`` and listed in the README.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from river import anomaly, base, compose, forest, linear_model, optim, preprocessing, tree
from river.base.typing import ClfTarget, FeatureName

from fraudstream.errors import ModelError
from fraudstream.model.transforms import LogScale, QuantileBins, TerminalFrauds

__all__ = ["MODEL_NAMES", "ModelName", "build_pipeline"]

ModelName = Literal["gam", "logistic", "hoeffding_tree", "arf", "amf", "gam_anomaly", "gam_arf"]
MODEL_NAMES: tuple[str, ...] = get_args(ModelName)

# Bins are fitted on the first 20,000 learned examples (~19 days of the handbook stream at
# a 10 % negative rate): long enough for the label-derived risk features to have matured.
_BIN_WARMUP = 20_000


def _gam(seed: int) -> Any:
    del seed  # deterministic
    bins = QuantileBins(n_bins=32, warmup=_BIN_WARMUP, keep_input=False, split_depth=4)
    return (
        TerminalFrauds()
        | LogScale()
        | (preprocessing.StandardScaler() + bins)
        | linear_model.LogisticRegression(optimizer=optim.SGD(0.01))
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
