"""Whisper's window (the length policy's `max_seconds`) against quality and speed, for the frozen probe.

    python benchmarks/whisper_window.py --backbone WHISPER_DIR --data ../shared/sousa-tune

Whisper's encoder is built for 30 s; SOUSA's clips run 1.7-19 s (median 4.8 s), so most of a 30 s window
is padding that costs compute. For each window this trains `recipes/whisper_base_probe.yaml` (frozen
encoder, cached outputs) on the training split for each task given, and reports the backbone's seconds
per clip (building the cache of all three splits: the cost that scales with the window), the probe's
training time on that cache, and the validation metric the recipe chooses its checkpoint by. Choose the
window on validation; the test split is reported for the record.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from sousa_hf import LengthPolicy, build_model, load_sousa
from sousa_hf.backbone_cache import cache_backbone_outputs
from sousa_hf.data.tasks import get_task
from sousa_hf.recipe import load_recipe
from sousa_hf.train import run

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "whisper_base_probe.yaml"
MAIN_METRIC = {"classification": "balanced_accuracy", "regression": "r2", "multitask": "r2"}


def best_validation(output_dir: Path, metric: str) -> float:
    """The best validation value of `metric` over the run's evaluations (from its last checkpoint's state)."""
    states = sorted(output_dir.glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name.split("-")[1]))
    history = json.loads(states[-1].read_text())["log_history"]
    values = [entry[f"eval_{metric}"] for entry in history if f"eval_{metric}" in entry]
    return max(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="openai/whisper-base")
    parser.add_argument("--data", default="../shared/sousa-tune")
    parser.add_argument("--windows", default="30,15,10,8,6", help="max_seconds values, comma-separated")
    parser.add_argument("--tasks", default="overall_score,skill_binary")
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    args = parser.parse_args()

    rows = []
    splits = load_sousa(args.data, "audio")
    with tempfile.TemporaryDirectory() as scratch:
        for window in (float(w) for w in args.windows.split(",")):
            recipe, _ = load_recipe(RECIPE, [f"backbone={args.backbone}", f"length.max_seconds={window}"])
            model, adapter = build_model(recipe.task, recipe.backbone, length=LengthPolicy(**recipe.length),
                                         pooling=recipe.pooling)
            start = time.perf_counter()
            clips = sum(len(cache_backbone_outputs(split, model, adapter)) for split in splits.values())
            row = {"max_seconds": window, "backbone_ms_per_clip": round(1000 * (time.perf_counter() - start) / clips)}
            for task in args.tasks.split(","):  # each run reads the cache built above
                output_dir = Path(scratch) / f"{task}-{window:g}"
                recipe, training = load_recipe(RECIPE, [f"task={task}", f"backbone={args.backbone}",
                                                        f"data={args.data}", f"length.max_seconds={window}",
                                                        f"output_dir={output_dir}", "save_total_limit=1"])
                start = time.perf_counter()
                results = run(recipe, training)
                row[f"{task}_train_s"] = round(time.perf_counter() - start, 1)
                metric = MAIN_METRIC[get_task(task).kind]
                row[f"{task}_val_{metric}"] = round(best_validation(output_dir, metric), 4)
                row[f"{task}_test_{metric}"] = round(results["metrics"][metric], 4)
            rows.append(row)
            print(json.dumps(row), flush=True)
    columns = list(rows[0])
    print("\n| " + " | ".join(columns) + " |\n| " + " | ".join("---" for _ in columns) + " |")
    for row in rows:
        print("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
