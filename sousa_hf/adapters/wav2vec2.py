"""Wav2Vec2 and HuBERT: raw 16 kHz waveforms, normalised per clip, padded per batch."""

from __future__ import annotations

import numpy as np
import torch
from transformers import BatchFeature, Wav2Vec2FeatureExtractor

from .base import AudioAdapter


class Wav2Vec2Adapter(AudioAdapter):
    """`input_values` and `attention_mask`. Any clip length works, so by default the whole clip is kept.

    The mask is returned even for checkpoints whose extractor has `return_attention_mask=False`
    (wav2vec2-base): their group-norm front end must see padding as zeros and not be given the mask,
    but the pooling over time still needs to know which frames are padding. The model decides what
    it passes on (`feat_extract_norm`)."""

    name = "wav2vec2"
    feature_extractor_class = Wav2Vec2FeatureExtractor
    min_seconds = 0.025  # the convolutional front end's receptive field: 400 samples at 16 kHz

    def extract(self, arrays: list[np.ndarray], return_tensors: str | None = "pt", train: bool = False) -> BatchFeature:
        return self.feature_extractor(arrays, sampling_rate=self.sampling_rate, padding=True,
                                      return_attention_mask=True, return_tensors=return_tensors)

    def pad(self, features: list[dict]) -> dict[str, torch.Tensor]:
        # The extractor pads `input_values` and makes the matching mask itself.
        padded = self.feature_extractor.pad([{"input_values": np.asarray(f["input_values"])} for f in features],
                                            padding=True, return_attention_mask=True, return_tensors="pt")
        return dict(padded)


class HubertAdapter(Wav2Vec2Adapter):
    """HuBERT takes exactly wav2vec2's inputs (its checkpoints ship a `Wav2Vec2FeatureExtractor`)."""

    name = "hubert"
