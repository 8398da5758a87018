"""The scikit-learn heads the benchmarks fit on per-clip statistics: gradient boosting, and an MLP as wide as the
stroke-statistics recipe's (two layers of 256). A statistic a clip lacks (NaN: no left-hand strokes, say) is filled
with its training mean; on complete statistics the filling changes nothing."""

from __future__ import annotations

from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

HEAD_NAMES = ("gradient boosting", "MLP 256x2")


def clip_head(kind: str, name: str, seed: int = 0):
    """An unfitted head for a task of `kind` ("regression" or a classification), by its name in `HEAD_NAMES`."""
    if name == "gradient boosting":
        model = (HistGradientBoostingRegressor if kind == "regression" else HistGradientBoostingClassifier)(
            max_iter=300, learning_rate=0.05, random_state=seed)
        return make_pipeline(SimpleImputer(), model)
    if name != "MLP 256x2":
        raise ValueError(f"head {name!r}: the benchmarks' clip heads are {', '.join(HEAD_NAMES)}")
    mlp = MLPRegressor if kind == "regression" else MLPClassifier
    return make_pipeline(SimpleImputer(), StandardScaler(),
                         mlp(hidden_layer_sizes=(256, 256), alpha=0.1, max_iter=2000, random_state=seed))
