"""Two heads on the same stroke statistics, and the mean of their outputs: validation and test, in one run.

    python benchmarks/head_average.py runs/recipe/overall_score runs/trees/overall_score --data ../shared/sousa-tune

Takes two saved clip models of one task (e.g. `recipes/stroke_statistics.yaml` as it stands, an MLP, and the same
recipe with `--set statistics_head=boosted_trees`, from the same `strokes_from`), predicts every clip of both
splits with each, as `sousa-hf evaluate` does, and prints each model's main metrics beside those of the mean of
their outputs: class probabilities for classification, scores otherwise. The two heads err differently (a
smooth function of the standardised statistics against axis-aligned splits of them), so their mean can beat both.
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy.special import softmax

from sousa_hf.evaluation import predict_saved_model
from sousa_hf.metrics import task_metrics

SHOWN = {"classification": ("balanced_accuracy", "accuracy"), "regression": ("r2", "mae"),
         "multitask": ("r2", "r2_overall_score")}


def mean_output(task, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The two models' mean output, in the form `task_metrics` reads (for classification, log-probabilities)."""
    if task.kind == "classification":
        return np.log((softmax(first, axis=-1) + softmax(second, axis=-1)) / 2)
    return (first + second) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", help="a saved clip model (run folder or Hub id)")
    parser.add_argument("second", help="another of the same task, on the same data")
    parser.add_argument("--data", default="../shared/sousa-tune")
    parser.add_argument("--splits", default="validation,test")
    args = parser.parse_args()

    rows = []
    for split in args.splits.split(","):
        task, first, labels, mask = predict_saved_model(args.first, args.data, split)
        second_task, second, second_labels, _ = predict_saved_model(args.second, args.data, split)
        if second_task.name != task.name or not np.array_equal(labels, second_labels):
            raise SystemExit(f"{args.first} and {args.second} are not models of one task on the same clips "
                             f"({task.name} and {second_task.name} on {split})")
        for name, outputs in ((args.first, first), (args.second, second),
                              ("mean of the two", mean_output(task, first, second))):
            metrics = task_metrics(task, outputs, labels, mask)
            rows.append((split, name, ", ".join(f"{metric} {metrics[metric]:.3f}" for metric in SHOWN[task.kind])))
    print(f"\n{task.name} on {args.data}\n\n| split | model | metrics |\n| --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
