"""How far the clip tasks can go from the players' labelled errors, and which held-out players they cannot place.

    python benchmarks/labelled_errors.py --data ../shared/sousa-tune

SOUSA's skill tiers belong to player profiles (each profile plays every take at one tier), and the splits
hold different profiles. A clip model can only read a tier from how the take is played. This fits two
heads on the training split (gradient boosting, the classical anchor's model, and the recipes' MLP shape,
scikit-learn's, over three seeds) on per-clip statistics of the labelled per-stroke errors
(`auxiliary/strokes.parquet`: timing error and velocity error, their mean, spread and 90th percentile of
size, per hand, the accents' lift and the flams' spacing, and the tempo), with no audio and no
transcription, and prints validation and test for skill_binary, skill4 (its default filter) and
overall_score. Then one row per held-out profile: its tier, its mean timing and velocity error, its mean
overall_score and how many of its takes gradient boosting puts on the right side of skill_binary. A
profile of one tier that plays like another caps every model of the clip's sound, however good its
transcription: the labelled errors are what a perfect one would read.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score, r2_score

from clip_heads import HEAD_NAMES, clip_head
from sousa_hf import load_sousa, prepare_task
from sousa_hf.data.strokes import STROKES_FILE
from sousa_hf.data.tasks import get_task

TASKS = ("skill_binary", "skill4", "overall_score")
HELD_OUT = ("validation", "test")
SEEDS = (0, 1, 2)


def error_statistics(strokes: pd.DataFrame) -> pd.DataFrame:
    """One row per `sample_id` of statistics of its labelled strokes' errors (`strokes.parquet`'s columns)."""
    strokes = strokes.assign(timing_size=strokes["timing_error_ms"].abs(),
                             velocity_size=strokes["velocity_error"].abs())
    clips = strokes.groupby("sample_id")
    table = pd.DataFrame({
        "timing_error_mean": clips["timing_error_ms"].mean(), "timing_error_std": clips["timing_error_ms"].std(),
        "timing_size_mean": clips["timing_size"].mean(), "timing_size_p90": clips["timing_size"].quantile(0.9),
        "velocity_error_mean": clips["velocity_error"].mean(), "velocity_error_std": clips["velocity_error"].std(),
        "velocity_size_mean": clips["velocity_size"].mean(), "velocity_size_p90": clips["velocity_size"].quantile(0.9),
        "velocity_std": clips["actual_velocity"].std(),
        "flam_spacing_mean": clips["flam_spacing_ms"].mean(), "flam_spacing_std": clips["flam_spacing_ms"].std(),
    })
    accents = strokes[strokes["is_accent"]].groupby("sample_id")["actual_velocity"].mean()
    taps = strokes[~strokes["is_accent"]].groupby("sample_id")["actual_velocity"].mean()
    table["accent_lift"] = accents - taps
    for hand in ("L", "R"):
        played = strokes[strokes["hand"] == hand].groupby("sample_id")
        table[f"timing_size_mean_{hand}"] = played["timing_size"].mean()
        table[f"velocity_mean_{hand}"] = played["actual_velocity"].mean()
    return table


def split_frame(split, statistics: pd.DataFrame) -> pd.DataFrame:
    """A prepared split's clips (`labels`, profile, tier, score, tempo) joined to their error statistics."""
    frame = split.select_columns(["sample_id", "profile_id", "skill_tier", "overall_score", "tempo_bpm",
                                  "labels"]).to_pandas()
    return frame.join(statistics, on="sample_id")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/sousa-tune", help="a SOUSA folder in the Hub layout")
    args = parser.parse_args()
    statistics = error_statistics(pd.read_parquet(os.path.join(args.data, STROKES_FILE)))
    columns = [*statistics.columns, "tempo_bpm"]
    data = load_sousa(args.data, "labels_only")

    print("\n| task | head | validation | test |\n| --- | --- | --- | --- |")
    for task_name in TASKS:
        task = get_task(task_name)
        frames = {name: split_frame(split, statistics) for name, split in prepare_task(data, task).items()}
        score = r2_score if task.kind == "regression" else balanced_accuracy_score
        for head_name in HEAD_NAMES:
            cells = {name: [] for name in HELD_OUT}
            for seed in SEEDS:
                fitted = clip_head(task.kind, head_name, seed).fit(frames["train"][columns], frames["train"]["labels"])
                for name in HELD_OUT:
                    cells[name].append(score(frames[name]["labels"], fitted.predict(frames[name][columns])))
            metric = "R2" if task.kind == "regression" else "balanced accuracy"
            print(f"| {task_name} ({metric}) | {head_name} | "
                  + " | ".join(f"{np.mean(cells[name]):.3f}" for name in HELD_OUT) + " |", flush=True)

    task = get_task("skill_binary")
    frames = {name: split_frame(split, statistics) for name, split in prepare_task(data, task).items()}
    fitted = clip_head(task.kind, "gradient boosting", 0).fit(frames["train"][columns], frames["train"]["labels"])
    print("\n| split | tier | profile | mean timing error size (ms) | mean velocity error size | overall_score "
          "| skill_binary right (gradient boosting) |\n| --- | --- | --- | --- | --- | --- | --- |")
    for name in HELD_OUT:
        frame = frames[name].assign(right=fitted.predict(frames[name][columns]) == frames[name]["labels"])
        profiles = frame.groupby(["skill_tier", "profile_id"]).agg(
            timing=("timing_size_mean", "mean"), velocity=("velocity_size_mean", "mean"),
            score=("overall_score", "mean"), right=("right", "sum"), takes=("right", "size"))
        for (tier, profile), row in profiles.sort_values("timing").iterrows():
            print(f"| {name} | {tier} | {profile[:8]} | {row.timing:.1f} | {row.velocity:.1f} | {row.score:.1f} "
                  f"| {int(row.right)} of {int(row.takes)} |")


if __name__ == "__main__":
    main()
