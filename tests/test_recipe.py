"""Recipes: every file in recipes/ parses, overrides win, unknown keys are errors that name them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import save_file

from sousa_hf import SousaDataError
from sousa_hf.adapters import LengthPolicy
from sousa_hf.data.tasks import TASKS
from sousa_hf.recipe import Recipe, changed_identity_keys, dump_recipe, load_recipe
from sousa_hf.run_folder import resume_checkpoint
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


def test_a_recipes_per_task_values_apply_to_the_task_it_runs_and_a_set_still_wins(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("task: skill4\nmax_steps: 100\nlength: {max_seconds: 5, eval_crop: start}\n"
                    "per_task:\n  rudiment40: {max_steps: 7, length: {max_seconds: 8}}\n  skill4: {max_steps: 9}\n")
    recipe, training = load_recipe(path)
    assert recipe.task == "skill4" and training == {"max_steps": 9}
    recipe, training = load_recipe(path, ["task=rudiment40"])  # a mapping merges into the file's
    assert training == {"max_steps": 7} and recipe.length == {"max_seconds": 8, "eval_crop": "start"}
    recipe, _ = load_recipe(path, ["task=rudiment40", "length.eval_crop=center"])
    assert recipe.length == {"max_seconds": 8, "eval_crop": "center"}
    _, training = load_recipe(path, ["task=rudiment40", "max_steps=3"])
    assert training == {"max_steps": 3}
    recipe, training = load_recipe(path, ["task=overall_score"])  # no values for it: the file's
    assert training == {"max_steps": 100} and recipe.length == {"max_seconds": 5, "eval_crop": "start"}
    _, training = load_recipe(path, ["task=rudiment40", "per_task=null"])
    assert training == {"max_steps": 100}
    dump_recipe(*load_recipe(path, ["task=rudiment40"]), tmp_path / "run" / "recipe.yaml")
    saved = yaml.safe_load((tmp_path / "run" / "recipe.yaml").read_text())
    assert "per_task" not in saved and saved["max_steps"] == 7  # a run records what it ran with


def test_the_stroke_statistics_recipe_runs_each_task_with_the_options_chosen_for_it():
    path = next(path for path in RECIPES if path.stem == "stroke_statistics")
    chosen = {task: load_recipe(path, [f"task={task}"])[0] for task in ("overall_score", "skill_binary", "rudiment40",
                                                                          "multitask")}
    assert not chosen["overall_score"].pattern_evidence and chosen["skill_binary"].pattern_evidence
    assert chosen["rudiment40"].pattern_matches and chosen["rudiment40"].statistics_head == "mlp"
    assert chosen["multitask"].pattern_matches and chosen["multitask"].statistics_head == "boosted_trees"
    # A per-task value the rest of the recipe now forbids is named as the recipe's, with the way out.
    with pytest.raises(SousaDataError, match=r"needs rhythm_patterns: true.*\{pattern_evidence: true\} from the "
                                             r"recipe's per_task values for skill_binary"):
        load_recipe(path, ["task=skill_binary", "use_tempo=false", "rhythm_patterns=false"])
    recipe, _ = load_recipe(path, ["task=skill_binary", "use_tempo=false", "rhythm_patterns=false",
                                   "pattern_evidence=false"])
    assert not recipe.pattern_evidence
    # Nor is a value blamed on it that the command set, or an error about another key.
    with pytest.raises(SousaDataError) as refused:
        load_recipe(path, ["task=skill_binary", "rhythm_patterns=false", "pattern_evidence=true"])
    assert "per_task" not in str(refused.value)
    with pytest.raises(SousaDataError) as refused:
        load_recipe(path, ["task=skill_binary", "learning_rate=-1"])
    assert "learning_rate" in str(refused.value) and "per_task" not in str(refused.value)


@pytest.mark.parametrize("per_task, message", [
    ("[skill4]", "per_task must map task names to mappings"),
    ("{skill5: {max_steps: 1}}", "per_task names unknown task\\(s\\) 'skill5'; the tasks are skill4"),
    ("{skill4: {task: rudiment40, max_step: 1}}", "per_task.skill4 sets 'task', 'max_step'"),
])
def test_bad_per_task_values_are_named(tmp_path, per_task, message):
    path = tmp_path / "r.yaml"
    path.write_text(f"task: skill4\nper_task: {per_task}\n")
    with pytest.raises(SousaDataError, match=f"recipe '{path}': " + message):
        load_recipe(path)
    with pytest.raises(SousaDataError, match="--set per_task: " + message):
        load_recipe(None, [f"per_task={per_task}"])


def test_a_task_that_is_not_a_name_is_refused_as_such_by_a_recipe_with_per_task_values(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("task: skill4\nper_task: {skill4: {max_steps: 9}}\n")
    with pytest.raises(SousaDataError, match="recipe key task: expected text, got \\['skill4'\\]"):
        load_recipe(path, ["task=[skill4]"])


@pytest.mark.parametrize("overrides, message", [
    (["max_step=5"], "unknown recipe key\\(s\\) 'max_step' \\(did you mean 'max_steps'\\?\\)"),
    (["backbone"], "--set expects key=value"),
    (["task.name=skill4"], "only .* take dotted keys"),
])
def test_bad_overrides_are_named(overrides, message):
    with pytest.raises(SousaDataError, match=message):
        load_recipe(None, overrides)


@pytest.mark.parametrize("override, message", [
    ("length.max_secs=3", "recipe key length: unknown entry 'max_secs' \\(did you mean 'max_seconds'\\?\\)"),
    ("lora={rnk: 4}", "recipe key lora: unknown entry 'rnk' \\(did you mean 'rank'\\?\\)"),
    ("filters.preset=clean", "recipe key filters: unknown entry 'preset' \\(did you mean 'presets'\\?\\)"),
    ("length.eval_crop=random", "recipe key length: unknown eval_crop 'random'"),
    ("pooling=max", "recipe key pooling: 'max' is not one of mean, attentive_stats, weighted_layers"),
    ("regression_loss=l1", "recipe key regression_loss: 'l1' is not one of mse, huber"),
    ("training_mode=frozen", "recipe key training_mode: 'frozen' is not one of full, "),
    ("cache=feature", "recipe key cache: 'feature' is not one of None, features, waveform"),
    ("backbone=foo:tiny", "recipe key backbone: unknown backbone 'foo:tiny'"),
    ("task=skill5", "unknown task 'skill5'"),
])
def test_bad_values_are_refused_when_the_recipe_is_read(override, message):
    with pytest.raises(SousaDataError, match=message):
        load_recipe(None, [override])


def test_the_saved_recipe_holds_no_hub_token(tmp_path):
    recipe, training = load_recipe(None, ["push_to_hub=true", "hub_token=hf_secret_value", "max_steps=3"])
    dump_recipe(recipe, training, tmp_path / "recipe.yaml")
    saved = (tmp_path / "recipe.yaml").read_text()
    assert "hf_secret_value" not in saved and "hub_token" not in saved
    assert "max_steps: 3" in saved and "push_to_hub: true" in saved


def write_checkpoint(folder: Path, step: int) -> None:
    """What Trainer leaves in a checkpoint folder, in miniature: its state and the model's weights."""
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    save_file({"weight": torch.zeros(4)}, folder / "model.safetensors")


