"""Feeding datasets through adapters: on the fly, cached, streamed, and collated for the Trainer."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from sousa_hf import SousaDataError, load_sousa, prepare_task
from sousa_hf.adapters import ADAPTERS, LengthPolicy, get_adapter
from sousa_hf.adapters.collator import SousaCollator
from sousa_hf.adapters.preprocessing import prepare_inputs


@pytest.fixture(scope="module")
def validation(sample_dir):
    return prepare_task(load_sousa(sample_dir, "audio", split="validation"), "multitask")


def _policy(name):
    return None if name == "clap" else LengthPolicy(max_seconds=3.0)


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_on_the_fly_and_cached_features_give_the_same_tensors(validation, name):
    adapter = get_adapter(name, _policy(name))
    collate = SousaCollator(adapter)
    on_the_fly = collate([row for row in prepare_inputs(validation, adapter).select(range(4))])
    cached = collate([row for row in prepare_inputs(validation, adapter, cache="features").select(range(4))])
    assert on_the_fly.keys() == cached.keys()
    for key in on_the_fly:
        torch.testing.assert_close(on_the_fly[key], cached[key], rtol=0, atol=0)


def test_the_cache_is_the_same_with_several_processes(validation):
    adapter = get_adapter("ast", LengthPolicy(max_seconds=2.0))
    one = prepare_inputs(validation, adapter, cache="features")
    two = prepare_inputs(validation.select(range(len(validation))), adapter, cache="features", num_proc=2)
    np.testing.assert_array_equal(np.stack(one["input_values"]), np.stack(two["input_values"]))


@pytest.mark.parametrize("name", ["wav2vec2", "cnn"])
def test_the_int16_waveform_cache_matches_within_quantisation(validation, name):
    adapter = get_adapter(name, _policy(name))
    collate = SousaCollator(adapter)
    on_the_fly = collate([row for row in prepare_inputs(validation, adapter).select(range(3))])
    waveform = collate([row for row in prepare_inputs(validation, adapter, cache="waveform").select(range(3))])
    key = "input_values" if name == "wav2vec2" else "input_features"
    tolerance = 2e-3 if name == "wav2vec2" else 1.0  # one int16 step, normalised; dB of near-silent bins move more
    assert (on_the_fly[key] - waveform[key]).abs().median() < tolerance / 10
    assert (on_the_fly[key] - waveform[key]).abs().max() < tolerance * 10


def test_training_crops_are_random_on_the_fly_and_from_the_waveform_cache(validation):
    adapter = get_adapter("wav2vec2", LengthPolicy(max_seconds=1.0))
    for dataset in (prepare_inputs(validation, adapter, train=True),
                    prepare_inputs(validation, adapter, train=True, cache="waveform")):
        first, second = dataset[0]["input_values"], dataset[0]["input_values"]
        assert len(first) == len(second) == 16000
        assert not np.array_equal(first, second)


def test_training_from_the_feature_cache_warns_that_its_crop_is_fixed(validation, caplog):
    adapter = get_adapter("wav2vec2", LengthPolicy(max_seconds=1.0))
    with caplog.at_level("WARNING", logger="sousa_hf"):
        cached = prepare_inputs(validation.select(range(2)), adapter, train=True, cache="features")
    assert "stores each clip's center crop, so training sees no random crops" in caplog.text
    assert np.array_equal(cached[0]["input_values"], cached[0]["input_values"])


def test_streaming_works_on_the_fly(sample_dir, validation):
    adapter = get_adapter("ast", LengthPolicy(max_seconds=3.0))
    streamed = prepare_task(load_sousa(sample_dir, "audio", streaming=True)["validation"], "multitask")
    rows = [row for _, row in zip(range(3), prepare_inputs(streamed, adapter))]
    eager = prepare_inputs(validation, adapter)
    for i, row in enumerate(rows):
        np.testing.assert_array_equal(np.asarray(row["input_values"]), np.asarray(eager[i]["input_values"]))
        assert row["labels"] == pytest.approx(list(eager[i]["labels"]))
    batch = SousaCollator(adapter)(rows)
    assert batch["input_values"].shape == (3, 300, 128)
    with pytest.raises(SousaDataError, match="streamed dataset cannot be cached"):
        prepare_inputs(streamed, adapter, cache="features")


def test_collated_labels_have_the_task_dtypes(sample_dir):
    adapter = get_adapter("wav2vec2", LengthPolicy(max_seconds=2.0))
    collate = SousaCollator(adapter)
    split = load_sousa(sample_dir, "audio", split="validation")
    multitask = collate([prepare_inputs(prepare_task(split, "multitask"), adapter)[i] for i in range(2)])
    assert multitask["labels"].dtype == torch.float32 and multitask["labels"].shape == (2, 5)
    assert multitask["labels_mask"].dtype == torch.bool
    classes = collate([prepare_inputs(prepare_task(split, "rudiment40"), adapter)[i] for i in range(2)])
    assert classes["labels"].dtype == torch.long and classes["labels"].shape == (2,)
    regression = collate([prepare_inputs(prepare_task(split, "overall_score"), adapter)[i] for i in range(2)])
    assert regression["labels"].dtype == torch.float32


def test_variable_length_inputs_are_padded_with_masks(sample_dir):
    split = prepare_task(load_sousa(sample_dir, "audio", split="validation"), "skill_binary")
    adapter = get_adapter("cnn")
    rows = [prepare_inputs(split, adapter)[i] for i in range(3)]
    lengths = [len(r["input_features"]) for r in rows]
    assert len(set(lengths)) > 1
    batch = SousaCollator(adapter)(rows)
    assert batch["input_features"].shape == (3, max(lengths), 128)
    assert batch["attention_mask"].sum(dim=1).tolist() == lengths


def test_the_feature_cache_is_reused_across_runs(tmp_path, sample_dir):
    script = (
        "from sousa_hf import load_sousa, prepare_task\n"
        "from sousa_hf.adapters import get_adapter\n"
        "from sousa_hf.adapters.preprocessing import prepare_inputs\n"
        f"split = prepare_task(load_sousa({str(sample_dir)!r}, split='validation', cache_dir={str(tmp_path)!r}),"
        " 'skill_binary')\n"
        "cached = prepare_inputs(split, get_adapter('ast'), cache='features')\n"
        "print(cached.cache_files[0]['filename'])\n"
    )
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
            for _ in range(2)]
    first, second = (run.stdout.strip().splitlines()[-1] for run in runs)
    assert first == second and first.startswith(str(tmp_path))
    assert "Caching ast features" in runs[0].stderr and "Caching ast features" not in runs[1].stderr


def test_new_preprocessing_code_makes_a_new_cache(validation, monkeypatch):
    from sousa_hf.adapters import preprocessing

    adapter = get_adapter("ast", LengthPolicy(max_seconds=2.0))
    first = prepare_inputs(validation, adapter, cache="features")
    assert prepare_inputs(validation, adapter, cache="features").cache_files == first.cache_files
    monkeypatch.setattr(preprocessing, "preprocessing_code_digest", lambda: "a later version")
    second = prepare_inputs(validation, adapter, cache="features")
    assert second.cache_files[0]["filename"] != first.cache_files[0]["filename"]


def test_a_feature_cache_of_a_filtered_split_holds_that_splits_rows(sample_dir):
    # Two filters of one table: each cache must hold its own rows and labels, not the other's.
    train = load_sousa(sample_dir, "audio", split="train")
    adapter = get_adapter("cnn", LengthPolicy(max_seconds=1.0))
    every = prepare_task(train, "skill4", apply_default_filter=False)
    confident = prepare_task(train, "skill4")  # tier_confidence > 0.5
    assert 0 < len(confident) < len(every) and confident._fingerprint != every._fingerprint
    for prepared in (every, confident):
        cached = prepare_inputs(prepared, adapter, cache="features")
        assert len(cached) == len(prepared) and list(cached["labels"]) == prepared["labels"]
