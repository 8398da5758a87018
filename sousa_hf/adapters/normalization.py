"""Spectrogram normalisation statistics from SOUSA's training split, instead of AudioSet's.

AST's extractor standardises its filterbank with AudioSet's mean/std (-4.27, 4.57) and the suite's
CNN with placeholders; SOUSA's clips (snare strokes, rooms, silence between strokes) have their
own. `fit_normalization` measures them over the real frames of the training clips (padding left
out) and stores them in the adapter's feature extractor, so `save_pretrained` carries them.
"""

from __future__ import annotations

import numpy as np
from datasets import Dataset
from tqdm.auto import tqdm

from ..data.audio import decode_audio
from ..data.errors import SousaDataError
from .base import AudioAdapter

NORMALIZED_ADAPTERS = ("ast", "cnn")


def fit_normalization(adapter: AudioAdapter, train: Dataset, max_clips: int | None = None) -> tuple[float, float]:
    """Set the adapter's extractor `mean`/`std` to those of the training clips' features; returns them.

    Args:
        adapter: an `ast` or `cnn` adapter.
        train: the training split (`audio` config, decoded or not).
        max_clips: measure at most this many clips (evenly spaced over the split).
    """
    if adapter.name not in NORMALIZED_ADAPTERS:
        raise SousaDataError(f"the {adapter.name} adapter has no normalisation statistics to fit; "
                             f"expected one of {', '.join(NORMALIZED_ADAPTERS)}")
    if "audio" not in train.column_names:
        raise SousaDataError("normalisation statistics need the 'audio' config")
    indices = range(len(train)) if not max_clips or max_clips >= len(train) else \
        np.linspace(0, len(train) - 1, max_clips).round().astype(int)
    extractor = adapter.feature_extractor
    total = total_sq = count = 0.0
    previous = extractor.do_normalize
    extractor.do_normalize = False
    try:
        for index in tqdm(indices, desc=f"{adapter.name} normalisation statistics"):
            row = train[int(index)]
            array, rate = decode_audio(row["audio"], row.get("sample_id"))
            frames = _real_frames(adapter, adapter.prepare(array, rate))
            total += float(frames.sum())
            total_sq += float((frames.astype(np.float64) ** 2).sum())
            count += frames.size
    finally:
        extractor.do_normalize = previous
    if not count:
        raise SousaDataError("no training clip to measure")
    mean = total / count
    std = float(np.sqrt(max(total_sq / count - mean**2, 1e-12)))
    extractor.mean, extractor.std = float(mean), std
    return float(mean), std


def _real_frames(adapter: AudioAdapter, prepared: np.ndarray) -> np.ndarray:
    """The unnormalised feature values of one prepared clip, without padding frames."""
    features = adapter.extract([prepared], return_tensors="np")
    values = features["input_values" if adapter.name == "ast" else "input_features"][0]
    return values[features["attention_mask"][0].astype(bool)]
