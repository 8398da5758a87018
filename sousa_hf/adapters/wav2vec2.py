"""Wav2Vec2 and HuBERT: raw 16 kHz waveforms, normalised per clip, padded per batch."""

from __future__ import annotations

import numpy as np
import torch
from transformers import BatchFeature, Wav2Vec2FeatureExtractor

from .base import AudioAdapter


class Wav2Vec2Adapter(AudioAdapter):
    """`input_values` (+ `attention_mask` when the checkpoint's extractor returns one: wav2vec2-base's
    does not, since its group-norm front end must see padding as zeros). Any clip length works, so
    by default the whole clip is kept."""

    name = "wav2vec2"
    feature_extractor_class = Wav2Vec2FeatureExtractor
    min_seconds = 0.025  # the convolutional front end's receptive field: 400 samples at 16 kHz

    def extract(self, arrays: list[np.ndarray], return_tensors: str | None = "pt", train: bool = False) -> BatchFeature:
        return self.feature_extractor(arrays, sampling_rate=self.sampling_rate, padding=True,
                                      return_tensors=return_tensors)

    def pad(self, features: list[dict]) -> dict[str, torch.Tensor]:
        padded = self.feature_extractor.pad(
            [{key: np.asarray(f[key]) for key in f} for f in features], padding=True, return_tensors="pt")
        return dict(padded)


class HubertAdapter(Wav2Vec2Adapter):
    """HuBERT takes exactly wav2vec2's inputs (its checkpoints ship a `Wav2Vec2FeatureExtractor`)."""

    name = "hubert"
