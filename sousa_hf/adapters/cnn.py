"""The suite's own CNN: log-mel `input_features` at SOUSA's native 44.1 kHz, padded per batch."""

from __future__ import annotations

import numpy as np
import torch
from transformers import BatchFeature

from ..feature_extraction_sousa import SousaMelFeatureExtractor
from .base import AudioAdapter


class CNNAdapter(AudioAdapter):
    """No resampling and any clip length: the whole clip is kept unless the policy crops."""

    name = "cnn"
    feature_extractor_class = SousaMelFeatureExtractor

    def extract(self, arrays: list[np.ndarray], return_tensors: str | None = "pt", train: bool = False) -> BatchFeature:
        return self.feature_extractor(arrays, sampling_rate=self.sampling_rate, return_tensors=return_tensors)

    def pad(self, features: list[dict]) -> dict[str, torch.Tensor]:
        frames = max(len(f["input_features"]) for f in features)
        mels = self.feature_extractor.feature_size
        batch = torch.full((len(features), frames, mels), float(self.feature_extractor.padding_value))
        mask = torch.zeros(len(features), frames, dtype=torch.int32)
        for i, f in enumerate(features):
            values = torch.as_tensor(np.asarray(f["input_features"]))
            batch[i, : len(values)] = values
            mask[i, : len(values)] = torch.as_tensor(np.asarray(f["attention_mask"]))
        return {"input_features": batch, "attention_mask": mask}
