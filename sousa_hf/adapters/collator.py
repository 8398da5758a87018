"""`SousaCollator`: pads a batch of adapter outputs dynamically and stacks every task's labels."""

from __future__ import annotations

import numpy as np
import torch

from .base import AudioAdapter
from .preprocessing import LABEL_COLUMNS, STROKE_COLUMNS


class SousaCollator:
    """A `data_collator` for `Trainer`: model inputs padded by the adapter, labels as tensors.

    Classification labels become int64, regression and multi-task labels float32, and the
    multi-task `labels_mask` (False where a target is null) bool.
    """

    def __init__(self, adapter: AudioAdapter):
        self.adapter = adapter

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        if any(name.startswith("cached_") for name in features[0]):
            from ..backbone_cache import pad_cached_inputs  # a frozen backbone's outputs, cached

            batch = pad_cached_inputs(features)
        else:
            # Only the adapter's outputs: a streamed dataset still carries its other columns.
            names = self.adapter.output_names
            batch = self.adapter.pad([{k: f[k] for k in names} for f in features])
        if "attention_mask" in batch:  # int32 from some extractors, int64 back from an Arrow cache
            batch["attention_mask"] = batch["attention_mask"].long()
        if "stroke_onsets" in features[0]:
            batch.update(pad_strokes(features))
        if "tempo_bpm" in features[0]:
            batch["tempo_bpm"] = torch.as_tensor([float(f["tempo_bpm"]) for f in features], dtype=torch.float32)
        for column in LABEL_COLUMNS:
            if column in features[0]:
                values = np.asarray([f[column] for f in features])
                if column == "labels_mask":
                    batch[column] = torch.as_tensor(values, dtype=torch.bool)
                elif np.issubdtype(values.dtype, np.integer):
                    batch[column] = torch.as_tensor(values, dtype=torch.long)
                else:
                    batch[column] = torch.as_tensor(values, dtype=torch.float32)
        return batch


def pad_strokes(features: list[dict]) -> dict[str, torch.Tensor]:
    """Each clip's stroke labels as `(batch, most strokes)` tensors: onsets in ms (-1 past a clip's last stroke),
    velocities 0-1 and grace flags (0 there)."""
    longest = max(1, max(len(f["stroke_onsets"]) for f in features))
    batch = {"stroke_onsets": torch.full((len(features), longest), -1.0),
             "stroke_velocities": torch.zeros(len(features), longest),
             "stroke_is_grace": torch.zeros(len(features), longest)}
    for i, f in enumerate(features):
        for column in STROKE_COLUMNS:
            values = torch.as_tensor(np.asarray(f[column], dtype=np.float32))
            batch[column][i, : len(values)] = values
    return batch
