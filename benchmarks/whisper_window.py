"""Whisper's window (the length policy's `max_seconds`) against quality and speed, for the frozen probe.

    python benchmarks/whisper_window.py --backbone WHISPER_DIR --data ../shared/sousa-tune

Whisper's encoder is built for 30 s; SOUSA's clips run 1.7-19 s (median 4.8 s), so most of a 30 s window
is padding that costs compute. For each window this trains `recipes/whisper_base_probe.yaml` (frozen
encoder, cached outputs) on the training split for each task given, and reports the backbone's seconds
per clip (timed on validation clips: the cost that scales with the window), the probe's training time
on the cache of all three splits, and the validation metric the recipe chooses its checkpoint by. Choose the
window on validation; the test split is reported for the record.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from sousa_hf import LengthPolicy, build_model, load_sousa
from sousa_hf.backbone_cache import BackboneOutputs, cache_backbone_outputs, cache_kind
from sousa_hf.data.audio import decode_audio
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


def backbone_ms_per_clip(model, adapter, clips: list) -> int:
    """The frozen backbone's time per clip (adapter + forward, 8 clips a batch) on decoded clips, timed directly
    rather than through the cache build, which finds an existing cache instead of running the model."""
    outputs = BackboneOutputs(model, adapter, cache_kind(model))
    outputs.outputs([adapter.prepare(array, rate) for array, rate in clips[:2]])  # warm-up
    start = time.perf_counter()
    for i in range(0, len(clips), 8):
        outputs.outputs([adapter.prepare(array, rate) for array, rate in clips[i : i + 8]])
    return round(1000 * (time.perf_counter() - start) / len(clips))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="openai/whisper-base")
    parser.add_argument("--data", default="../shared/sousa-tune")
    parser.add_argument("--windows", default="30,15,10,8,6", help="max_seconds values, comma-separated")
    parser.add_argument("--tasks", default="overall_score,skill_binary")
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    parser.add_argument("--timed-clips", type=int, default=64, help="validation clips the backbone is timed on")
    args = parser.parse_args()

    rows = []
    splits = load_sousa(args.data, "audio")
    validation = splits["validation"]
    timed = [decode_audio(cell) for cell in validation.select(range(min(args.timed_clips, len(validation))))["audio"]]
    with tempfile.TemporaryDirectory() as scratch:
        for window in (float(w) for w in args.windows.split(",")):
            recipe, _ = load_recipe(RECIPE, [f"backbone={args.backbone}", f"length.max_seconds={window}"])
            model, adapter = build_model(recipe.task, recipe.backbone, length=LengthPolicy(**recipe.length),
                                         pooling=recipe.pooling)
            row = {"max_seconds": window, "backbone_ms_per_clip": backbone_ms_per_clip(model, adapter, timed)}
            for split in splits.values():  # built once per window (or found): the runs below read it
                cache_backbone_outputs(split, model, adapter)
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
