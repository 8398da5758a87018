"""Evaluating a model on a SOUSA split and writing the report: after training, or for any saved model.

    sousa-hf evaluate runs/quickstart --data ../shared/sousa-sample --split test
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, AutoModel, TrainingArguments

from .adapters import AudioAdapter, get_adapter
from .adapters.collator import SousaCollator
from .adapters.preprocessing import prepare_inputs
from .backbone_cache import cache_backbone_outputs, cache_kind
from .data.audio_check import check_audio
from .data.errors import SousaDataError
from .data.loading import load_sousa
from .data.tasks import SousaTask, get_task, prepare_task
from .hub import check_model_source
from .metrics import SLICE_COLUMNS, unpack_predictions, unpack_strokes
from .modeling_sousa import is_task_model
from .recipe import read_saved_recipe
from .report import write_report, write_stroke_report
from .stroke_transcription import best_threshold
from .trainer import SousaTrainer, task_label_names

logger = logging.getLogger(__name__)


def evaluate_split(trainer: SousaTrainer, split, adapter: AudioAdapter, task: SousaTask, output_dir: str | Path,
                   name: str, extra: dict | None = None) -> dict:
    """Predict on a split (after `prepare_task`) and write its report on the main process.

    Returns:
        What `results.json` holds (an empty dict on other processes).
    """
    output = trainer.predict(prepare_inputs(split, adapter), metric_key_prefix=name)
    columns = {column: split[column] for column in SLICE_COLUMNS.values() if column in split.column_names}
    if not trainer.is_world_process_zero():
        return {}
    if task.kind == "strokes":
        config = trainer.accelerator.unwrap_model(trainer.model).config
        references, estimates = unpack_strokes(output.predictions, output.label_ids, config.frame_seconds,
                                               config.stroke_threshold)
        return write_stroke_report(output_dir, name, references, estimates, columns, extra)
    predictions, labels, labels_mask = unpack_predictions(task, output.predictions, output.label_ids)
    return write_report(output_dir, task, name, predictions, labels, labels_mask, columns, extra)


def tune_stroke_threshold(trainer: SousaTrainer, evaluation) -> float:
    """Set the trained model's `config.stroke_threshold` to the onset threshold with the best onset F1 on
    `evaluation` (the validation split's model inputs) and return it: peak picking tuned on held-out clips, as
    onset detectors are."""
    output = trainer.predict(evaluation, metric_key_prefix="threshold")
    config = trainer.accelerator.unwrap_model(trainer.model).config
    references, _ = unpack_strokes(output.predictions, output.label_ids, config.frame_seconds)
    logits, frame_mask = output.predictions[0], output.predictions[1]
    clips = [logits[i][: int((np.asarray(frame_mask[i]) == 1).sum())] for i in range(len(logits))]
    threshold, f1 = best_threshold(clips, references, config.frame_seconds)
    logger.info("stroke onset threshold %.2f (mean onset F1 at 10 and 25 ms on validation: %.3f)", threshold, f1)
    config.stroke_threshold = threshold
    return threshold


def evaluate_saved_model(model_dir: str, data: str, split: str = "test", output_dir: str | None = None,
                         batch_size: int = 16, apply_default_filter: bool | None = None, bad_audio: str = "error"
                         ) -> dict:
    """Write the report of a saved SOUSA model (a training run's output folder or a Hub id) on a split.

    Args:
        model_dir: folder or Hub id holding the model and its feature extractor.
        data: any `load_sousa` source.
        split: the split to evaluate.
        output_dir: where `results.json` and `metrics/` go (default: `<model_dir>/eval-<split>`).
        batch_size: clips per forward pass.
        apply_default_filter: apply the task's own filter (e.g. `tier_confidence > 0.5` for skill4);
            `None` does as the model's run did.
        bad_audio: a clip whose audio cannot be decoded stops the evaluation (`error`) or is left out (`skip`,
            listed in `results.json`).

    The run's `recipe.yaml`, when saved with the model, supplies its `filters` (presets, families, ...)
    and `apply_default_filter`, so that the split is the one the run reported on; a run's quick-check
    `max_eval_samples` limit is not applied: the whole split is evaluated.
    """
    model, task, adapter, dataset, skipped = _saved_model_and_split(model_dir, data, split, batch_size,
                                                                    apply_default_filter, bad_audio)
    extra = {"model": model_dir, "data": data}
    if skipped:
        extra["skipped_bad_audio"] = {split: {"count": len(skipped), "sample_ids": skipped}}
    output_dir = output_dir or str(Path(model_dir) / f"eval-{split}")
    with tempfile.TemporaryDirectory() as scratch:
        trainer = _evaluation_trainer(model, task, adapter, batch_size, scratch)
        return evaluate_split(trainer, dataset, adapter, task, output_dir, split, extra=extra)


def predict_saved_model(model_dir: str, data: str, split: str = "test", batch_size: int = 16
                        ) -> tuple[SousaTask, np.ndarray, np.ndarray, np.ndarray | None]:
    """A saved clip model's outputs on a split, prepared as `evaluate_saved_model` prepares it: `(task, logits or
    0-1 predictions, labels, labels_mask or None)`, in the split's order, for `metrics.task_metrics`."""
    if getattr(AutoConfig.from_pretrained(model_dir), "task", None) == "strokes":
        raise SousaDataError(f"{model_dir!r} transcribes strokes; predict_saved_model gives a clip model's outputs")
    model, task, adapter, dataset, _ = _saved_model_and_split(model_dir, data, split, batch_size, None, "error")
    with tempfile.TemporaryDirectory() as scratch:
        trainer = _evaluation_trainer(model, task, adapter, batch_size, scratch)
        output = trainer.predict(prepare_inputs(dataset, adapter))
    return (task, *unpack_predictions(task, output.predictions, output.label_ids))


def _saved_model_and_split(model_dir: str, data: str, split: str, batch_size: int, apply_default_filter: bool | None,
                           bad_audio: str) -> tuple:
    """`(model, task, adapter, prepared split, skipped sample ids)` for evaluating a saved model on a split."""
    if batch_size < 1:
        raise SousaDataError(f"batch_size must be at least 1, got {batch_size}")
    check_model_source(model_dir)
    model = AutoModel.from_pretrained(model_dir)
    if not is_task_model(model) or not getattr(model.config, "task", None):
        raise SousaDataError(f"{model_dir!r} is not a SOUSA task model (no task head in its config.json)")
    task = get_task(model.config.task)
    adapter = get_adapter(model_dir)
    recipe = read_saved_recipe(model_dir)
    if apply_default_filter is None:
        apply_default_filter = recipe.get("apply_default_filter", True)
    if recipe.get("filters"):
        logger.info("applying the run's filters from its recipe.yaml: %s", recipe["filters"])
    split_data = load_sousa(data, "audio", split=split, strokes=task.kind == "strokes")
    whole_takes = cache_kind(model) == "stroke_statistics"  # each take judged whole, as in training (its cache)
    if whole_takes:
        split_data, skipped = check_audio(split_data, bad_audio, split)
        split_data = cache_backbone_outputs(split_data, model, adapter)
    dataset = prepare_task(split_data, task, apply_default_filter=apply_default_filter, filters=recipe.get("filters"))
    if not whole_takes:
        dataset, skipped = check_audio(dataset, bad_audio, split)
    if len(dataset) == 0:
        raise SousaDataError(f"split {split!r} of {data!r} has no clips left to evaluate after the filters")
    return model, task, adapter, dataset, skipped


def _evaluation_trainer(model, task: SousaTask, adapter: AudioAdapter, batch_size: int, scratch: str) -> SousaTrainer:
    args = TrainingArguments(output_dir=scratch, per_device_eval_batch_size=batch_size, report_to="none",
                             remove_unused_columns=False, dataloader_pin_memory=torch.cuda.is_available(),
                             label_names=task_label_names(task.kind))
    return SousaTrainer(model=model, args=args, data_collator=SousaCollator(adapter),
                        processing_class=adapter.feature_extractor)
