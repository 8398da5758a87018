"""recipes/README.md is the recipe index and the smoke-test matrix: every row runs, tiny, end to end."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from sousa_hf.recipe import load_recipe
from sousa_hf.train import run

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
# Whatever a row says, the smoke run is small: a few steps, short clips, no caching processes.
SMOKE = ["max_steps=2", "eval_strategy=steps", "eval_steps=2", "per_device_train_batch_size=2",
         "per_device_eval_batch_size=4", "gradient_accumulation_steps=1", "max_train_samples=8", "max_eval_samples=4",
         "length.max_seconds=2.0", "num_proc=null", "dataloader_num_workers=0", "logging_steps=1"]


def table_rows() -> list[dict[str, str]]:
    text = (RECIPES / "README.md").read_text().splitlines()
    first = next(i for i, line in enumerate(text) if line.startswith("|"))
    lines = []  # the first table only: the results table further down has other columns
    for line in text[first:]:
        if not line.startswith("|"):
            break
        lines.append(line)
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")))) for line in lines[2:]]


def test_the_table_lists_every_recipe_file_once():
    listed = [row["recipe"].strip("`") for row in table_rows()]
    assert sorted(listed) == sorted(path.name for path in RECIPES.glob("*.yaml"))


def test_the_readme_gives_every_recipe_its_exact_command():
    readme = (RECIPES.parent / "README.md").read_text()
    for path in RECIPES.glob("*.yaml"):
        assert f"| `{path.name}` | `sousa-hf train recipes/{path.name}" in readme, path.name
        assert path.read_text().startswith(f"# sousa-hf train recipes/{path.name}"), path.name


def test_every_command_the_readmes_give_reads_as_a_valid_recipe():
    """The results tables' commands and the prose's: each recipe with its `--set` values is one the suite accepts
    (a recipe's per-task values included), before anything is trained. Placeholders stand for Whisper folders; a
    command whose values are left to the reader (`n_fft=...`) is not one to run."""
    commands = []
    for readme in (RECIPES.parent / "README.md", RECIPES / "README.md"):
        commands += re.findall(r"`sousa-hf train (recipes/\S+\.yaml(?: --set [^`]*)?)`", readme.read_text())
    assert len(commands) > 100
    for command in (command for command in commands if "=..." not in command):
        recipe, *words = shlex.split(re.sub(r"WHISPER_\w*DIR", "whisper:tiny", command))
        load_recipe(RECIPES.parent / recipe, [word for word in words if word != "--set"])


def test_each_stroke_statistics_row_of_the_results_tables_runs_the_options_its_name_says():
    """The recipes choose options per task (`per_task`); a row named for other options sets them back itself.
    `whisper_stroke_statistics.yaml` has the pattern evidence on; its rows name the head only."""
    row = re.compile(r"^\| \w+ \| ((?:augmented strokes \+ |whisper-tiny\.en strokes \+ )?stroke statistics[^|]*) \| "
                     r".*`sousa-hf train recipes/(\w*stroke_statistics\.yaml) ([^`]*)`", re.M)
    rows = [found for readme in (RECIPES.parent / "README.md", RECIPES / "README.md")
            for found in row.findall(readme.read_text())]
    assert len(rows) > 50 and len({recipe for _, recipe, _ in rows}) == 2
    for name, recipe_file, sets in rows:
        sets = re.sub(r"WHISPER_\w*DIR", "whisper:tiny", sets)
        recipe, _ = load_recipe(RECIPES / recipe_file, [w for w in shlex.split(sets) if w != "--set"])
        whisper = recipe_file.startswith("whisper")
        said = {"pattern_evidence": whisper or "pattern evidence" in name, "pattern_matches": "pattern matches" in name,
                "rhythm_patterns": "no rhythm patterns" not in name and "no tempo" not in name,
                "statistics_head": "boosted_trees" if "boosted trees" in name else "mlp"}
        assert {key: getattr(recipe, key) for key in said} == said, (name, sets)


@pytest.mark.parametrize("row", table_rows(), ids=lambda row: row["recipe"].strip("`"))
def test_each_recipe_runs_tiny_and_writes_its_files(row, synthetic_dir, tmp_path):
    path = RECIPES / row["recipe"].strip("`")
    recipe, _ = load_recipe(path)
    assert recipe.task == row["task"] and recipe.backbone == row["backbone"]
    overrides = re.findall(r"`([^`]+)`", row["smoke overrides"])
    if recipe.strokes_from is not None:  # a recipe that builds on a trained stroke model gets the smoke-run one
        (strokes_recipe,) = re.findall(r"smoke run of (\S+\.yaml)", row["smoke overrides"])
        strokes, strokes_training = load_recipe(RECIPES / strokes_recipe, [
            *overrides, *SMOKE, f"data={synthetic_dir}", f"output_dir={tmp_path / 'strokes'}"])
        run(strokes, strokes_training)
        overrides.append(f"strokes_from={tmp_path / 'strokes'}")
    recipe, training = load_recipe(path, [*overrides, *SMOKE, f"data={synthetic_dir}",
                                          f"output_dir={tmp_path / 'run'}"])
    run(recipe, training)
    for name in re.findall(r"`([^`]+)`", row["must write"]):
        assert (tmp_path / "run" / name).is_file(), name
