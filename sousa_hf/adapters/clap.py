"""CLAP audio tower: 64-bin log-mel `input_features` at 48 kHz, plus `is_longer`.

CLAP handles its 10 s window itself: shorter clips are repeat-padded; longer ones are fused (the
fused checkpoints: a downsampled view of the whole clip plus three random 10 s chunks) or randomly
truncated (`rand_trunc`), as the checkpoint's extractor says. Without a policy `max_seconds` that
is what happens, with evaluation made deterministic (a fixed seed for CLAP's chunk choice); with
one, the suite crops first and CLAP never sees a clip longer than its window.
"""

from __future__ import annotations

import numpy as np
from transformers import BatchFeature, ClapFeatureExtractor

from .base import AudioAdapter

EVAL_SEED = 0


class ClapAdapter(AudioAdapter):
    name = "clap"
    feature_extractor_class = ClapFeatureExtractor

    def configure_extractor(self) -> None:
        if self.max_seconds is not None:
            self.feature_extractor.max_length_s = self.max_seconds
            self.feature_extractor.nb_max_samples = int(round(self.max_seconds * self.sampling_rate))

    def extract(self, arrays: list[np.ndarray], return_tensors: str | None = "pt", train: bool = False) -> BatchFeature:
        if train:
            return self._call_extractor(arrays, return_tensors)
        # ClapFeatureExtractor draws its fusion chunks from numpy's global generator.
        state = np.random.get_state()
        np.random.seed(EVAL_SEED)
        try:
            return self._call_extractor(arrays, return_tensors)
        finally:
            np.random.set_state(state)

    def _call_extractor(self, arrays, return_tensors):
        return self.feature_extractor(arrays, sampling_rate=self.sampling_rate, return_tensors=return_tensors)
