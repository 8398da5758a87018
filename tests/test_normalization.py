"""Fitting AST's and the CNN's spectrogram statistics on a SOUSA training split."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sousa_hf import SousaDataError, build_model, load_sousa
from sousa_hf.adapters import get_adapter
from sousa_hf.adapters.normalization import fit_normalization
from sousa_hf.cli import main
from sousa_hf.recipe import load_recipe
from sousa_hf.train import run


@pytest.mark.parametrize("name", ["ast", "cnn"])
def test_fitted_statistics_standardise_the_training_features(synthetic_dir, name):
    train = load_sousa(synthetic_dir, "audio", split="train")
    adapter = get_adapter(name)
    default_mean = adapter.feature_extractor.mean
    mean, std = fit_normalization(adapter, train)
    assert (mean, std) == (adapter.feature_extractor.mean, adapter.feature_extractor.std) != (default_mean, std)
    values = []
    for row in train:
        prepared = adapter.prepare(row["audio"]["array"], row["audio"]["sampling_rate"])
        features = adapter.extract([prepared], return_tensors="np")
        if name == "ast":
            frames = 1 + (prepared.size - 400) // 160
            values.append(features["input_values"][0, :frames].ravel())
        else:
            mask = features["attention_mask"][0].astype(bool)
            values.append(features["input_features"][0][mask].ravel())
    values = np.concatenate(values)
    # AST's extractor divides by 2 * std (its published normalisation), the CNN's by std.
    expected_std = 0.5 if name == "ast" else 1.0
    assert abs(values.mean()) < 0.01 and values.std() == pytest.approx(expected_std, rel=0.01)


def test_the_command_saves_the_statistics_with_the_extractor(synthetic_dir, tmp_path, capsys):
    out = tmp_path / "ast"
    assert main(["adapters", "stats", "ast", "--data", str(synthetic_dir), "--out-dir", str(out),
                 "--max-clips", "10"]) == 0
    stored = json.loads((out / "preprocessor_config.json").read_text())
    assert stored["sousa_adapter"] == "ast" and stored["mean"] != pytest.approx(-4.2677393)
    assert f"mean {stored['mean']:.4f}, std {stored['std']:.4f}" in capsys.readouterr().out
    assert get_adapter(str(out)).feature_extractor.mean == stored["mean"]


def test_waveform_adapters_have_no_statistics(synthetic_dir):
    with pytest.raises(SousaDataError, match="wav2vec2 adapter has no normalisation statistics"):
        fit_normalization(get_adapter("wav2vec2"), load_sousa(synthetic_dir, "audio", split="train"))


def test_a_recipe_trains_with_the_fitted_extractor_and_saves_it(synthetic_dir, tmp_path):
    assert main(["adapters", "stats", "cnn", "--data", str(synthetic_dir), "--out-dir", str(tmp_path / "stats"),
                 "--max-clips", "8"]) == 0
    fitted = json.loads((tmp_path / "stats" / "preprocessor_config.json").read_text())
    recipe, training = load_recipe(None, [
        "backbone=cnn:tiny", f"feature_extractor={tmp_path / 'stats'}", f"data={synthetic_dir}", "max_steps=1",
        "max_train_samples=4", "max_eval_samples=4", "per_device_train_batch_size=4", "length.max_seconds=2",
        f"output_dir={tmp_path / 'run'}"])
    run(recipe, training)
    saved = json.loads((tmp_path / "run" / "preprocessor_config.json").read_text())
    assert (saved["mean"], saved["std"]) == (fitted["mean"], fitted["std"]) != (-35.23, 27.96)
    assert saved["sousa_max_seconds"] == 2


def test_an_extractor_of_another_family_is_refused(tmp_path):
    get_adapter("ast").save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="holds a ASTFeatureExtractor; the cnn backbone takes a "
                                         "SousaMelFeatureExtractor"):
        build_model("skill_binary", "cnn:tiny", feature_extractor=str(tmp_path))
