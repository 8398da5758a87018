"""The five tasks of SOUSA's training guide, their label spaces, labels and class weights.

Data, models, metrics and recipes all take their labels from here, so `id2label` is the same
everywhere.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from datasets import Dataset, DatasetDict, Features, IterableDataset, IterableDatasetDict, List, Value

from .derived import add_columns
from .errors import SousaDataError
from .filters import filter_sousa
from .rudiments import RUDIMENTS
from .strokes import audible_onsets
from .tier_confidence import SKILL_TIERS

SKILL_BINARY: tuple[str, ...] = ("novice", "skilled")
STROKE_OUTPUTS: tuple[str, ...] = ("onset", "velocity", "grace")
# What the stroke head learns from, one list per clip (`stroke_labels`).
STROKE_LABEL_FEATURES = Features({"stroke_onsets": List(Value("float32")), "stroke_velocities": List(Value("float32")),
                                  "stroke_is_grace": List(Value("bool"))})
MULTITASK_TARGETS: tuple[str, ...] = ("overall_score", "tempo_stability", "flam_quality", "diddle_quality",
                                      "roll_sustain")


@dataclass(frozen=True)
class SousaTask:
    """One training task: which column(s) it learns and how they become `labels`.

    Classification tasks produce an int64 `labels` column (class ids in `labels`' order). Regression
    produces float32 `labels` on 0-1 (the 0-100 score divided by `target_scale`). Multi-task produces
    a float32 vector `labels` (one entry per target, 0 where null) and a bool vector `labels_mask`
    that is False where the target is null.
    """

    name: str
    kind: str  # "classification", "regression" or "multitask"
    description: str
    label_column: str | None = None
    labels: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    target_scale: float = 100.0
    min_tier_confidence: float | None = None  # the default filter (rows with confidence above it)
    main_metric: str = "balanced_accuracy"
    ordinal: bool = False
    input_columns: tuple[str, ...] = field(init=False)

    def __post_init__(self):
        columns = ("strokes", "duration_sec") if self.kind == "strokes" else (
            (self.label_column,) if self.label_column else self.targets)
        object.__setattr__(self, "input_columns", tuple(columns))

    @property
    def num_labels(self) -> int:
        if self.kind == "strokes":
            return len(STROKE_OUTPUTS)
        return len(self.labels) if self.kind == "classification" else len(self.targets)

    @property
    def id2label(self) -> dict[int, str]:
        names = STROKE_OUTPUTS if self.kind == "strokes" else self.labels if self.kind == "classification" \
            else self.targets
        return dict(enumerate(names))

    @property
    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in self.id2label.items()}

    @property
    def label_features(self) -> Features:
        if self.kind == "strokes":
            return STROKE_LABEL_FEATURES
        if self.kind == "classification":
            return Features({"labels": Value("int64")})
        if self.kind == "regression":
            return Features({"labels": Value("float32")})
        return Features({"labels": List(Value("float32"), length=len(self.targets)),
                         "labels_mask": List(Value("bool"), length=len(self.targets))})

    def encode(self, batch: dict) -> dict:
        """Labels for a batch (`{column: list}` holding `input_columns`)."""
        if self.kind == "strokes":
            return encode_stroke_labels(batch)
        if self.kind == "classification":
            return {"labels": [self._class_id(value) for value in batch[self.label_column]]}
        values = np.array([[_float_or_nan(v) for v in batch[target]] for target in self.targets], dtype=np.float64).T
        if self.kind == "regression":
            if np.isnan(values).any():
                raise SousaDataError(f"task {self.name!r}: {self.targets[0]!r} is null in some rows; it is the target")
            return {"labels": (values[:, 0] / self.target_scale).astype(np.float32).tolist()}
        mask = ~np.isnan(values)
        scaled = np.where(mask, values / self.target_scale, 0.0).astype(np.float32)
        return {"labels": scaled.tolist(), "labels_mask": mask.tolist()}

    def _class_id(self, value) -> int:
        try:
            return self.label2id[value]
        except KeyError:
            raise SousaDataError(
                f"task {self.name!r}: unknown {self.label_column} value {value!r}; expected one of "
                f"{', '.join(self.labels)}"
            ) from None


def encode_stroke_labels(batch: dict) -> dict:
    """Each clip's heard strokes (`audible_onsets`) as the stroke head's labels: onset (ms), velocity, grace flag."""
    out = {name: [] for name in STROKE_LABEL_FEATURES}
    for strokes, seconds in zip(batch["strokes"], batch["duration_sec"]):
        if strokes is None:
            raise SousaDataError("a clip has no stroke labels; load the data with load_sousa(..., strokes=True)")
        heard = audible_onsets(strokes, None if seconds is None else 1000.0 * float(seconds))
        out["stroke_onsets"].append([float(strokes["onset_ms"][i]) for i in heard])
        out["stroke_velocities"].append([float(strokes["velocity"][i]) for i in heard])
        out["stroke_is_grace"].append([bool(strokes["is_grace"][i]) for i in heard])
    return out


def _float_or_nan(value) -> float:
    return math.nan if value is None else float(value)


TASKS: dict[str, SousaTask] = {
    task.name: task
    for task in (
        SousaTask(
            "skill4", "classification", "skill tier, 4 classes (beginner < intermediate < advanced < professional)",
            label_column="skill_tier", labels=SKILL_TIERS, min_tier_confidence=0.5, ordinal=True,
        ),
        SousaTask("skill_binary", "classification", "binary skill (novice / skilled)",
                  label_column="skill_tier_binary", labels=SKILL_BINARY),
        SousaTask("overall_score", "regression", "overall score regression (overall_score / 100)",
                  targets=("overall_score",), main_metric="mae"),
        SousaTask("multitask", "multitask", "overall_score, tempo_stability and the nullable flam_quality, "
                  "diddle_quality, roll_sustain with masks", targets=MULTITASK_TARGETS, main_metric="mae"),
        SousaTask("rudiment40", "classification", "rudiment, 40 classes in PAS order",
                  label_column="rudiment_slug", labels=RUDIMENTS),
        SousaTask("strokes", "strokes", "stroke transcription: each stroke's onset, velocity and grace-note flag",
                  main_metric="onset_f1_25ms"),
    )
}
# The clip tasks, which a stroke loss can accompany (`aux_strokes`).
CLIP_TASKS = tuple(name for name, task in TASKS.items() if task.kind != "strokes")


def get_task(name: str | SousaTask) -> SousaTask:
    """The task called `name`; an unknown name is an error listing the known ones."""
    if isinstance(name, SousaTask):
        return name
    if name not in TASKS:
        raise SousaDataError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}")
    return TASKS[name]


def prepare_task(dataset, task: str | SousaTask, *, apply_default_filter: bool = True, filters: dict | None = None,
                 stroke_labels: bool = False):
    """Apply the task's default filter (e.g. `tier_confidence > 0.5` for `skill4`) and add `labels`.

    Works on a `Dataset`, `IterableDataset` or a dict of them; the stored audio is not rewritten.
    `filters` are `filter_sousa` arguments applied first (a recipe's `filters`). The `strokes` task adds the
    stroke head's labels (`stroke_onsets`, `stroke_velocities`, `stroke_is_grace`) instead; `stroke_labels`
    adds them beside a clip task's `labels` (for `aux_strokes`). Both need the `strokes` column
    (`load_sousa(..., strokes=True)`).
    """
    task = get_task(task)
    if isinstance(dataset, (DatasetDict, IterableDatasetDict)):
        prepared = {name: prepare_task(split, task, apply_default_filter=apply_default_filter, filters=filters,
                                       stroke_labels=stroke_labels) for name, split in dataset.items()}
        return type(dataset)(prepared)
    if (task.kind == "strokes" or stroke_labels) and "strokes" not in (dataset.column_names or ()):
        raise SousaDataError(f"task {task.name!r} with stroke labels needs each clip's strokes: load the data with "
                             "load_sousa(..., strokes=True) (a recipe with task strokes or aux_strokes does)")
    if filters:
        dataset = filter_sousa(dataset, **filters)
    if apply_default_filter and task.min_tier_confidence is not None:
        dataset = filter_sousa(dataset, min_tier_confidence=task.min_tier_confidence)
    dataset = add_columns(dataset, task.encode, task.input_columns, task.label_features)
    if stroke_labels and task.kind != "strokes":
        dataset = add_columns(dataset, encode_stroke_labels, ("strokes", "duration_sec"), STROKE_LABEL_FEATURES)
    return dataset


def class_weights(train_dataset: Dataset | IterableDataset, task: str | SousaTask,
                  on_missing: str = "error") -> np.ndarray:
    """Inverse-frequency class weights `total / (num_classes * count)` from the training split.

    Args:
        train_dataset: the training split, before or after `prepare_task`.
        task: a classification task.
        on_missing: a class with no training example is an `"error"` (default), or with `"warn"`
            a warning and weight 0 (it can never be the target of a training loss).
    """
    task = get_task(task)
    if task.kind != "classification":
        raise SousaDataError(f"class weights need a classification task; {task.name!r} is {task.kind}")
    if on_missing not in ("error", "warn"):
        raise SousaDataError(f"on_missing must be 'error' or 'warn', not {on_missing!r}")
    if isinstance(train_dataset, IterableDataset):
        values = [row[task.label_column] for row in train_dataset.select_columns([task.label_column])]
    else:
        values = train_dataset.select_columns([task.label_column]).with_format("arrow")[:].column(0).to_pylist()
    ids = task.encode({task.label_column: values})["labels"]
    counts = np.bincount(np.asarray(ids, dtype=np.int64), minlength=task.num_labels)
    missing = [task.labels[i] for i in np.flatnonzero(counts == 0)]
    if missing:
        message = (f"task {task.name!r}: class(es) {', '.join(missing)} have no training example, so they "
                   "have no class weight; check the filters or the data source")
        if on_missing == "error":
            raise SousaDataError(message + " (or pass on_missing='warn' to weight them 0)")
        warnings.warn(message + "; their weight is 0", stacklevel=2)
    total, present = counts.sum(), np.maximum(counts, 1)
    return np.where(counts > 0, total / (task.num_labels * present), 0.0)
