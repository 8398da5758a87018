"""Whisper encoder: log-mel `input_features` at 16 kHz in a fixed window.

The pretrained encoder insists on 3000 frames (30 s): a 5 s SOUSA clip is then over 80% padding.
A policy `max_seconds` below 30 shrinks the window to `ceil(max_seconds)` seconds (100 frames per
second); the model must then be built with `max_source_positions = 50 * seconds` (the model issue
slices the position embeddings to match).
"""

from __future__ import annotations

import math

import numpy as np
from transformers import BatchFeature, WhisperFeatureExtractor

from .base import AudioAdapter


class WhisperAdapter(AudioAdapter):
    name = "whisper"
    feature_extractor_class = WhisperFeatureExtractor
    default_max_seconds = 30.0

    def configure_extractor(self) -> None:
        extractor = self.feature_extractor
        seconds = math.ceil(self.max_seconds)
        if seconds != extractor.chunk_length:  # the three attributes WhisperFeatureExtractor derives
            extractor.chunk_length = seconds
            extractor.n_samples = seconds * extractor.sampling_rate
            extractor.nb_max_frames = extractor.n_samples // extractor.hop_length

    @property
    def num_frames(self) -> int:
        return int(self.feature_extractor.nb_max_frames)

    def extract(self, arrays: list[np.ndarray], return_tensors: str | None = "pt", train: bool = False) -> BatchFeature:
        # One call per batch: the extractor computes the STFT of the whole batch with torch.
        return self.feature_extractor(arrays, sampling_rate=self.sampling_rate, padding="max_length",
                                      truncation=True, return_attention_mask=True, return_tensors=return_tensors)
