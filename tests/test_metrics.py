"""Metrics on hand-written predictions: the SOUSA protocol's numbers, slices and the Trainer hook."""

from __future__ import annotations

import math

import numpy as np
import pytest
from transformers import EvalPrediction

from sousa_hf import RUDIMENT_FAMILY, RUDIMENTS
from sousa_hf.metrics import SousaMetrics, sliced_metrics, task_metrics, tempo_band


def _logits(classes, num_classes):
    return np.eye(num_classes)[np.asarray(classes)]


def test_classification_metrics_follow_the_protocol():
    # 4 tiers; true 0,0,0,1,2,3 predicted 0,0,1,1,3,3
    true, predicted = [0, 0, 0, 1, 2, 3], [0, 0, 1, 1, 3, 3]
    metrics = task_metrics("skill4", _logits(predicted, 4), np.array(true), detailed=True)
    assert metrics["balanced_accuracy"] == pytest.approx((2 / 3 + 1 + 0 + 1) / 4)
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert list(metrics)[0] == "balanced_accuracy"
    # quadratic kappa: two errors of one step each on an ordinal scale stay high
    assert 0.7 < metrics["quadratic_kappa"] < 1.0
    assert metrics["confusion_matrix"]["matrix"] == [[2, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 1]]
    assert metrics["per_class"]["intermediate"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3),
                                                    "support": 1}
    assert "quadratic_kappa" not in task_metrics("skill_binary", _logits([0, 1], 2), np.array([0, 1]))


def test_rudiment_mistakes_are_counted_within_and_across_families():
    index = {name: i for i, name in enumerate(RUDIMENTS)}
    rolls = [name for name in RUDIMENTS if RUDIMENT_FAMILY[name] == "roll"]
    flams = [name for name in RUDIMENTS if RUDIMENT_FAMILY[name] == "flam"]
    true = [index[rolls[0]], index[rolls[0]], index[flams[0]], index[flams[1]]]
    predicted = [index[rolls[0]], index[rolls[1]], index[rolls[2]], index[flams[1]]]
    metrics = task_metrics("rudiment40", _logits(predicted, 40), np.array(true), detailed=True)
    assert metrics["accuracy"] == 0.5
    assert metrics["within_family_error_rate"] == 0.5  # roll->roll stays in the family, flam->roll does not
    assert metrics["family_accuracy"] == 0.75
    families = metrics["family_confusion_matrix"]
    assert sum(map(sum, families["matrix"])) == 4 and families["labels"] == sorted(families["labels"])


def test_regression_metrics_are_on_the_0_to_100_scale():
    labels = np.array([0.5, 0.7, 0.9])
    predictions = np.array([[0.6], [0.7], [0.8]])
    metrics = task_metrics("overall_score", predictions, labels)
    assert metrics["mae"] == pytest.approx(20 / 3)
    assert metrics["mse"] == pytest.approx(200 / 3)
    assert metrics["r2"] == pytest.approx(1 - 200 / 800)


def test_multitask_metrics_skip_null_targets_per_row():
    labels = np.array([[0.5, 0.5, 0.0, 0.5, 0.5], [0.7, 0.7, 0.8, 0.7, 0.7]])
    mask = np.array([[True, True, False, True, True], [True, True, True, True, True]])
    predictions = labels.copy()
    predictions[0, 2] = 0.9  # a wrong prediction where the target is null does not count
    predictions[1, 0] = 0.6
    metrics = task_metrics("multitask", predictions, labels, mask)
    assert metrics["mae_flam_quality"] == 0.0
    assert metrics["mae_overall_score"] == pytest.approx(5.0)
    assert metrics["mae"] == pytest.approx(1.0)  # the mean over the five targets
    all_null = task_metrics("multitask", predictions, labels, np.zeros_like(mask))
    assert math.isnan(all_null["mae_flam_quality"]) and math.isnan(all_null["mae"])


def test_metrics_are_sliced_by_tier_preset_tempo_and_rudiment():
    columns = {"skill_tier": ["beginner", "beginner", "advanced"], "augmentation_preset": ["gym", "gym", "garage"],
               "tempo_bpm": [80, 120, 160], "rudiment_slug": ["flam", "flam", "drag"]}
    slices = sliced_metrics("skill_binary", _logits([0, 1, 1], 2), np.array([0, 0, 1]), None, columns)
    assert set(slices) == {"skill_tier", "augmentation_preset", "tempo_band", "rudiment"}
    assert slices["skill_tier"]["beginner"] == {"count": 2, "balanced_accuracy": 0.5, "accuracy": 0.5,
                                                "macro_f1": pytest.approx(1 / 3)}
    assert set(slices["tempo_band"]) == {"<100 bpm", "100-139 bpm", ">=140 bpm"}
    one_tier = sliced_metrics("skill4", _logits([2, 2], 4), np.array([2, 2]), None, {"skill_tier": ["advanced"] * 2})
    assert one_tier["skill_tier"]["advanced"]["macro_f1"] == 1.0  # not averaged with the absent tiers' zeros
    assert tempo_band(139.9) == "100-139 bpm" and tempo_band(140) == ">=140 bpm"


def test_the_trainer_hook_reads_nested_predictions():
    hook = SousaMetrics("multitask")
    labels = np.full((2, 5), 0.5)
    mask = np.ones((2, 5), dtype=bool)
    prediction = EvalPrediction(predictions=(np.full((2, 5), 0.6), np.full((2, 5), 60.0)), label_ids=(labels, mask))
    metrics = hook(prediction)
    assert metrics["mae"] == pytest.approx(10.0) and all(isinstance(v, float) for v in metrics.values())
