"""Fitting a clip model's gradient-boosted trees (`statistics_head: boosted_trees`) with scikit-learn.

`fit_boosted_trees` fits `HistGradientBoostingClassifier` / `Regressor` on the training split's stroke statistics,
keeps the number of boosting iterations that scores best on the validation split (log-loss or squared error: a
proper score, smoother over iterations than accuracy) and returns the trees in the model's order with the head's
linear layer that sums them (`boosted_trees.FittedTrees`). It is kept apart from `boosted_trees.py`, which a saved
model carries as remote code: loading a model needs no scikit-learn.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from .boosted_trees import BoostedTreesSettings, FittedTrees, trees_per_iteration


def fit_boosted_trees(settings: BoostedTreesSettings, task_kind: str, num_outputs: int,
                      train: tuple[np.ndarray, np.ndarray, np.ndarray | None],
                      validation: tuple[np.ndarray, np.ndarray, np.ndarray | None],
                      sample_weight: np.ndarray | None = None) -> FittedTrees:
    """Fit the ensemble on `train`, keep the iterations that score best on `validation`.

    Args:
        settings: the scikit-learn arguments.
        task_kind: `classification` (labels: class ids 0..num_outputs-1), `regression` (one target) or
            `multitask` (one regressor per target, each on the rows where its `labels_mask` is true).
        num_outputs: classes, or targets.
        train, validation: `(statistics (clips, statistics), labels, labels_mask or None)`.
        sample_weight: per training clip (a classifier's class weights).
    """
    arguments = dict(settings.to_dict(), early_stopping=False)
    x, y, mask = train
    x_val, y_val, mask_val = validation
    if task_kind == "classification":
        present = np.unique(y)
        if len(present) != num_outputs:
            raise ValueError(f"boosted trees need every one of the {num_outputs} classes in the training split; it "
                             f"has {len(present)}")
        model = HistGradientBoostingClassifier(**arguments).fit(x, y, sample_weight=sample_weight)
        best = int(np.argmin([_log_loss(y_val, p) for p in model.staged_predict_proba(x_val)])) + 1
        per_iteration = trees_per_iteration(task_kind, num_outputs)
        predictors = [tree for iteration in model._predictors for tree in iteration]
        keep = torch.zeros(len(predictors), dtype=torch.bool)
        keep[: best * per_iteration] = True
        baseline = torch.from_numpy(model._baseline_prediction.reshape(-1).astype(np.float32))
        if per_iteration == 1:  # binary: the trees give the log-odds of class 1; logits (0, log-odds)
            weight = torch.zeros(2, len(predictors))
            weight[1] = keep.float()
            bias = torch.stack([torch.zeros(()), baseline[0]])
        else:
            outputs = torch.arange(len(predictors)) % per_iteration
            weight = (outputs[None, :] == torch.arange(num_outputs)[:, None]).float() * keep.float()
            bias = baseline
        return FittedTrees(predictors, weight, bias, [best])
    columns = [y.reshape(len(y), -1)[:, k] for k in range(num_outputs)]
    predictors, weight, bias, iterations = [], torch.zeros(num_outputs, settings.max_iter * num_outputs), [], []
    for k, target in enumerate(columns):
        rows = np.ones(len(x), bool) if mask is None else np.asarray(mask).reshape(len(x), -1)[:, k].astype(bool)
        rows_val = (np.ones(len(x_val), bool) if mask_val is None
                    else np.asarray(mask_val).reshape(len(x_val), -1)[:, k].astype(bool))
        if rows.sum() < 2:
            raise ValueError(f"target {k} has {rows.sum()} training clips: too few to fit trees")
        model = HistGradientBoostingRegressor(**arguments).fit(x[rows], target[rows])
        best = settings.max_iter  # all of them, unless validation has this target
        if rows_val.any():
            truth = y_val.reshape(len(y_val), -1)[rows_val, k]
            squared_errors = [float(np.mean((p - truth) ** 2)) for p in model.staged_predict(x_val[rows_val])]
            best = int(np.argmin(squared_errors)) + 1
        trees = [iteration[0] for iteration in model._predictors]
        start = k * settings.max_iter
        weight[k, start : start + best] = 1.0
        predictors += trees + [None] * (settings.max_iter - len(trees))
        bias.append(float(model._baseline_prediction.reshape(-1)[0]))
        iterations.append(best)
    return FittedTrees(predictors, weight, torch.tensor(bias), iterations)


def _log_loss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    picked = probabilities[np.arange(len(labels)), np.asarray(labels, dtype=np.int64)]
    return float(-np.mean(np.log(np.clip(picked, 1e-12, None))))
