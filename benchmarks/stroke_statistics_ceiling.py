"""How much a clip model scored from strokes loses to its transcription: labelled strokes against found ones.

    python benchmarks/stroke_statistics_ceiling.py runs/table/cnn-5-ms-frames-strokes --data ../shared/sousa-tune

`recipes/stroke_statistics.yaml` scores a clip from statistics of the strokes a trained stroke model finds
(`sousa_hf/stroke_statistics.py`). The same statistics of the labelled strokes (`auxiliary/strokes.parquet`,
audible ones only) say what a perfect transcription would give. For each clip task this fits two heads on
each set of statistics, on the training split: scikit-learn's MLP of the recipe's shape (two layers of
256, L2 0.1) and gradient boosting (the classical anchor's model), and prints validation and test
metrics in one table. The gap between the two columns is what better transcription is worth. Then, for
skill_binary on test, how many takes of each held-out player every head gets right: where even the
labelled strokes go wrong, the player, not the transcription, is what is missing.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score, r2_score

from clip_heads import clip_head
from sousa_hf import load_sousa, prepare_task
from sousa_hf.adapters.base import LengthPolicy
from sousa_hf.backbone_cache import cache_backbone_outputs
from sousa_hf.backbones import build_model, load_stroke_front_end
from sousa_hf.configuration_sousa import SousaConfig
from sousa_hf.data.rhythm_patterns import fit_rhythm_patterns
from sousa_hf.data.strokes import audible_onsets
from sousa_hf.data.tasks import get_task
from sousa_hf.stroke_statistics import clip_statistics

TASKS = ("overall_score", "skill_binary", "skill4", "rudiment40")
SPLITS = ("train", "validation", "test")


def found_statistics(strokes_model: str, splits: dict, use_tempo: bool, rhythm_patterns: dict | None) -> dict:
    """Each split's rows with `cached_stroke_statistics`: the statistics of the strokes the model finds."""
    config = SousaConfig.from_pretrained(strokes_model)
    model, adapter = build_model(
        "overall_score", "cnn:random", backbone_config=config.backbone_config.to_diff_dict(),
        feature_extractor=strokes_model, temporal_blocks=config.temporal_blocks,
        temporal_gru=config.temporal_gru, pooling="stroke_statistics",
        use_tempo=use_tempo, rhythm_patterns=rhythm_patterns, length=LengthPolicy(max_seconds=None))
    load_stroke_front_end(model, strokes_model, adapter.feature_extractor)
    return {name: cache_backbone_outputs(splits[name], model, adapter) for name in SPLITS}


def labelled_statistics(row: dict, use_tempo: bool, rhythm_patterns: dict | None) -> np.ndarray:
    strokes = row["strokes"]
    heard = audible_onsets(strokes, 1000.0 * row["duration_sec"])
    pick = lambda name, dtype: torch.as_tensor(np.asarray(strokes[name], dtype=dtype)[heard])  # noqa: E731
    return clip_statistics(pick("onset_ms", np.float64), pick("velocity", np.float64), pick("is_grace", bool),
                           float(row["tempo_bpm"]) if use_tempo else None, rhythm_patterns).numpy()


def right_by_profile(profiles, right) -> dict[str, tuple[int, int]]:
    """`{profile: (takes predicted right, takes)}` over a split's rows."""
    counts: dict[str, tuple[int, int]] = {}
    for profile, correct in zip(profiles, right):
        hits, takes = counts.get(profile, (0, 0))
        counts[profile] = (hits + int(correct), takes + 1)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("strokes_model", help="a recipes/strokes_cnn.yaml run's folder")
    parser.add_argument("--data", default="../shared/sousa-tune")
    parser.add_argument("--no-tempo", action="store_true", help="only the statistics that need no tempo")
    parser.add_argument("--no-rhythm-patterns", action="store_true",
                        help="without the statistics against the rudiments' rhythms (`rhythm_patterns`)")
    args = parser.parse_args()
    use_tempo = not args.no_tempo
    data = load_sousa(args.data, "audio", strokes=True)
    patterns = None if args.no_tempo or args.no_rhythm_patterns else fit_rhythm_patterns(data["train"])
    cached = found_statistics(args.strokes_model, data, use_tempo, patterns)
    profile_rows, tiers = {}, {}
    print("\n| task | head | labelled strokes: validation | test | found strokes: validation | test |")
    print("| --- | --- | --- | --- | --- | --- |")
    for task_name in TASKS:
        task = get_task(task_name)
        splits = {name: prepare_task(cached[name], task) for name in SPLITS}
        labels = {name: np.asarray(split["labels"]) for name, split in splits.items()}
        inputs = {"labelled": {name: np.stack([labelled_statistics(row, use_tempo, patterns) for row in split])
                               for name, split in splits.items()},
                  "found": {name: np.asarray(split.with_format("numpy")["cached_stroke_statistics"])
                            for name, split in splits.items()}}
        score = (r2_score if task.kind == "regression" else balanced_accuracy_score)
        if task_name == "skill_binary":
            tiers = dict(zip(splits["test"]["profile_id"], splits["test"]["skill_tier"]))
        for head_name in ("MLP 256x2", "gradient boosting"):
            cells = []
            for source in ("labelled", "found"):
                fitted = clip_head(task.kind, head_name).fit(inputs[source]["train"], labels["train"])
                cells += [f"{score(labels[name], fitted.predict(inputs[source][name])):.3f}"
                          for name in ("validation", "test")]
                if task_name == "skill_binary":
                    right = fitted.predict(inputs[source]["test"]) == labels["test"]
                    profile_rows[(source, head_name)] = right_by_profile(splits["test"]["profile_id"], right)
            metric = "R2" if task.kind == "regression" else "balanced accuracy"
            print(f"| {task_name} ({metric}) | {head_name} | " + " | ".join(cells) + " |", flush=True)
    # Which held-out players the errors are: a transcription can only be as right as the labelled strokes are.
    print("\n| test profile | tier | takes | skill_binary right: " + " | ".join(
        f"{source} strokes, {head_name}" for source, head_name in profile_rows) + " |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in profile_rows) + " |")
    for profile, tier in sorted(tiers.items(), key=lambda item: (item[1], item[0])):
        counts = [profile_rows[key][profile] for key in profile_rows]
        print(f"| {profile[:8]} | {tier} | {counts[0][1]} | " + " | ".join(str(right) for right, _ in counts) + " |")


if __name__ == "__main__":
    main()