def test_a_checkpoint_resumes_only_under_the_recipe_that_made_it(tmp_path):
    made, training = load_recipe(None, ["task=skill_binary", f"output_dir={tmp_path}"])
    dump_recipe(made, training, tmp_path / "recipe.yaml")
    write_checkpoint(tmp_path / "checkpoint-4", step=4)
    assert resume_checkpoint(made, str(tmp_path)) == str(tmp_path / "checkpoint-4")
    longer, _ = load_recipe(None, ["task=skill_binary", "max_steps=50", "num_proc=2"])  # not what the model is
    assert resume_checkpoint(longer, str(tmp_path)) == str(tmp_path / "checkpoint-4")
    other, _ = load_recipe(None, ["task=overall_score", "backbone=cnn:tiny"])
    with pytest.raises(SousaDataError, match="recipe differs in task, backbone; train into another output_dir"):
        resume_checkpoint(other, str(tmp_path))
    # Written back and read (tuples become lists) and with a default spelled out, it is the same recipe.
    same, _ = load_recipe(None, ["task=skill_binary", "length={eval_crop: center}"])
    assert resume_checkpoint(same, str(tmp_path)) == str(tmp_path / "checkpoint-4")
    fresh, _ = load_recipe(None, ["task=skill_binary", "resume=false"])
    with pytest.raises(SousaDataError, match="holds checkpoints of an earlier run and the recipe says resume: false"):
        resume_checkpoint(fresh, str(tmp_path))
    assert resume_checkpoint(fresh, str(tmp_path / "new")) is None


def test_a_saved_recipe_with_tuples_is_the_recipe_that_saved_it(tmp_path):
    recipe = Recipe(lora={"target_modules": ("q_proj", "v_proj")}, filters={"tiers": ("novice",)})
    dump_recipe(recipe, {}, tmp_path / "recipe.yaml")
    assert changed_identity_keys(recipe, yaml.safe_load((tmp_path / "recipe.yaml").read_text())) == []


def test_numbers_in_e_notation_are_numbers(tmp_path):  # PyYAML (YAML 1.1) reads 1e-4 without a dot as text
    recipe, training = load_recipe(None, ["classifier_dropout=1e-1", "length.max_seconds=1e1", "learning_rate=3e-4"])
    assert (recipe.classifier_dropout, recipe.length["max_seconds"], training["learning_rate"]) == (0.1, 10.0, 3e-4)
    (tmp_path / "r.yaml").write_text("learning_rate: 2e-5\nlength: {max_seconds: 6e0}\n")
    recipe, training = load_recipe(tmp_path / "r.yaml")
    assert training["learning_rate"] == 2e-5 and recipe.length["max_seconds"] == 6.0
    with pytest.raises(SousaDataError, match="recipe key classifier_dropout: expected a number, got 'high'"):
        load_recipe(None, ["classifier_dropout=high"])


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
