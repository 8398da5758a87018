"""Feeding a SOUSA dataset through an adapter: on the fly, or cached as Arrow and reused by fingerprint.

Both paths give the same tensors for the same (deterministic) crop:
- on the fly: `Dataset.with_transform` (or a lazy `map` when streaming) decodes, resamples and
  extracts at access time; training crops are random per access.
- `cache="features"`: `Dataset.map` stores the model inputs themselves (evaluation crop); epochs
  and later runs read them back from the Arrow cache, found by the dataset's fingerprint.
- `cache="waveform"`: stores the whole clip resampled to the backbone's rate as int16 bytes (a third of
  float32 at 44.1 kHz, less again at 16 kHz) and extracts on access, so training keeps random crops.
"""

from __future__ import annotations

import hashlib
import logging
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from datasets import Array2D, Array3D, Dataset, DatasetDict, Features, IterableDataset, IterableDatasetDict, List, Value

from ..data.audio import decode_audio
from ..data.errors import SousaDataError
from .augmentation import WaveformAugmentation
from .base import AudioAdapter

LABEL_COLUMNS = ("labels", "labels_mask")
# The stroke head's labels (times in ms from the clip's start: shifted here by each clip's crop).
STROKE_COLUMNS = ("stroke_onsets", "stroke_velocities", "stroke_is_grace")
# What else a model may take beside its audio: the metronome tempo (`use_tempo` models).
PASSED_COLUMNS = (*LABEL_COLUMNS, *STROKE_COLUMNS, "tempo_bpm")
CACHES = ("features", "waveform")
_INT16_SCALE = 32767.0
logger = logging.getLogger(__name__)
_IMPORTING_PID = os.getpid()  # a forked `map` worker inherits it and has another pid


class ModelInputs:
    """The batched function both paths run: SOUSA rows (decoded or stored audio) -> model inputs + labels."""

    def __init__(self, adapter: AudioAdapter, train: bool, seed: int = 0, source: str = "audio",
                 augmentation: WaveformAugmentation | None = None):
        self.adapter = adapter
        self.train = train
        self.augmentation = WaveformAugmentation.for_split(augmentation, train)
        self.source = source  # "audio" (a SOUSA audio cell) or "waveform" (this module's int16 cache)
        self.generator = np.random.default_rng(seed)
        self.code = preprocessing_code_digest()  # part of the cache fingerprint: new code, new cache

    def __call__(self, batch: dict) -> dict:
        _single_threaded_in_workers()
        prepared, speeds = [], []
        for array, rate in self._clips(batch):
            speed = 1.0
            if self.augmentation is not None:  # the whole clip: its crop then keeps 4 s of the new tempo
                array, speed = self.augmentation.retime(array, rate, self.generator)
            clip, start = self.adapter.prepare(array, rate, train=self.train, generator=self.generator,
                                               return_start=True)
            if self.augmentation is not None:
                clip = self.augmentation.colour(clip, self.adapter.sampling_rate, self.generator)
            prepared.append((clip, start))
            speeds.append(speed)
        out: dict[str, list] = dict(self.adapter.extract_each([array for array, _ in prepared], train=self.train))
        for column in PASSED_COLUMNS:
            if column in batch:
                out[column] = batch[column]
        if "stroke_onsets" in batch:
            kept = [(start, array.size / self.adapter.sampling_rate) for array, start in prepared]
            out.update(_strokes_in_crops(batch, kept, speeds))
        return out

    def _clips(self, batch: dict) -> list[tuple[np.ndarray, int]]:
        if self.source == "waveform":
            return [(np.frombuffer(w, dtype="<i2").astype(np.float32) / _INT16_SCALE, self.adapter.sampling_rate)
                    for w in batch["waveform"]]
        if "audio" not in batch:
            raise SousaDataError("the dataset has no 'audio' column; load the 'audio' config")
        ids = batch.get("sample_id") or [None] * len(batch["audio"])
        return [decode_audio(cell, sample_id) for cell, sample_id in zip(batch["audio"], ids)]


