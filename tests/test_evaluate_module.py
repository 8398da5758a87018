"""`evaluate.load(EVALUATE_MODULE, TASK)`: SOUSA's metrics for people who write their own loops, offline, with
the same numbers as `sousa_hf.metrics`."""

from __future__ import annotations

import math

import evaluate
import numpy as np
import pytest

from sousa_hf.data.tasks import CLIP_TASKS, get_task
from sousa_hf.metrics import EVALUATE_MODULE, task_metrics


def _same(module_result: dict, suite_result: dict) -> None:
    assert set(module_result) == set(suite_result)
    for name, value in suite_result.items():
        assert module_result[name] == pytest.approx(value, nan_ok=True), name


@pytest.mark.parametrize("name", [n for n in CLIP_TASKS if get_task(n).kind == "classification"])
def test_classification_configs_give_the_suites_numbers(name):
    task = get_task(name)
    rng = np.random.default_rng(0)
    references = rng.integers(0, task.num_labels, 200)
    predictions = np.where(rng.random(200) < 0.6, references, rng.integers(0, task.num_labels, 200))
    metric = evaluate.load(EVALUATE_MODULE, name)
    result = metric.compute(predictions=predictions.tolist(), references=references.tolist())
    _same(result, task_metrics(task, np.eye(task.num_labels)[predictions], references))
    assert list(result)[0] == "balanced_accuracy"
    if name == "skill4":
        assert "quadratic_kappa" in result


def test_overall_score_takes_0_to_100_scores_in_batches():
    rng = np.random.default_rng(1)
    references = rng.uniform(20, 95, 120)
    predictions = references + rng.normal(0, 8, 120)
    metric = evaluate.load(EVALUATE_MODULE, "overall_score")
    for start in range(0, 120, 32):
        metric.add_batch(predictions=predictions[start:start + 32], references=references[start:start + 32])
    result = metric.compute()
    _same(result, task_metrics("overall_score", predictions / 100, references / 100))
    assert result["mae"] == pytest.approx(np.abs(predictions - references).mean())


def test_multitask_leaves_null_scores_out_of_their_target():
    rng = np.random.default_rng(2)
    references = rng.uniform(20, 95, (80, 5))
    predictions = references + rng.normal(0, 5, (80, 5))
    mask = rng.random((80, 5)) > 0.3
    mask[:, 0] = True
    with_nulls = [[float(v) if keep else None for v, keep in zip(row, keep_row)]
                  for row, keep_row in zip(references, mask)]
    metric = evaluate.load(EVALUATE_MODULE, "multitask")
    result = metric.compute(predictions=predictions.tolist(), references=with_nulls)
    _same(result, task_metrics("multitask", predictions / 100, references / 100, mask))
    flam = mask[:, 2]
    assert result["mae_flam_quality"] == pytest.approx(np.abs(predictions[flam, 2] - references[flam, 2]).mean())
    assert not math.isnan(result["r2"])


def test_a_missing_or_unknown_task_config_names_the_choices():
    with pytest.raises(ValueError, match="skill4, skill_binary"):
        evaluate.load(EVALUATE_MODULE, "skill5")


def test_a_wrong_number_of_scores_is_a_clear_error():
    metric = evaluate.load(EVALUATE_MODULE, "multitask")
    with pytest.raises(ValueError, match="5 score"):
        metric.compute(predictions=[[50.0, 60.0]], references=[[55.0, 65.0]])
