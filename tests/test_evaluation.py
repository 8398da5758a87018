"""`sousa-hf evaluate` on a saved model reports on the split its run reported on."""

from __future__ import annotations

import json

from sousa_hf.cli import main as cli_main
from sousa_hf.recipe import load_recipe
from sousa_hf.train import run


def test_evaluate_applies_the_runs_filters_from_its_recipe(synthetic_dir, tmp_path):
    presets = ["garage", "gym", "clean_studio"]
    recipe, training = load_recipe(None, [
        "backbone=cnn:tiny", f"data={synthetic_dir}", "max_steps=1", "max_train_samples=4",
        "per_device_train_batch_size=4", "length.max_seconds=2", f"filters={{presets: {presets}}}",
        f"output_dir={tmp_path / 'run'}"])
    trained = run(recipe, training)
    assert cli_main(["evaluate", str(tmp_path / "run"), "--data", str(synthetic_dir),
                     "--output-dir", str(tmp_path / "eval")]) == 0
    evaluated = json.loads((tmp_path / "eval" / "results.json").read_text())
    per_preset = json.loads((tmp_path / "eval" / "metrics" / "per_augmentation_preset.json").read_text())
    assert evaluated["num_examples"] == trained["num_examples"]
    assert set(per_preset) <= set(presets)
    assert evaluated["metrics"] == trained["metrics"]
