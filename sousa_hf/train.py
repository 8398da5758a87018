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

import torch
from transformers import EarlyStoppingCallback, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from .adapters import LengthPolicy
from .adapters.collator import SousaCollator
from .adapters.preprocessing import prepare_inputs
from .backbones import build_model
from .data.errors import SousaDataError
from .data.loading import load_sousa
from .data.synthetic import make_synthetic_sousa
from .data.tasks import SousaTask, class_weights, get_task, prepare_task
from .evaluation import evaluate_split
from .hub import check_push_target
from .metrics import SousaMetrics
from .recipe import Recipe, changed_identity_keys, check_recipe, dump_recipe, read_saved_recipe
from .report import format_metrics_table
from .trainer import SousaTrainer
from .training_modes import LoraSettings, apply_training_mode, merge_lora

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
        label_names=["labels", "labels_mask"] if task.kind == "multitask" else ["labels"],
    )
    try:
        return TrainingArguments(**{**defaults, **values})
    except (TypeError, ValueError) as err:  # a TrainingArguments value of the wrong type or out of its choices
        raise SousaDataError(f"recipe: a TrainingArguments value is refused: {err}") from err


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


def load_splits(recipe: Recipe, task: SousaTask, args: TrainingArguments) -> dict:
    """The recipe's data, filtered, with the task's labels: `{split: Dataset}`."""
    with args.main_process_first(desc="preparing SOUSA"):
        source = recipe.data if recipe.data is not None else synthetic_source(recipe)
        splits = load_sousa(source, "audio")
    wanted = {"train", recipe.eval_split, recipe.test_split}
    missing = wanted - set(splits)
    if missing:
        raise SousaDataError(f"{source!r} has no split(s) {sorted(missing)}; it has {sorted(splits)}")
    prepared = {}
    for name in sorted(wanted):
        split = prepare_task(splits[name], task, apply_default_filter=recipe.apply_default_filter,
                             filters=recipe.filters)
        limit = recipe.max_train_samples if name == "train" else recipe.max_eval_samples
        if limit is not None and len(split) > limit:
            split = split.select(range(limit))
        if len(split) == 0:
            raise SousaDataError(f"split {name!r} of {source!r} is empty after the filters; loosen them")
        prepared[name] = split
    return prepared


def resume_checkpoint(recipe: Recipe, output_dir: str) -> str | None:
    """The last checkpoint in `output_dir` to resume from, if the recipe resumes and there is one.

    A checkpoint of a run whose `recipe.yaml` differs in what the model or data is (task, backbone,
    data, ...) is refused: Trainer would load its weights into a different model without a word.
    """
    checkpoint = get_last_checkpoint(output_dir) if os.path.isdir(output_dir) else None
    if checkpoint is None:
        return None
    if not recipe.resume:
        # Trainer would keep the old run's higher-numbered checkpoints and rotate the new run's away.
        raise SousaDataError(f"{output_dir} holds checkpoints of an earlier run and the recipe says resume: false; "
                             "train into another output_dir (--set output_dir=...) or delete them first")
    earlier = read_saved_recipe(output_dir)
    if earlier:
        changed = changed_identity_keys(recipe, earlier)
        if changed:
            raise SousaDataError(
                f"{output_dir} holds checkpoints of a run whose recipe differs in {', '.join(changed)}; train into "
                "another output_dir (--set output_dir=...), or delete them to start over there")
    return checkpoint


def run(recipe: Recipe, training: dict | None = None, callbacks: list[TrainerCallback] | None = None) -> dict:
    """Train as the recipe says, then evaluate the best model on the test split; returns `results.json`."""
    task = get_task(recipe.task)
    args = training_arguments(recipe, task, training or {})
    check_recipe(recipe)
    if args.push_to_hub:  # before hours of training, not after
        check_push_target(args.output_dir, args.hub_model_id, token=args.hub_token, exist_ok=recipe.hub_exist_ok)
    checkpoint = resume_checkpoint(recipe, args.output_dir)
    set_seed(args.seed)
    model, adapter = build_model(
        task.name, recipe.backbone, backbone_config=recipe.backbone_config, length=LengthPolicy(**recipe.length),
        pooling=recipe.pooling, classifier_dropout=recipe.classifier_dropout, regression_loss=recipe.regression_loss,
        huber_delta=recipe.huber_delta, target_weights=recipe.target_weights,
        feature_extractor=recipe.feature_extractor)
    if args.process_index == 0:  # first, so that a crashed run's checkpoints say which recipe made them
        dump_recipe(recipe, training or {}, Path(args.output_dir) / "recipe.yaml")
    splits = load_splits(recipe, task, args)
    model = apply_training_mode(model, recipe.training_mode, LoraSettings(**recipe.lora))
    weights = None
    if task.kind == "classification" and recipe.class_weights:
        weights = class_weights(splits["train"], task, on_missing="warn")
    with args.main_process_first(desc="caching model inputs"):
        train = prepare_inputs(splits["train"], adapter, train=True, cache=recipe.cache, num_proc=recipe.num_proc,
                               seed=args.seed)
        evaluation = prepare_inputs(splits[recipe.eval_split], adapter, cache=recipe.cache, num_proc=recipe.num_proc)
    callbacks = list(callbacks or [])
    if recipe.early_stopping_patience is not None:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=recipe.early_stopping_patience))
    trainer = SousaTrainer(model=model, args=args, train_dataset=train, eval_dataset=evaluation,
                           data_collator=SousaCollator(adapter), compute_metrics=SousaMetrics(task),
                           processing_class=adapter.feature_extractor, class_weights=weights, callbacks=callbacks)
    if checkpoint:
        logger.warning("resuming from %s", checkpoint)
    trainer.train(resume_from_checkpoint=checkpoint)

    final = merge_lora(trainer.model)
    if trainer.is_world_process_zero():
        final.save_pretrained(args.output_dir)
        adapter.save_pretrained(args.output_dir)
    trainer.model = final
    results = evaluate_split(trainer, splits[recipe.test_split], adapter, task, args.output_dir, recipe.test_split,
                             extra={"backbone": recipe.backbone, "data": recipe.data or "synthetic"})
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
