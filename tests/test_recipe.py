"""Recipes: every file in recipes/ parses, overrides win, unknown keys are errors that name them."""

from __future__ import annotations

from pathlib import Path

import pytest

from sousa_hf import SousaDataError
from sousa_hf.adapters import LengthPolicy
from sousa_hf.data.tasks import TASKS
from sousa_hf.recipe import Recipe, load_recipe
from sousa_hf.train import training_arguments
from sousa_hf.training_modes import TRAINING_MODES, LoraSettings

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))


def test_there_is_a_recipe_per_task_and_a_quickstart():
    names = {path.stem for path in RECIPES}
    assert "quickstart" in names
    tasks = {load_recipe(path)[0].task for path in RECIPES}
    assert tasks >= set(TASKS)


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_every_recipe_parses_into_valid_settings(path):
    recipe, training = load_recipe(path)
    assert recipe.task in TASKS and recipe.training_mode in TRAINING_MODES
    LengthPolicy(**recipe.length)
    LoraSettings(**recipe.lora)
    args = training_arguments(recipe, TASKS[recipe.task], training)
    assert args.metric_for_best_model == TASKS[recipe.task].main_metric
    first_line = path.read_text().splitlines()[0]
    assert first_line.startswith("# ") and path.name in first_line, "a recipe opens with the command that runs it"


def test_overrides_win_and_take_yaml_values(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("task: skill4\nmax_steps: 100\nlength: {max_seconds: 5, eval_crop: start}\n")
    recipe, training = load_recipe(path, ["max_steps=5", "backbone=hubert:tiny", "length.max_seconds=3.5",
                                          "backbone_config={num_hidden_layers: 1}", "data=null"])
    assert training == {"max_steps": 5}
    assert recipe.backbone == "hubert:tiny" and recipe.backbone_config == {"num_hidden_layers": 1}
    assert recipe.length == {"max_seconds": 3.5, "eval_crop": "start"}
    assert recipe.data is None and recipe.task == "skill4"


@pytest.mark.parametrize("overrides, message", [
    (["max_step=5"], "unknown recipe key\\(s\\) 'max_step' \\(did you mean 'max_steps'\\?\\)"),
    (["backbone"], "--set expects key=value"),
    (["task.name=skill4"], "only .* take dotted keys"),
])
def test_bad_overrides_are_named(overrides, message):
    with pytest.raises(SousaDataError, match=message):
        load_recipe(None, overrides)


def test_unknown_keys_in_a_file_are_named(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("task: skill4\nbackbone_conf: {}\n")
    with pytest.raises(SousaDataError, match="'backbone_conf' \\(did you mean 'backbone_config'\\?\\)"):
        load_recipe(path)


def test_training_arguments_pick_the_best_checkpoint_by_the_tasks_main_metric():
    regression = training_arguments(Recipe(task="overall_score"), TASKS["overall_score"],
                                    {"output_dir": "x", "eval_strategy": "steps", "eval_steps": 7})
    assert (regression.metric_for_best_model, regression.greater_is_better) == ("mae", False)
    assert (regression.save_strategy, regression.save_steps) == ("steps", 7)
    assert regression.label_names == ["labels"] and regression.remove_unused_columns is False
    classification = training_arguments(Recipe(), TASKS["skill_binary"], {"output_dir": "x"})
    assert (classification.metric_for_best_model, classification.greater_is_better) == ("balanced_accuracy", True)
    multitask = training_arguments(Recipe(task="multitask"), TASKS["multitask"], {"output_dir": "x"})
    assert multitask.label_names == ["labels", "labels_mask"]
