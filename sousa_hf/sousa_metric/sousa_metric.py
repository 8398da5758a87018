"""SOUSA's metrics as a Hugging Face `evaluate` module, one config per task: the same numbers as `sousa_hf.metrics`.

    import evaluate
    from sousa_hf.metrics import EVALUATE_MODULE

    skill4 = evaluate.load(EVALUATE_MODULE, "skill4")          # offline: loaded from this folder
    skill4.compute(predictions=[0, 2, 3], references=[0, 1, 3])  # {"balanced_accuracy": ..., "quadratic_kappa": ...}

Classification configs (`skill4`, `skill_binary`, `rudiment40`) take class ids (the task's `label2id`);
`overall_score` takes scores on SOUSA's 0-100 scale; `multitask` takes one row of five 0-100 scores per
clip (overall_score, tempo_stability, flam_quality, diddle_quality, roll_sustain), with `None` (or NaN)
in the references where SOUSA has no score: that clip is left out of that target's metrics.
"""

from __future__ import annotations

import math

import datasets
import evaluate
import numpy as np

from sousa_hf.data.tasks import CLIP_TASKS, get_task
from sousa_hf.metrics import classification_metrics, task_metrics

_DESCRIPTION = __doc__
_CITATION = """@misc{sousa,
  title = {SOUSA: Synthetic Open Unified Snare Assessment},
  howpublished = {\\url{https://huggingface.co/datasets/zkeown/sousa}},
}"""
_INPUTS = """
Args:
    predictions: class ids (skill4, skill_binary, rudiment40), 0-100 scores (overall_score) or rows of five
        0-100 scores (multitask).
    references: the same, from the labels; multitask references may hold None where a score is null.
Returns:
    skill4: balanced_accuracy, accuracy, macro_f1, quadratic_kappa; skill_binary: balanced_accuracy,
    accuracy, macro_f1; rudiment40: those plus family_accuracy, within_family_error_rate;
    overall_score: mse, mae, r2 (0-100 scale); multitask: mse, mae, r2 averaged over the targets and each
    target's own (`mae_flam_quality`, ...).
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _INPUTS)
class SousaMetric(evaluate.Metric):
    def _task(self):
        if self.config_name not in CLIP_TASKS:
            raise ValueError(f"choose the task as the config: evaluate.load(EVALUATE_MODULE, TASK) with TASK one of "
                             f"{', '.join(CLIP_TASKS)}; got {self.config_name!r}")
        return get_task(self.config_name)

    def _info(self):
        task = self._task()
        if task.kind == "classification":
            features = datasets.Features({"predictions": datasets.Value("int64"),
                                          "references": datasets.Value("int64")})
        elif task.kind == "regression":
            features = datasets.Features({"predictions": datasets.Value("float64"),
                                          "references": datasets.Value("float64")})
        else:
            features = datasets.Features({"predictions": datasets.Sequence(datasets.Value("float64")),
                                          "references": datasets.Sequence(datasets.Value("float64"))})
        return evaluate.MetricInfo(description=_DESCRIPTION, citation=_CITATION, inputs_description=_INPUTS,
                                   features=features, homepage="https://huggingface.co/datasets/zkeown/sousa")

    def _compute(self, predictions, references):
        task = self._task()
        if task.kind == "classification":
            return classification_metrics(np.asarray(references), np.asarray(predictions), task)
        scale = task.target_scale
        predictions = np.asarray(predictions, dtype=np.float64).reshape(len(predictions), -1) / scale
        references = np.array([[math.nan if v is None else v for v in np.atleast_1d(row)] for row in references],
                              dtype=np.float64) / scale
        if predictions.shape != references.shape or predictions.shape[1] != len(task.targets):
            raise ValueError(f"{task.name}: expected {len(task.targets)} score(s) per clip "
                             f"({', '.join(task.targets)}), got predictions {predictions.shape} and references "
                             f"{references.shape}")
        mask = ~np.isnan(references)
        return task_metrics(task, predictions, np.nan_to_num(references), mask if task.kind == "multitask" else None)
