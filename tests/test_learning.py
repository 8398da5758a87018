"""Learning, not just running: the quickstart recipe, as `make demo` runs it, beats chance on the
synthetic test split (asserted on metrics), and runs on the real sample too. Each run takes minutes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sousa_hf.recipe import load_recipe
from sousa_hf.train import run

QUICKSTART = Path(__file__).resolve().parents[1] / "recipes" / "quickstart.yaml"


@pytest.fixture(scope="module")
def synthetic_cache(tmp_path_factory, monkeypatch_module):
    cache = tmp_path_factory.mktemp("sousa_hf_cache")
    monkeypatch_module.setenv("SOUSA_HF_CACHE", str(cache))
    return cache


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.mark.parametrize("task, metric, above", [
    ("skill_binary", "balanced_accuracy", 0.65),  # chance is 0.5
    ("overall_score", "r2", 0.2),                 # predicting the mean gives 0
])
def test_the_quickstart_recipe_learns(synthetic_cache, tmp_path, task, metric, above):
    recipe, training = load_recipe(QUICKSTART, [f"task={task}", f"output_dir={tmp_path}"])
    results = run(recipe, training)
    assert results["metrics"][metric] > above, results["metrics"]
    assert json.loads((tmp_path / "results.json").read_text())["num_examples"] == 240


def test_the_quickstart_recipe_runs_on_the_real_sample(sample_dir, tmp_path):
    recipe, training = load_recipe(QUICKSTART, [f"data={sample_dir}", f"output_dir={tmp_path}"])
    results = run(recipe, training)
    assert results["split"] == "test" and results["data"] == str(sample_dir)
    assert (tmp_path / "metrics" / "per_skill_tier.json").is_file()
