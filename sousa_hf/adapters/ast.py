"""Audio Spectrogram Transformer: 128-bin Kaldi filterbank frames (10 ms) at 16 kHz.

AST pads every clip to `max_length` frames (1024, about 10 s): for a 5 s clip half the patches
are padding and attention costs about 4x what the clip needs. A policy `max_seconds` sets
`max_length = 100 * max_seconds` (the model issue interpolates the position embeddings to match).
The extractor's normalisation `mean`/`std` default to AudioSet's; `sousa-hf adapters stats`
replaces them with SOUSA's.
"""

from __future__ import annotations

import numpy as np
from transformers import ASTFeatureExtractor, BatchFeature

from .base import AudioAdapter

FRAMES_PER_SECOND = 100  # 10 ms frame shift


class ASTAdapter(AudioAdapter):
    name = "ast"
    feature_extractor_class = ASTFeatureExtractor
    default_max_seconds = 10.24
    min_seconds = 0.025  # one 25 ms analysis window

    def configure_extractor(self) -> None:
        self.feature_extractor.max_length = int(round(self.max_seconds * FRAMES_PER_SECOND))

    def extract(self, arrays: list[np.ndarray], return_tensors: str | None = "pt", train: bool = False) -> BatchFeature:
        return self.feature_extractor(arrays, sampling_rate=self.sampling_rate, return_tensors=return_tensors)