def _strokes_in_crops(batch: dict, kept: list[tuple[float, float]], speeds: list[float]) -> dict[str, list]:
    """The stroke labels of the part of each clip that was kept (`(start, seconds)`, of the clip played at
    `speeds`), timed from its start."""
    out = {column: [] for column in STROKE_COLUMNS}
    for i, ((start, seconds), speed) in enumerate(zip(kept, speeds)):
        onsets = np.asarray(batch["stroke_onsets"][i], dtype=np.float64) / speed - 1000.0 * start
        inside = (onsets >= 0) & (onsets < 1000.0 * seconds)
        out["stroke_onsets"].append(onsets[inside].tolist())
        for column in STROKE_COLUMNS[1:]:
            out[column].append(np.asarray(batch[column][i])[inside].tolist())
    return out


def prepare_inputs(dataset, adapter: AudioAdapter, *, train: bool = False, cache: str | None = None,
                   num_proc: int | None = None, seed: int = 0, augmentation: WaveformAugmentation | None = None):
    """Turn SOUSA rows (after `prepare_task`) into an adapter's model inputs plus `labels`/`labels_mask`.

    Args:
        dataset: a `Dataset`, `IterableDataset` or a dict of them.
        adapter: from `get_adapter`.
        train: use the policy's training crop (random by default) rather than its evaluation crop.
        cache: `None` (on the fly), `"features"` or `"waveform"` (see the module docstring);
            caching needs a `Dataset` (not streaming).
        num_proc: processes for the cache's `map`.
        seed: seeds the training crops (and the augmentation).
        augmentation: random changes to each training clip (`train=True` only), made on access: the
            `waveform` cache or none, not `features`.
    """
    if isinstance(dataset, (DatasetDict, IterableDatasetDict)):
        return type(dataset)({name: prepare_inputs(split, adapter, train=train, cache=cache, num_proc=num_proc,
                                                   seed=seed, augmentation=augmentation)
                              for name, split in dataset.items()})
    if cache is not None and cache not in CACHES:
        raise SousaDataError(f"unknown cache {cache!r}; expected None (on the fly), 'features' or 'waveform' "
                             "('backbone' caches are made by sousa_hf.backbone_cache.cache_backbone_outputs)")
    augmentation = WaveformAugmentation.for_split(augmentation, train)
    if augmentation is not None and cache == "features":
        raise SousaDataError("augmentation changes each training clip on access, and cache='features' stores one "
                             "fixed version of each; use cache='waveform' (or none) with augmentation")
    if isinstance(dataset, IterableDataset):
        if cache is not None:
            raise SousaDataError("a streamed dataset cannot be cached; use cache=None (on the fly) when streaming")
        # A decoded stream has no known columns to drop; the collator keeps just what it needs.
        drop = [c for c in (dataset.column_names or []) if c not in PASSED_COLUMNS]
        return dataset.map(ModelInputs(adapter, train, seed, augmentation=augmentation), batched=True, batch_size=8,
                           remove_columns=drop or None)

    cached = [c for c in ("cached_layer_stats", "cached_hidden_states", "cached_stroke_statistics")
              if c in dataset.column_names]
    if cached:  # a frozen backbone's outputs (sousa_hf.backbone_cache): read as they are
        if augmentation is not None:
            raise SousaDataError("augmentation changes the audio, and these rows hold a frozen backbone's outputs "
                                 "computed once; leave augmentation out with cache='backbone'")
        passed = [c for c in PASSED_COLUMNS if c in dataset.column_names]
        return dataset.with_format("numpy", columns=[*cached, *passed])
    drop = [c for c in dataset.column_names if c not in PASSED_COLUMNS]
    # Format only what the inputs are made from: turning SOUSA's 40 other columns into Python
    # objects on every access costs as much as resampling.
    needed = [c for c in ("audio", "sample_id", *PASSED_COLUMNS) if c in dataset.column_names]
    if cache is None:
        return dataset.with_transform(ModelInputs(adapter, train, seed, augmentation=augmentation), columns=needed)
    if cache == "features":
        # The evaluation crop whatever `train` says: a cache holds one crop of each clip.
        if train and adapter.max_seconds is not None and adapter.length.train_crop != adapter.length.eval_crop:
            logger.warning("cache='features' stores each clip's %s crop, so training sees no random crops; use "
                           "cache='waveform' to keep them", adapter.length.eval_crop)
        features = _cache_features(adapter, dataset)
        return dataset.map(ModelInputs(adapter, train=False), batched=True, batch_size=8, num_proc=num_proc,
                           remove_columns=drop, features=features,
                           desc=f"Caching {adapter.name} features").with_format("numpy")
    waveforms = dataset.map(_Int16Waveform(adapter), batched=True, batch_size=8, num_proc=num_proc,
                            remove_columns=drop, desc=f"Caching {adapter.sampling_rate} Hz int16 audio")
    return waveforms.with_transform(ModelInputs(adapter, train, seed, source="waveform", augmentation=augmentation))



