"""Audio Spectrogram Transformer: 128-bin Kaldi filterbank frames (10 ms) at 16 kHz.

AST pads every clip to `max_length` frames (1024, about 10 s): for a 5 s clip half the patches
are padding and attention costs about 4x what the clip needs. A policy `max_seconds` sets
`max_length = 100 * max_seconds` (the model interpolates the position embeddings to match).
The extractor's normalisation `mean`/`std` default to AudioSet's; `sousa-hf adapters stats`
replaces them with SOUSA's.

The extractor gives no mask; the adapter adds a frame `attention_mask` (1 for frames of the clip,
0 for the padding), which the model maps to AST's patches so that pooling skips the padding.
"""

from __future__ import annotations

import numpy as np
from transformers import ASTFeatureExtractor, BatchFeature

from .base import AudioAdapter

FRAMES_PER_SECOND = 100  # 10 ms frame shift
FRAME_SECONDS = 0.025  # Kaldi's 25 ms analysis window


def audio_frames(num_samples: int, sampling_rate: int) -> int:
    """How many filterbank frames a clip of `num_samples` fills (Kaldi's `snip_edges`: whole windows only)."""
    window, hop = round(FRAME_SECONDS * sampling_rate), round(sampling_rate / FRAMES_PER_SECOND)
    return 0 if num_samples < window else 1 + (num_samples - window) // hop


class ASTAdapter(AudioAdapter):
    name = "ast"
    feature_extractor_class = ASTFeatureExtractor
    default_max_seconds = 10.24
    min_seconds = FRAME_SECONDS  # one analysis window

    def configure_extractor(self) -> None:
        self.feature_extractor.max_length = int(round(self.max_seconds * FRAMES_PER_SECOND))

    def extract(self, arrays: list[np.ndarray], return_tensors: str | None = "pt", train: bool = False) -> BatchFeature:
        values = self.feature_extractor(arrays, sampling_rate=self.sampling_rate, return_tensors="np")["input_values"]
        frames = np.arange(values.shape[1])
        mask = np.stack([frames < audio_frames(array.size, self.sampling_rate) for array in arrays]).astype(np.int32)
        return BatchFeature({"input_values": values, "attention_mask": mask}, tensor_type=return_tensors)
