"""Metrics with the SOUSA training guide's protocol, computed with scikit-learn (one implementation).

Classification: balanced accuracy first, then accuracy, macro F1, per-class precision/recall/F1 and
the confusion matrix; quadratic-weighted kappa for the ordinal skill tiers; for rudiments, how often
a mistake stays within the true rudiment's family (roll, diddle, flam, drag). Regression: MSE, MAE
and R2 on the 0-100 scale, per target for multi-task. `sliced_metrics` repeats them per skill tier,
augmentation preset, tempo band, rudiment and player profile.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    cohen_kappa_score,
    confusion_matrix,
    f1_score,
    mean_absolute_error,
    mean_squared_error,
    precision_recall_fscore_support,
    r2_score,
)

from .data.rudiments import RUDIMENT_FAMILY
from .data.tasks import SousaTask, get_task
from .stroke_transcription import DEFAULT_THRESHOLD, decode_strokes, stroke_metrics

# Tempo bands for slicing (BPM, lower bound inclusive); SOUSA's tempos run from about 60 to 180.
TEMPO_BANDS: tuple[tuple[str, float, float], ...] = (("<100 bpm", 0, 100), ("100-139 bpm", 100, 140),
                                                     (">=140 bpm", 140, math.inf))
# Columns a report slices by: its name in the report -> the dataset column. SOUSA splits by player profile,
# so the held-out profiles are the units a split's score is made of.
SLICE_COLUMNS = {"skill_tier": "skill_tier", "augmentation_preset": "augmentation_preset",
                 "tempo_band": "tempo_bpm", "rudiment": "rudiment_slug", "profile": "profile_id"}


# SOUSA's metrics as an `evaluate` module (a folder: its script, and the files of a metric Space):
# evaluate.load(EVALUATE_MODULE, "skill4"), offline.
EVALUATE_MODULE = str(Path(__file__).resolve().parent / "sousa_metric")

def tempo_band(bpm: float) -> str:
    for name, low, high in TEMPO_BANDS:
        if low <= bpm < high:
            return name
    raise ValueError(f"tempo {bpm} BPM is in no band")


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, task: SousaTask | str,
                           detailed: bool = False) -> dict:
    """Scalars (balanced_accuracy, accuracy, macro_f1, plus quadratic_kappa for ordinal tasks and
    within_family_error_rate for rudiments); `detailed` adds per-class scores and confusion matrices."""
    with warnings.catch_warnings():
        # A slice (one skill tier, say) often holds one class; sklearn warns, the numbers are right.
        warnings.simplefilter("ignore", UserWarning)
        return _classification_metrics(y_true, y_pred, get_task(task), detailed)


def _classification_metrics(y_true, y_pred, task: SousaTask, detailed: bool) -> dict:
    labels = list(range(len(task.labels)))
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    metrics = {
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)) if len(y_true) else math.nan,
        "accuracy": float(accuracy_score(y_true, y_pred)) if len(y_true) else math.nan,
        # Over the classes present in the labels or the predictions (sklearn's default): a slice of one
        # skill tier holds one class, and absent classes would pull its macro F1 to 1/4 of the truth.
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)) if len(y_true) else math.nan,
    }
    if task.ordinal:
        metrics["quadratic_kappa"] = _kappa(y_true, y_pred, labels)
    if task.label_column == "rudiment_slug":
        families = np.array([RUDIMENT_FAMILY[name] for name in task.labels])
        wrong = y_true != y_pred
        same_family = families[y_true[wrong]] == families[y_pred[wrong]]
        metrics["family_accuracy"] = float(np.mean(families[y_true] == families[y_pred])) if len(y_true) else math.nan
        metrics["within_family_error_rate"] = float(same_family.mean()) if wrong.any() else 0.0
    if detailed:
        precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels,
                                                                         zero_division=0)
        metrics["per_class"] = {name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(n)}
                                for name, p, r, f, n in zip(task.labels, precision, recall, f1, support)}
        metrics["confusion_matrix"] = {"labels": list(task.labels),
                                       "matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist()}
        if task.label_column == "rudiment_slug":
            names = sorted(set(families))
            index = {name: i for i, name in enumerate(names)}
            metrics["family_confusion_matrix"] = {
                "labels": names,
                "matrix": confusion_matrix([index[f] for f in families[y_true]], [index[f] for f in families[y_pred]],
                                           labels=list(range(len(names)))).tolist()}
    return metrics


def _kappa(y_true: np.ndarray, y_pred: np.ndarray, labels: list[int]) -> float:
    if len(y_true) == 0 or (len(set(y_true)) == 1 and set(y_true) == set(y_pred)):
        return 1.0 if len(y_true) else math.nan  # kappa is undefined when only one class occurs
    return float(cohen_kappa_score(y_true, y_pred, labels=labels, weights="quadratic"))


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """MSE, MAE and R2 of scores on the report scale (0-100)."""
    y_true, y_pred = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    if len(y_true) == 0:
        return {"mse": math.nan, "mae": math.nan, "r2": math.nan}
    return {"mse": float(mean_squared_error(y_true, y_pred)), "mae": float(mean_absolute_error(y_true, y_pred)),
            "r2": float(r2_score(y_true, y_pred)) if len(y_true) > 1 else math.nan}


def task_metrics(task: SousaTask | str, predictions: np.ndarray, labels: np.ndarray,
                 labels_mask: np.ndarray | None = None, detailed: bool = False) -> dict:
    """The task's metrics from model outputs and `labels` as the task layer encodes them.

    Args:
        predictions: logits `(n, classes)` for classification; predictions on 0-1 `(n, targets)` otherwise.
        labels: class ids, or targets on 0-1.
        labels_mask: multi-task only: False where a target is null (that row is left out of its metrics).
    """
    task = get_task(task)
    predictions = np.asarray(predictions)
    if task.kind == "classification":
        return classification_metrics(labels, predictions.argmax(axis=-1), task, detailed=detailed)
    scale = task.target_scale
    predictions = predictions.reshape(len(predictions), -1) * scale
    labels = np.asarray(labels, dtype=np.float64).reshape(len(predictions), -1) * scale
    if task.kind == "regression":
        return regression_metrics(labels[:, 0], predictions[:, 0])
    mask = np.ones_like(labels, dtype=bool) if labels_mask is None else np.asarray(labels_mask, dtype=bool)
    per_target = {target: regression_metrics(labels[mask[:, i], i], predictions[mask[:, i], i])
                  for i, target in enumerate(task.targets)}
    metrics = {name: float(np.nanmean([m[name] for m in per_target.values()])) if any(
        not math.isnan(m[name]) for m in per_target.values()) else math.nan for name in ("mse", "mae", "r2")}
    for target, values in per_target.items():
        metrics.update({f"{name}_{target}": value for name, value in values.items()})
    return metrics


def sliced_metrics(task: SousaTask | str, predictions: np.ndarray, labels: np.ndarray,
                   labels_mask: np.ndarray | None, columns: dict[str, list]) -> dict[str, dict[str, dict]]:
    """The task's scalar metrics per value of each slice: `{slice: {value: {"count": n, metric: ...}}}`.

    `columns` holds the evaluation rows' `skill_tier`, `augmentation_preset`, `tempo_bpm`, `rudiment_slug` and
    `profile_id` (whichever are given), in the order of `predictions`.
    """
    task = get_task(task)
    slices = {}
    for name, column in SLICE_COLUMNS.items():
        if column not in columns:
            continue
        values = columns[column]
        keys = np.array([tempo_band(v) for v in values] if name == "tempo_band" else [str(v) for v in values])
        slices[name] = {}
        for key in sorted(set(keys)):
            rows = keys == key
            mask = None if labels_mask is None else np.asarray(labels_mask)[rows]
            slices[name][key] = {"count": int(rows.sum()),
                                 **task_metrics(task, np.asarray(predictions)[rows], np.asarray(labels)[rows], mask)}
    return slices


class SousaMetrics:
    """`compute_metrics` for `Trainer`: the task's scalar metrics from an `EvalPrediction`.

    Args:
        task: the task (a name or `SousaTask`).
        frame_seconds: for the `strokes` task, the model's frame spacing (`config.frame_seconds`).
        threshold: for the `strokes` task, the onset probability of a stroke (`config.stroke_threshold`).
    """

    def __init__(self, task: SousaTask | str, frame_seconds: float | None = None,
                 threshold: float = DEFAULT_THRESHOLD):
        self.task = get_task(task)
        self.frame_seconds = frame_seconds
        self.threshold = threshold

    def __call__(self, eval_prediction) -> dict[str, float]:
        if self.task.kind == "strokes":
            references, estimates = unpack_strokes(eval_prediction.predictions, eval_prediction.label_ids,
                                                   self.frame_seconds, self.threshold)
            return stroke_metrics(references, estimates)
        predictions, labels, labels_mask = unpack_predictions(self.task, eval_prediction.predictions,
                                                              eval_prediction.label_ids)
        return task_metrics(self.task, predictions, labels, labels_mask)


def unpack_strokes(predictions, label_ids, frame_seconds: float, threshold: float = DEFAULT_THRESHOLD
                   ) -> tuple[list[dict], list[dict]]:
    """`Trainer.predict`'s outputs of a strokes model -> per clip, the labelled and the detected strokes.

    Predictions are `(stroke_logits, frame_mask)`, labels `(stroke_onsets, stroke_velocities, stroke_is_grace)`,
    all padded across batches (Trainer pads with -100; the collator pads onsets with -1).
    """
    logits, frame_mask = predictions[0], predictions[1]
    onsets, velocities = np.asarray(label_ids[0]), np.asarray(label_ids[1])
    references, estimates = [], []
    for i in range(len(logits)):
        present = onsets[i] >= 0
        references.append({"time_ms": onsets[i][present], "velocity": velocities[i][present]})
        frames = int((np.asarray(frame_mask[i]) == 1).sum())
        estimates.append(decode_strokes(logits[i], frame_seconds, frames=frames, threshold=threshold))
    return references, estimates


def unpack_predictions(task: SousaTask, predictions, label_ids) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """`Trainer.predict`'s nested outputs -> (logits or 0-1 predictions, labels, labels_mask or None)."""
    if isinstance(predictions, (tuple, list)):
        predictions = predictions[0]  # logits, or predictions before scores
    labels_mask = None
    if isinstance(label_ids, (tuple, list)):
        label_ids, labels_mask = label_ids[0], (label_ids[1] if len(label_ids) > 1 else None)
    return np.asarray(predictions), np.asarray(label_ids), labels_mask
