"""An evaluation report: `results.json` and a `metrics/` folder, written from a model's predictions on a split.

`results.json` holds `{"task", "split", "metrics": {...}}` with unprefixed scalar metric names (what
model cards quote). `metrics/` holds the confusion matrix (JSON and PNG), per-class scores, and the
task's metrics per skill tier, augmentation preset, tempo band, rudiment and player profile.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .data.tasks import SousaTask, get_task
from .metrics import SLICE_COLUMNS, sliced_metrics, task_metrics, tempo_band
from .stroke_transcription import stroke_metrics


def write_report(output_dir: str | Path, task: SousaTask | str, split: str, predictions: np.ndarray,
                 labels: np.ndarray, labels_mask: np.ndarray | None, columns: dict[str, list],
                 extra: dict | None = None) -> dict:
    """Compute the task's metrics (overall and sliced) and write them under `output_dir`.

    A metric undefined on the data (R2 of one row, a target null in every row) is `None` (JSON null).

    Args:
        predictions, labels, labels_mask: as `metrics.task_metrics` takes them, one row per example.
        columns: the split's `skill_tier`, `augmentation_preset`, `tempo_bpm`, `rudiment_slug` columns.
        extra: more top-level entries for `results.json` (backbone, number of examples, ...).

    Returns:
        What `results.json` holds.
    """
    task = get_task(task)
    output_dir = Path(output_dir)
    folder = output_dir / "metrics"
    folder.mkdir(parents=True, exist_ok=True)
    detailed = task_metrics(task, predictions, labels, labels_mask, detailed=True)
    scalars = {k: v for k, v in detailed.items() if isinstance(v, (int, float))}
    results = _nan_to_none({"task": task.name, "split": split, "metrics": scalars, "num_examples": int(len(labels)),
                            **(extra or {})})
    _write_json(output_dir / "results.json", results)
    for name in ("per_class", "confusion_matrix", "family_confusion_matrix"):
        if name in detailed:
            _write_json(folder / f"{name}.json", detailed[name])
    for name in ("confusion_matrix", "family_confusion_matrix"):
        if name in detailed:
            plot_confusion_matrix(detailed[name], folder / f"{name}.png",
                                  title=f"{task.name} on {split}" + (" (families)" if "family" in name else ""))
    for name, values in sliced_metrics(task, predictions, labels, labels_mask, columns).items():
        _write_json(folder / f"per_{name}.json", values)
    return results


def write_stroke_report(output_dir: str | Path, split: str, references: list[dict], estimates: list[dict],
                        columns: dict[str, list], extra: dict | None = None) -> dict:
    """The `strokes` task's report: `results.json` with `stroke_metrics` over every clip, and the same per skill
    tier, augmentation preset, tempo band, rudiment and player profile in `metrics/`."""
    output_dir = Path(output_dir)
    folder = output_dir / "metrics"
    folder.mkdir(parents=True, exist_ok=True)
    results = _nan_to_none({"task": "strokes", "split": split, "metrics": stroke_metrics(references, estimates),
                            "num_examples": len(references),
                            "num_strokes": int(sum(len(r["time_ms"]) for r in references)), **(extra or {})})
    _write_json(output_dir / "results.json", results)
    for name, column in SLICE_COLUMNS.items():
        if column not in columns:
            continue
        keys = [tempo_band(v) if name == "tempo_band" else str(v) for v in columns[column]]
        per_value = {}
        for key in sorted(set(keys)):
            rows = [i for i, k in enumerate(keys) if k == key]
            per_value[key] = {"count": len(rows), **stroke_metrics([references[i] for i in rows],
                                                                   [estimates[i] for i in rows])}
        _write_json(folder / f"per_{name}.json", per_value)
    return results


def _write_json(path: Path, value) -> None:
    # NaN (a metric undefined on a slice) is written as null, which JSON readers accept.
    path.write_text(json.dumps(_nan_to_none(value), indent=2) + "\n")


def _nan_to_none(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value


def plot_confusion_matrix(confusion: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, matrix = confusion["labels"], np.asarray(confusion["matrix"])
    size = max(4.0, 0.28 * len(labels) + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    rows = matrix.sum(axis=1, keepdims=True)
    axes.imshow(matrix / np.maximum(rows, 1), cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7 if len(labels) > 10 else 9)
    axes.set_yticks(range(len(labels)), labels, fontsize=7 if len(labels) > 10 else 9)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    if len(labels) <= 10:
        for i in range(len(labels)):
            for j in range(len(labels)):
                axes.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def format_metrics_table(results: dict) -> str:
    """The scalar metrics of `results.json` as an aligned two-column table."""
    metrics = results["metrics"]
    width = max(len(name) for name in metrics)
    lines = [f"{results['task']} on {results['split']} ({results.get('num_examples', '?')} examples)",
             f"{'metric':<{width}}  value", f"{'-' * width}  --------"]
    lines += [f"{name:<{width}}  {value:.4f}" if isinstance(value, float) else f"{name:<{width}}  n/a"
              for name, value in metrics.items()]
    return "\n".join(lines)


__all__ = ["SLICE_COLUMNS", "format_metrics_table", "write_report", "write_stroke_report"]
