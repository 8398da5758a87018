"""Feeding a SOUSA dataset through an adapter: on the fly, or cached as Arrow and reused by fingerprint.

Both paths give the same tensors for the same (deterministic) crop:
- on the fly: `Dataset.with_transform` (or a lazy `map` when streaming) decodes, resamples and
  extracts at access time; training crops are random per access.
- `cache="features"`: `Dataset.map` stores the model inputs themselves (evaluation crop); epochs
  and later runs read them back from the Arrow cache, found by the dataset's fingerprint.
- `cache="waveform"`: stores the whole clip resampled to the backbone's rate as int16 (a third of
  float32 at 44.1 kHz, less again at 16 kHz) and extracts on access, so training keeps random crops.
"""

from __future__ import annotations

import numpy as np
from datasets import DatasetDict, IterableDataset, IterableDatasetDict

from ..data.audio import decode_audio
from ..data.errors import SousaDataError
from .base import AudioAdapter

LABEL_COLUMNS = ("labels", "labels_mask")
CACHES = ("features", "waveform")
_INT16_SCALE = 32767.0


class ModelInputs:
    """The batched function both paths run: SOUSA rows (decoded or stored audio) -> model inputs + labels."""

    def __init__(self, adapter: AudioAdapter, train: bool, seed: int = 0, source: str = "audio"):
        self.adapter = adapter
        self.train = train
        self.source = source  # "audio" (a SOUSA audio cell) or "waveform" (this module's int16 cache)
        self.generator = np.random.default_rng(seed)

    def __call__(self, batch: dict) -> dict:
        clips = self._clips(batch)
        out: dict[str, list] = {}
        for array, rate in clips:
            inputs = self.adapter([array], rate, train=self.train, generator=self.generator, padding=False,
                                  return_tensors=None)
            for key, values in inputs.items():
                out.setdefault(key, []).append(values[0])
        for column in LABEL_COLUMNS:
            if column in batch:
                out[column] = batch[column]
        return out

    def _clips(self, batch: dict) -> list[tuple[np.ndarray, int]]:
        if self.source == "waveform":
            return [(np.asarray(w, dtype=np.float32) / _INT16_SCALE, self.adapter.sampling_rate)
                    for w in batch["waveform"]]
        if "audio" not in batch:
            raise SousaDataError("the dataset has no 'audio' column; load the 'audio' config")
        ids = batch.get("sample_id") or [None] * len(batch["audio"])
        return [decode_audio(cell, sample_id) for cell, sample_id in zip(batch["audio"], ids)]


def prepare_inputs(dataset, adapter: AudioAdapter, *, train: bool = False, cache: str | None = None,
                   num_proc: int | None = None, seed: int = 0):
    """Turn SOUSA rows (after `prepare_task`) into an adapter's model inputs plus `labels`/`labels_mask`.

    Args:
        dataset: a `Dataset`, `IterableDataset` or a dict of them.
        adapter: from `get_adapter`.
        train: use the policy's training crop (random by default) rather than its evaluation crop.
        cache: `None` (on the fly), `"features"` or `"waveform"` (see the module docstring);
            caching needs a `Dataset` (not streaming).
        num_proc: processes for the cache's `map`.
        seed: seeds the training crops.
    """
    if isinstance(dataset, (DatasetDict, IterableDatasetDict)):
        return type(dataset)({name: prepare_inputs(split, adapter, train=train, cache=cache, num_proc=num_proc,
                                                   seed=seed) for name, split in dataset.items()})
    if cache is not None and cache not in CACHES:
        raise SousaDataError(f"unknown cache {cache!r}; expected None (on the fly), 'features' or 'waveform'")
    if isinstance(dataset, IterableDataset):
        if cache is not None:
            raise SousaDataError("a streamed dataset cannot be cached; use cache=None (on the fly) when streaming")
        # A decoded stream has no known columns to drop; the collator keeps just what it needs.
        drop = [c for c in (dataset.column_names or []) if c not in LABEL_COLUMNS]
        return dataset.map(ModelInputs(adapter, train, seed), batched=True, batch_size=8, remove_columns=drop or None)

    drop = [c for c in dataset.column_names if c not in LABEL_COLUMNS]
    if cache is None:
        return dataset.with_transform(ModelInputs(adapter, train, seed))
    if cache == "features":
        # The evaluation crop whatever `train` says: a cache holds one crop of each clip.
        return dataset.map(ModelInputs(adapter, train=False), batched=True, batch_size=8, num_proc=num_proc,
                           remove_columns=drop, desc=f"Caching {adapter.name} features").with_format("numpy")
    waveforms = dataset.map(_Int16Waveform(adapter), batched=True, batch_size=8, num_proc=num_proc,
                            remove_columns=drop, desc=f"Caching {adapter.sampling_rate} Hz int16 audio")
    return waveforms.with_transform(ModelInputs(adapter, train, seed, source="waveform"))


class _Int16Waveform:
    """The whole clip, downmixed and resampled to the adapter's rate, as int16."""

    def __init__(self, adapter: AudioAdapter):
        self.adapter = adapter

    def __call__(self, batch: dict) -> dict:
        clips = ModelInputs(self.adapter, train=False)._clips(batch)
        out = {"waveform": []}
        for array, rate in clips:
            resampled = self.adapter.prepare(array, rate, crop=False)
            out["waveform"].append(np.clip(np.rint(resampled * _INT16_SCALE), -32768, 32767).astype(np.int16))
        for column in LABEL_COLUMNS:
            if column in batch:
                out[column] = batch[column]
        return out

