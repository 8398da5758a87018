"""The tasks (five per clip, one per stroke): label spaces, labels, null masks, default filters and class weights."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from datasets import Dataset

from sousa_hf import RUDIMENTS, TASKS, SousaDataError, class_weights, get_task, load_sousa, prepare_task
from sousa_hf.data.tasks import CLIP_TASKS


def test_the_five_clip_tasks_the_strokes_task_and_their_label_spaces():
    assert list(CLIP_TASKS) == ["skill4", "skill_binary", "overall_score", "multitask", "rudiment40"]
    assert list(TASKS) == [*CLIP_TASKS, "strokes"]
    assert get_task("strokes").kind == "strokes" and get_task("strokes").main_metric == "onset_f1_25ms"
    assert get_task("skill4").id2label == {0: "beginner", 1: "intermediate", 2: "advanced", 3: "professional"}
    assert get_task("skill_binary").label2id == {"novice": 0, "skilled": 1}
    assert get_task("overall_score").num_labels == 1
    assert get_task("multitask").targets == ("overall_score", "tempo_stability", "flam_quality", "diddle_quality",
                                             "roll_sustain")
    rudiment = get_task("rudiment40")
    assert rudiment.num_labels == 40 and len(set(rudiment.labels)) == 40
    # PAS numbering: stable ids whatever order the data comes in.
    assert rudiment.label2id["single_stroke_roll"] == 0
    assert rudiment.label2id["single_paradiddle"] == 15
    assert rudiment.label2id["flam"] == 19
    assert rudiment.label2id["triple_ratamacue"] == 39


def test_every_rudiment_of_the_real_sample_has_a_class(sample_dir):
    slugs = set()
    for split in load_sousa(sample_dir, "labels_only").values():
        slugs |= set(split["rudiment_slug"])
    assert slugs == set(RUDIMENTS)


def test_unknown_task():
    with pytest.raises(SousaDataError, match="unknown task 'skill5'; expected one of skill4, skill_binary"):
        get_task("skill5")


@pytest.mark.parametrize("name", ["skill_binary", "rudiment40"])
def test_classification_labels_are_the_label_ids(sample_dir, name):
    task = get_task(name)
    train = prepare_task(load_sousa(sample_dir, "labels_only", split="train"), task)
    for row in train:
        assert row["labels"] == task.label2id[row[task.label_column]]


def test_skill4_filters_tier_confidence_above_one_half_by_default(sample_dir):
    train = load_sousa(sample_dir, "labels_only", split="train")
    confident = [c > 0.5 for c in train["tier_confidence"]]
    assert 0 < sum(confident) < len(train), "the sample must have rows on both sides of the filter"
    prepared = prepare_task(train, "skill4")
    assert len(prepared) == sum(confident)
    assert all(c > 0.5 for c in prepared["tier_confidence"])
    assert len(prepare_task(train, "skill4", apply_default_filter=False)) == len(train)


def test_regression_labels_are_overall_score_over_100(sample_dir):
    train = prepare_task(load_sousa(sample_dir, "labels_only", split="train"), "overall_score")
    np.testing.assert_allclose(train["labels"], np.array(train["overall_score"]) / 100, rtol=1e-6)


def test_multitask_labels_carry_null_masks(sample_dir):
    task = get_task("multitask")
    train = prepare_task(load_sousa(sample_dir, "labels_only", split="train"), task)
    nulls = {target: 0 for target in task.targets}
    for row in train:
        for i, target in enumerate(task.targets):
            value = row[target]
            missing = value is None or math.isnan(value)  # the real data stores these nulls as NaN
            assert row["labels_mask"][i] == (not missing)
            if missing:
                nulls[target] += 1
                assert row["labels"][i] == 0.0
            else:
                assert row["labels"][i] == pytest.approx(value / 100, rel=1e-6)
    assert nulls["overall_score"] == nulls["tempo_stability"] == 0
    assert min(nulls["flam_quality"], nulls["diddle_quality"], nulls["roll_sustain"]) > 0


def test_streamed_labels_match(sample_dir):
    eager = prepare_task(load_sousa(sample_dir, "labels_only", split="test"), "multitask")
    streamed = prepare_task(load_sousa(sample_dir, "labels_only", streaming=True), "multitask")["test"]
    for i, row in zip(range(5), streamed):
        assert row["labels"] == pytest.approx(eager[i]["labels"])
        assert row["labels_mask"] == eager[i]["labels_mask"]


def test_labels_on_a_filtered_view_keep_the_view(sample_dir):
    train = load_sousa(sample_dir, "audio", split="train")
    view = train.filter(lambda tier: tier == "professional", input_columns=["skill_tier"])
    labelled = prepare_task(view, "skill_binary")
    assert len(labelled) == len(view)
    assert labelled["sample_id"] == view["sample_id"]
    assert set(labelled["labels"]) == {1}
    assert labelled[0]["audio"]["array"].ndim == 1, "the decoding view survives adding labels"


def test_unknown_label_value_is_named():
    rows = Dataset.from_dict({"skill_tier_binary": ["novice", "expert"]})
    with pytest.raises(SousaDataError, match="unknown skill_tier_binary value 'expert'; expected one of novice, sk"):
        prepare_task(rows, "skill_binary")


def test_class_weights_are_inverse_frequency():
    tiers = ["beginner"] * 6 + ["intermediate"] * 3 + ["advanced"] * 2 + ["professional"]
    rows = Dataset.from_dict({"skill_tier": tiers})
    weights = class_weights(rows, "skill4")
    np.testing.assert_allclose(weights, [12 / (4 * 6), 12 / (4 * 3), 12 / (4 * 2), 12 / (4 * 1)])


def test_class_weights_of_the_sample(sample_dir):
    train = load_sousa(sample_dir, "labels_only", split="train")
    weights = class_weights(train, "skill4")
    counts = {tier: train["skill_tier"].count(tier) for tier in get_task("skill4").labels}
    np.testing.assert_allclose(weights, [len(train) / (4 * counts[t]) for t in get_task("skill4").labels])


def test_a_class_absent_from_training_is_an_error_or_a_warning():
    rows = Dataset.from_dict({"skill_tier": ["beginner", "beginner", "advanced", "professional"]})
    with pytest.raises(SousaDataError, match="intermediate have no training example"):
        class_weights(rows, "skill4")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        weights = class_weights(rows, "skill4", on_missing="warn")
    assert any("intermediate" in str(w.message) for w in caught)
    assert weights[1] == 0.0 and all(math.isfinite(w) for w in weights)
    np.testing.assert_allclose(weights[[0, 2, 3]], [4 / (4 * 2), 4 / 4, 4 / 4])


def test_class_weights_need_a_classification_task():
    with pytest.raises(SousaDataError, match="'overall_score' is regression"):
        class_weights(Dataset.from_dict({"overall_score": [1.0]}), "overall_score")
