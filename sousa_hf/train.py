"""The one training entry point: recipe -> data -> model -> `SousaTrainer` -> best checkpoint -> report.

    sousa-hf train recipes/quickstart.yaml --set max_steps=50
    accelerate launch -m sousa_hf.train recipes/quickstart.yaml --set max_steps=50   # same, N processes

The output directory gets the checkpoints (resumed from after a crash), the best model with its
feature extractor and remote code, `recipe.yaml` (every key, overrides applied), `results.json` and
`metrics/` for the test split.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import numpy as np
import torch
from transformers import EarlyStoppingCallback, TrainerCallback, TrainingArguments, set_seed

from .adapters import LengthPolicy
from .adapters.augmentation import WaveformAugmentation
from .adapters.collator import SousaCollator
from .adapters.preprocessing import prepare_inputs
from .backbone_cache import cache_backbone_outputs
from .backbones import build_model, load_stroke_front_end
from .boosted_trees import BoostedTreesSettings
from .data.audio_check import check_audio
from .data.errors import SousaDataError
from .data.loading import data_origin, load_sousa
from .data.rhythm_patterns import fit_rhythm_patterns
from .data.synthetic import make_synthetic_sousa
from .data.tasks import SousaTask, class_weights, get_task, prepare_task
from .evaluation import evaluate_split, tune_stroke_threshold
from .hub import check_hub_strategy, check_push_target, push_model
from .metrics import SousaMetrics
from .recipe import Recipe, dump_recipe
from .recipe_checks import check_recipe, check_training_values
from .report import format_metrics_table
from .run_folder import check_output_dir, finished_run, holds_finished_model, resume_checkpoint
from .trainer import SousaTrainer, task_label_names
from .training_modes import LoraSettings, apply_training_mode, merge_lora
from .tree_fitting import fit_boosted_trees

logger = logging.getLogger(__name__)


def training_arguments(recipe: Recipe, task: SousaTask, values: dict) -> TrainingArguments:
    """The recipe's `TrainingArguments`, on defaults that pick the best checkpoint by the task's main metric."""
    values = dict(values)
    if values.get("bf16") and not (torch.cuda.is_available() and torch.cuda.is_bf16_supported()):
        # GPU recipes stay runnable for a smoke test on a laptop (--set backbone=hubert:tiny).
        logger.warning("the recipe asks for bf16 but there is no bf16 GPU here; training in float32")
        values["bf16"] = False
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available():
        # Launched as several processes on a machine without a GPU: without use_cpu each process
        # would train alone on the whole data instead of joining one gloo process group.
        values.setdefault("use_cpu", True)
    # Pinned memory only helps copies to a GPU; without one torch warns on every evaluation.
    values.setdefault("dataloader_pin_memory", torch.cuda.is_available())
    if values.get("push_to_hub"):
        # One push at the end, of the folder `sousa-hf push` would upload; "every_save" would also
        # upload the run's intermediate files from output_dir.
        values.setdefault("hub_strategy", "end")
    # Evaluation and saving move together so that the best checkpoint can be loaded at the end.
    if "eval_strategy" in values:
        values.setdefault("save_strategy", values["eval_strategy"])
    if "eval_steps" in values:
        values.setdefault("save_steps", values["eval_steps"])
    defaults = dict(
        output_dir=f"runs/{task.name}", eval_strategy="epoch", save_strategy="epoch", logging_steps=10,
        load_best_model_at_end=True, metric_for_best_model=task.main_metric,
        greater_is_better=task.main_metric not in ("mae", "mse"), save_total_limit=2, report_to="none",
        # The datasets decode audio in a transform: Trainer must not drop the columns it reads.
        remove_unused_columns=False,
        label_names=task_label_names(task.kind),
    )
    try:
        return TrainingArguments(**{**defaults, **values})
    except (TypeError, ValueError) as err:  # a TrainingArguments value of the wrong type or out of its choices
        raise SousaDataError(f"recipe: a TrainingArguments value is refused: {err}") from err


def model_config(model):
    return (model.get_base_model() if hasattr(model, "get_base_model") else model).config


# The poolings that standardise their statistics by the training split's (`fit_statistics_norm`).
STANDARDISED_POOLINGS = ("layer_stats", "stroke_statistics")


def fit_statistics_norm(model, train, collator, batch_size: int) -> None:
    """`layer_stats` and `stroke_statistics` pooling standardise each statistic by the training split's mean and
    spread: one pass over it (the head's inputs alone, with a backbone cache), in evaluation mode."""
    from torch.utils.data import DataLoader

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    was_training = base.training
    base.eval()
    batches = ({k: v for k, v in batch.items() if k not in ("labels", "labels_mask")}
               for batch in DataLoader(train, batch_size=batch_size, collate_fn=collator))
    if base.config.pooling == "stroke_statistics":
        base.fit_stroke_statistics_norm(batches)
    else:
        base.sousa.fit_statistics_norm(batches)
    base.train(was_training)


def fit_statistics_trees(model, train, evaluation, task: SousaTask, weights: np.ndarray | None) -> list[int]:
    """`statistics_head: boosted_trees`: fit the trees on the training split's cached stroke statistics (each clip
    weighted by its class's weight, as the loss would be), keep the boosting iterations that do best on the
    evaluation split, and give them to the model. Returns the iterations kept (one number per target of a multi-task
    model)."""
    config = model_config(model)

    def columns(split) -> tuple:
        table = split.with_format("numpy")
        return (np.asarray(table["cached_stroke_statistics"]), np.asarray(table["labels"]),
                np.asarray(table["labels_mask"]) if "labels_mask" in split.column_names else None)

    statistics, labels, mask = columns(train)
    fitted = fit_boosted_trees(BoostedTreesSettings(**config.boosted_trees), task.kind, config.num_outputs,
                               (statistics, labels, mask), columns(evaluation),
                               sample_weight=None if weights is None else weights[labels.astype(np.int64)])
    model.set_boosted_trees(fitted)
    logger.info("boosted trees fitted on %d clips; boosting iterations kept (chosen on validation): %s",
                len(statistics), fitted.iterations)
    return fitted.iterations


def data_source(recipe: Recipe) -> str | list[str]:
    """The recipe's `data`, or the built-in synthetic SOUSA when it names none."""
    return recipe.data if recipe.data is not None else synthetic_source(recipe)


def synthetic_source(recipe: Recipe) -> str:
    """The built-in synthetic SOUSA, written once per (size, seed) under `$SOUSA_HF_CACHE`."""
    cache = Path(os.environ.get("SOUSA_HF_CACHE", Path.home() / ".cache" / "sousa_hf"))
    path = cache / f"synthetic-{recipe.synthetic_samples}-seed{recipe.synthetic_seed}"
    if not (path / "splits.json").is_file():
        partial = path.with_name(path.name + f".partial-{os.getpid()}")
        make_synthetic_sousa(partial, num_samples=recipe.synthetic_samples, seed=recipe.synthetic_seed,
                             overwrite=True)
        os.replace(partial, path)  # complete or absent, even if a run is killed while writing
    return str(path)


def load_splits(recipe: Recipe, task: SousaTask, args: TrainingArguments, model=None, adapter=None
                ) -> tuple[dict, dict[str, list[str]]]:
    """The recipe's data, filtered, with the task's labels: `({split: Dataset}, {split: skipped sample ids})`.

    Every clip is decoded once here (`check_audio`), so that a corrupt one stops the run before training, or
    with `bad_audio: skip` is left out, rather than failing at the step that reaches it. With `cache:
    backbone` each loaded split (before the task's filters, so that every task reuses it) becomes the frozen
    backbone's outputs of `model`, made from `adapter`'s inputs.
    """
    with args.main_process_first(desc="preparing SOUSA"):
        source = data_source(recipe)
        splits = load_sousa(source, "audio", strokes=task.kind == "strokes" or bool(recipe.aux_strokes))
    wanted = {"train", recipe.eval_split, recipe.test_split}
    missing = wanted - set(splits)
    if missing:
        raise SousaDataError(f"{source!r} has no split(s) {sorted(missing)}; it has {sorted(splits)}")
    prepared, skipped = {}, {}
    for name in sorted(wanted):
        split = splits[name]
        if recipe.cache == "backbone":
            with args.main_process_first(desc=f"caching the backbone's outputs for {name}"):
                split, skipped[name] = check_audio(split, recipe.bad_audio, name, num_proc=recipe.num_proc)
                split = cache_backbone_outputs(split, model, adapter, num_proc=recipe.num_proc)
        split = prepare_task(split, task, apply_default_filter=recipe.apply_default_filter, filters=recipe.filters,
                             stroke_labels=bool(recipe.aux_strokes))
        limit = recipe.max_train_samples if name == "train" else recipe.max_eval_samples
        if limit is not None and len(split) > limit:
            split = split.select(range(limit))
        if recipe.cache != "backbone":
            with args.main_process_first(desc=f"checking the audio of {name}"):
                split, skipped[name] = check_audio(split, recipe.bad_audio, name, num_proc=recipe.num_proc)
        if len(split) == 0:
            raise SousaDataError(f"split {name!r} of {source!r} is empty after the filters; loosen them")
        prepared[name] = split
    return prepared, {name: ids for name, ids in skipped.items() if ids}


def run(recipe: Recipe, training: dict | None = None, callbacks: list[TrainerCallback] | None = None) -> dict:
    """Train as the recipe says, then evaluate the best model on the test split; returns `results.json`.

    Every value is checked, and the output folder and the push target with it, before any data is read or a
    model built. A folder holding the finished model of this very recipe is not trained again: its results
    are returned (and pushed, if the recipe pushes).
    """
    training = dict(training or {})
    check_recipe(recipe)
    check_training_values(training)
    task = get_task(recipe.task)
    # In memory only: TrainingArguments are pickled into every checkpoint (training_args.bin).
    hub_token = training.pop("hub_token", None)
    args = training_arguments(recipe, task, training)
    check_output_dir(args.output_dir)
    repo_id = None
    if args.push_to_hub:  # before hours of training, not after
        check_hub_strategy(args.hub_strategy)
        repo_id = check_push_target(args.output_dir, args.hub_model_id, token=hub_token,
                                    exist_ok=recipe.hub_exist_ok)
    results = finished_run(recipe, training, args.output_dir)
    if results is not None:
        logger.warning("%s already holds the finished model of this recipe: nothing to train", args.output_dir)
        if args.process_index == 0:
            print(format_metrics_table(results))
            if args.push_to_hub:
                push_model(args.output_dir, repo_id, exist_ok=True, private=args.hub_private_repo, token=hub_token)
        return results
    checkpoint = resume_checkpoint(recipe, args.output_dir)
    set_seed(args.seed)
    rhythm_patterns = None
    if recipe.rhythm_patterns:  # before the model: they add statistics, and so inputs, to its head
        with args.main_process_first(desc="learning the rhythm patterns"):
            rhythm_patterns = fit_rhythm_patterns(load_sousa(data_source(recipe), "audio", "train", strokes=True))
        logger.info("%d rhythm patterns learned from the training split's stroke labels",
                    len(rhythm_patterns["cycle_beats"]))
    model, adapter = build_model(
        task.name, recipe.backbone, backbone_config=recipe.backbone_config, length=LengthPolicy(**recipe.length),
        pooling=recipe.pooling, classifier_dropout=recipe.classifier_dropout, regression_loss=recipe.regression_loss,
        huber_delta=recipe.huber_delta, target_weights=recipe.target_weights,
        feature_extractor=recipe.feature_extractor, feature_extractor_config=recipe.feature_extractor_config,
        temporal_blocks=recipe.temporal_blocks, temporal_gru=recipe.temporal_gru,
        aux_strokes=recipe.aux_strokes, use_tempo=recipe.use_tempo,
        stroke_onset_weight=recipe.stroke_onset_weight, stroke_cluster_ms=recipe.stroke_cluster_ms,
        statistics_head=recipe.statistics_head, rhythm_patterns=rhythm_patterns,
        pattern_evidence=recipe.pattern_evidence, pattern_matches=recipe.pattern_matches,
        boosted_trees=BoostedTreesSettings(**recipe.boosted_trees).to_dict()
        if recipe.statistics_head == "boosted_trees" else None)
    if recipe.strokes_from is not None:
        load_stroke_front_end(model, recipe.strokes_from, adapter.feature_extractor)
    if args.process_index == 0 and not holds_finished_model(args.output_dir):
        # First, so that a crashed run's checkpoints say which recipe made them. A folder with a finished
        # model got here only under that model's own recipe, whose record stays as it is.
        dump_recipe(recipe, training, Path(args.output_dir) / "recipe.yaml")
    splits, skipped = load_splits(recipe, task, args, model, adapter)
    model = apply_training_mode(model, recipe.training_mode, LoraSettings(**recipe.lora))
    weights = None
    if task.kind == "classification" and recipe.class_weights:
        weights = class_weights(splits["train"], task, on_missing="warn")
    input_cache = None if recipe.cache == "backbone" else recipe.cache  # the backbone cache is made above
    with args.main_process_first(desc="caching model inputs"):
        train = prepare_inputs(splits["train"], adapter, train=True, cache=input_cache, num_proc=recipe.num_proc,
                               seed=args.seed, augmentation=WaveformAugmentation(**recipe.augmentation))
        evaluation = prepare_inputs(splits[recipe.eval_split], adapter, cache=input_cache, num_proc=recipe.num_proc)
    # Trees are fitted, not trained: no gradient steps, nothing to resume.
    fitted_trees = (fit_statistics_trees(model, splits["train"], splits[recipe.eval_split], task, weights)
                    if model_config(model).statistics_head == "boosted_trees" else None)
    if model_config(model).pooling in STANDARDISED_POOLINGS and checkpoint is None and fitted_trees is None:
        fit_statistics_norm(model, train, SousaCollator(adapter), args.per_device_eval_batch_size)
    callbacks = list(callbacks or [])
    if recipe.early_stopping_patience is not None:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=recipe.early_stopping_patience))
    trainer = SousaTrainer(model=model, args=args, train_dataset=train, eval_dataset=evaluation,
                           data_collator=SousaCollator(adapter),
                           compute_metrics=SousaMetrics(task, frame_seconds=model_config(model).frame_seconds),
                           processing_class=adapter.feature_extractor, class_weights=weights, callbacks=callbacks,
                           hub_token=hub_token)
    if fitted_trees is None:
        if checkpoint:
            logger.warning("resuming from %s", checkpoint)
        trainer.train(resume_from_checkpoint=checkpoint)

    final = merge_lora(trainer.model)
    if task.kind == "strokes":  # peak picking tuned on validation before the model is saved and tested
        model_config(final).stroke_threshold = tune_stroke_threshold(trainer, evaluation)
    if trainer.is_world_process_zero():
        final.save_pretrained(args.output_dir)
        adapter.save_pretrained(args.output_dir)
    trainer.model = final
    extra = {"backbone": recipe.backbone, "data": recipe.data or "synthetic",
             "data_origin": data_origin(recipe.data) if recipe.data is not None else "synthetic"}
    if task.kind == "strokes":
        extra["stroke_threshold"] = model_config(final).stroke_threshold
    if fitted_trees is not None:  # no training log to read them from
        extra["boosted_trees_iterations"] = fitted_trees
        extra["validation_metrics"] = trainer.evaluate()
    if skipped:
        extra["skipped_bad_audio"] = {name: {"count": len(ids), "sample_ids": ids} for name, ids in skipped.items()}
    results = evaluate_split(trainer, splits[recipe.test_split], adapter, task, args.output_dir, recipe.test_split,
                             extra=extra)
    if trainer.is_world_process_zero():
        print(format_metrics_table(results))
    if args.push_to_hub:
        trainer.push_to_hub()
    return results


def main(argv: list[str] | None = None) -> None:
    """`python -m sousa_hf.train RECIPE [--set KEY=VALUE ...]`, the entry point `accelerate launch -m` runs."""
    from .cli import main as cli_main

    raise SystemExit(cli_main(["train", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    main()
