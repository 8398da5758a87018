"""`SousaTrainer`: a `transformers.Trainer` whose loss knows SOUSA's tasks.

The loss is the model head's own `task_loss` (one implementation), given the class weights of the
training split and the item counts of the whole accumulated batch: classification and regression
divide a batch's summed loss by the rows of all accumulation steps on all processes, multi-task by
each target's non-null rows there. A batch split over gradient accumulation steps or processes then
gives the same gradient as the same rows in one batch.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from transformers import Trainer

from .modeling_sousa import SousaPreTrainedModel


def task_label_names(task_kind: str) -> list[str]:
    """The batch keys a task's labels are in (Trainer's `label_names`)."""
    if task_kind == "strokes":
        return ["stroke_onsets", "stroke_velocities", "stroke_is_grace"]
    return ["labels", "labels_mask"] if task_kind == "multitask" else ["labels"]


class SousaTrainer(Trainer):
    """A `Trainer` for SOUSA models.

    Args:
        class_weights: one weight per class (e.g. `sousa_hf.class_weights(train, task)`), for
            classification; each row's cross-entropy is multiplied by its class's weight.
        *args, **kwargs: as for `Trainer`.
    """

    # `compute_loss` normalises by the accumulated batch's item counts itself.
    loss_is_scaled_for_ga = True

    def __init__(self, *args, class_weights: np.ndarray | torch.Tensor | list[float] | None = None,
                 hub_token: str | None = None, **kwargs):
        from .hub import check_hub_strategy

        training_args = kwargs.get("args", args[1] if len(args) > 1 else None)
        # The token lives here, never in TrainingArguments: Trainer pickles those into every checkpoint
        # (training_args.bin), which would put it on disk and, with a push, on the Hub.
        self.hub_token = hub_token
        if training_args is not None and training_args.hub_token:
            self.hub_token = self.hub_token or training_args.hub_token
            training_args.hub_token = None
        if training_args is not None and training_args.push_to_hub:
            check_hub_strategy(training_args.hub_strategy)
        super().__init__(*args, **kwargs)
        head = self._head(self.model)
        self.task_kind = head.config.task_kind
        if class_weights is not None:
            if self.task_kind != "classification":
                raise ValueError(f"class_weights apply to classification; this model's task is {self.task_kind}")
            class_weights = torch.as_tensor(np.asarray(class_weights), dtype=torch.float32)
            if class_weights.shape != (head.config.num_labels,):
                raise ValueError(f"class_weights has shape {tuple(class_weights.shape)}; expected "
                                 f"({head.config.num_labels},), one weight per label in id2label")
        self.class_weights = class_weights
        # Our compute_loss counts items itself (get_batch_samples); the base class must not also pass
        # `num_items_in_batch` into the model or rescale the loss.
        self.model_accepts_loss_kwargs = False
        if self.args.label_names is None:  # a PEFT wrapper hides the head's signature from Trainer
            self.label_names = task_label_names(self.task_kind)
        self._accumulated_rows = None

    def _per_accumulated_batch(self, batch_mean: torch.Tensor, rows: int, num_items_in_batch) -> torch.Tensor:
        """A loss averaged over this batch's rows, as its share of the mean over the whole accumulated batch."""
        if num_items_in_batch is None or self._accumulated_rows is None:
            return batch_mean
        return batch_mean * rows / self._accumulated_rows.to(batch_mean.device, batch_mean.dtype)

    @staticmethod
    def _head(model: torch.nn.Module) -> SousaPreTrainedModel:
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        if not hasattr(base, "task_loss") and not hasattr(base, "strokes"):
            raise TypeError("SousaTrainer trains SOUSA heads (built by sousa_hf.build_model), not "
                            f"{type(base).__name__}")
        return base

    def get_batch_samples(self, epoch_iterator: Iterator, num_batches: int, device: torch.device):
        batches, _ = super().get_batch_samples(epoch_iterator, num_batches, device)
        label = "stroke_onsets" if self.task_kind == "strokes" else "labels"
        if not batches or label not in batches[0]:
            return batches, None
        rows = torch.tensor(sum(batch[label].shape[0] for batch in batches), device=device)
        counts = sum(batch["labels_mask"].sum(dim=0) for batch in batches) if self.task_kind == "multitask" else rows
        counts = counts.to(device)
        if self.args.average_tokens_across_devices and self.args.world_size > 1:
            counts = self.accelerator.reduce(counts, reduction="sum")
            rows = self.accelerator.reduce(rows, reduction="sum")
        self._accumulated_rows = rows  # what a stroke loss (a mean per batch) is rescaled by
        return batches, counts

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        # The head computes its task's loss; the Trainer supplies class weights and the counts that
        # make it independent of how a batch is split. Stroke labels stay in the inputs: the model
        # turns them into frame targets at its own frame rate.
        inputs = dict(inputs)
        labels, labels_mask = inputs.pop("labels", None), inputs.pop("labels_mask", None)
        outputs = model(**inputs)
        head = self._head(self.accelerator.unwrap_model(model))
        if self.task_kind == "strokes":
            if outputs.get("loss") is None:
                raise ValueError("SousaTrainer needs stroke labels (stroke_onsets, ...) in every batch of a strokes "
                                 "model; prepare the dataset with sousa_hf.prepare_task(..., 'strokes')")
            loss = self._per_accumulated_batch(outputs["loss"], inputs["stroke_onsets"].shape[0], num_items_in_batch)
        else:
            if labels is None:
                raise ValueError(f"SousaTrainer needs 'labels' in every batch; got {sorted(inputs)} (prepare the "
                                 "dataset with sousa_hf.prepare_task)")
            prediction = outputs["logits"] if self.task_kind == "classification" else outputs["predictions"]
            loss = head.task_loss(prediction, labels, labels_mask, class_weights=self.class_weights,
                                  num_items=num_items_in_batch)
            if outputs.get("stroke_loss") is not None:  # aux_strokes: the stroke loss beside the task's
                stroke = self._per_accumulated_batch(outputs["stroke_loss"], labels.shape[0], num_items_in_batch)
                loss = loss + head.config.aux_strokes * stroke
        if num_items_in_batch is not None and self.args.average_tokens_across_devices and self.args.world_size > 1:
            # DDP averages gradients over processes; each process's share was divided by the global count.
            loss = loss * self.accelerator.num_processes
        outputs["loss"] = loss
        return (loss, outputs) if return_outputs else loss

    def init_hf_repo(self, token: str | None = None, private: bool | None = None) -> None:
        from .hub import hub_errors

        with hub_errors(self.args.hub_model_id or self.args.output_dir):
            super().init_hf_repo(token=token if token is not None else self.hub_token, private=private)

    def push_to_hub(self, commit_message: str | None = "End of training", blocking: bool = True,
                    token: str | None = None, revision: str | None = None, private: bool | None = None, **kwargs):
        """Upload `output_dir` as `sousa-hf push` does: weights, config, remote code, the card made from
        the run, the recipe and `results.json` (so `output_dir` must hold the final model and its report, as
        `sousa_hf.train.run` leaves it). Checkpoints and `training_args.bin` stay local; `revision` and the
        Trainer's card arguments do not apply."""
        from .hub import push_model

        if not self.is_world_process_zero():
            return None
        if self.hub_model_id is None:
            self.init_hf_repo(token=token, private=private)
        return push_model(self.args.output_dir, self.hub_model_id, exist_ok=True,
                          private=self.args.hub_private_repo if private is None else private,
                          token=token if token is not None else self.hub_token,
                          commit_message=commit_message or "End of training")