def _cache_features(adapter: AudioAdapter, dataset: Dataset) -> Features:
    """Arrow types for the cached inputs: fixed-shape arrays (`Array2D`/`Array3D`, with a variable
    first axis where clip length changes it) read back into numpy far faster than nested lists."""
    short, long = (adapter([np.zeros(int(s * adapter.sampling_rate) + 1, np.float32)], adapter.sampling_rate,
                           padding=False, return_tensors=None) for s in (1.0, 2.0))
    features = Features({c: dataset.features[c] for c in PASSED_COLUMNS if c in dataset.column_names})
    for key in short:
        a, b = np.asarray(short[key][0]), np.asarray(long[key][0])
        dtype = str(a.dtype)
        if a.ndim == 1:
            features[key] = List(Value(dtype))
        else:
            shape = (None if a.shape[0] != b.shape[0] else a.shape[0], *a.shape[1:])
            features[key] = (Array2D if a.ndim == 2 else Array3D)(shape=shape, dtype=dtype)
    return features


class _Int16Waveform:
    """The whole clip, downmixed and resampled to the adapter's rate, as int16."""

    def __init__(self, adapter: AudioAdapter):
        self.adapter = adapter
        self.code = preprocessing_code_digest()


    def __call__(self, batch: dict) -> dict:
        _single_threaded_in_workers()
        clips = ModelInputs(self.adapter, train=False)._clips(batch)
        out = {"waveform": []}
        for array, rate in clips:
            resampled = self.adapter.prepare(array, rate, crop=False)
            # Raw bytes, not a list of ints: `with_transform` hands a batch over as Python objects, and
            # turning a clip's samples into a list of ints and back costs more than the model's step.
            out["waveform"].append(np.clip(np.rint(resampled * _INT16_SCALE), -32768, 32767).astype("<i2").tobytes())
        for column in PASSED_COLUMNS:
            if column in batch:
                out[column] = batch[column]
        return out



@lru_cache(maxsize=1)
def preprocessing_code_digest() -> str:
    """A digest of the code that makes model inputs (the adapters and the CNN's extractor).

    `datasets` fingerprints a `map` function by pickling it, which records classes by name, not by
    their code: without this, features cached by an older version would be reused after an upgrade.
    """
    package = Path(__file__).resolve().parents[1]
    files = sorted([*package.joinpath("adapters").glob("*.py"), package / "feature_extraction_sousa.py",
                    package / "data" / "audio.py"])
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def _single_threaded_in_workers() -> None:
    """In a `map(num_proc=...)` worker, run torch on one thread.

    The workers are forked from a parent whose OpenMP thread pool torch has already started; the
    first multi-threaded op in a child then waits forever on threads that were not forked. One
    thread per worker is also what `num_proc` processes on `num_proc` cores want anyway.
    """
    if os.getpid() != _IMPORTING_PID and torch.get_num_threads() != 1:
        torch.set_num_threads(1)
