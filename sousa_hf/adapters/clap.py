"""CLAP audio tower: 64-bin log-mel `input_features` at 48 kHz, plus `is_longer`.

CLAP's window is 10 s; the extractor repeat-pads shorter clips. Longer clips depend on the checkpoint's
extractor. Fused checkpoints (`truncation="fusion"`, e.g. laion/clap-htsat-fused) see the whole clip: a
downsampled view plus three 10 s chunks, chosen at random by the extractor (with a fixed seed to
evaluate). The others (`rand_trunc`, e.g. laion/clap-htsat-unfused) see one 10 s window, which the
extractor would pick at random even to evaluate and without a word; for those the window is the
adapter's default `max_seconds`, so the suite crops as the length policy says (random to train, centre
or start to evaluate) and logs the crop warning. A policy `max_seconds` sets the window for both kinds
(the audio tower takes at most about 10 s), and CLAP never sees a clip longer than it.

`is_longer` is set to whether each clip really is longer than the window. The extractor itself
marks one random clip of any batch without a long clip as longer (a training trick for the fusion
layers), which would make a clip's inputs depend on the batch it happens to be in.
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import BatchFeature, ClapFeatureExtractor

from ..data.errors import SousaDataError
from .base import AudioAdapter

EVAL_SEED = 0
# HTSAT, the audio tower of every released CLAP, takes at most spec_size 256 x freq_ratio 4 frames.
HTSAT_MAX_FRAMES = 1024


class TorchSpectrogramClapFeatureExtractor(ClapFeatureExtractor):
    """`ClapFeatureExtractor` with its log-mel computed by one `torch.stft` call.

    The parent computes the spectrogram frame by frame in numpy (about 2/3 of CLAP's preprocessing
    time on SOUSA's clips); this gives the same values (Hann window, centred reflect-padded frames,
    power 2, dB with a 1e-10 floor) and saves as a plain `ClapFeatureExtractor`.
    """

    def _np_extract_fbank_features(self, waveform: np.ndarray, mel_filters: np.ndarray | None = None) -> np.ndarray:
        window = torch.hann_window(self.fft_window_size, periodic=True, dtype=torch.float64)
        spectrum = torch.stft(torch.from_numpy(np.asarray(waveform, dtype=np.float64)), self.fft_window_size,
                              self.hop_length, window=window, center=True, pad_mode="reflect", return_complex=True)
        mel = torch.from_numpy(mel_filters).T @ spectrum.abs().pow(2)
        log_mel = 10.0 * torch.log10(torch.clamp(mel, min=1e-10))
        return log_mel.T.numpy().astype(np.float32)

    def to_dict(self) -> dict:
        output = super().to_dict()
        output["feature_extractor_type"] = ClapFeatureExtractor.__name__
        return output


class ClapAdapter(AudioAdapter):
    name = "clap"
    feature_extractor_class = ClapFeatureExtractor
    crop_advice = ("set the recipe's length.max_seconds to choose the window (CLAP's audio tower takes at most "
                   "10.23 s), or use a fused checkpoint (truncation='fusion') to see the whole clip")

    def configure_extractor(self) -> None:
        if type(self.feature_extractor) is ClapFeatureExtractor:
            self.feature_extractor = TorchSpectrogramClapFeatureExtractor.from_dict(self.feature_extractor.to_dict())
        extractor = self.feature_extractor
        if self.max_seconds is None and extractor.truncation != "fusion":
            self.max_seconds = round(extractor.nb_max_samples) / self.sampling_rate
        if self.max_seconds is not None:
            longest = (HTSAT_MAX_FRAMES - 1) * extractor.hop_length / self.sampling_rate
            if self.max_seconds > longest:
                raise SousaDataError(f"length max_seconds={self.max_seconds} is longer than CLAP's audio tower takes "
                                     f"({HTSAT_MAX_FRAMES} frames, {longest:.2f} s); set it to {longest:.2f} or less, "
                                     "or leave it unset with a fused checkpoint to see whole clips")
            extractor.max_length_s = self.max_seconds
            extractor.nb_max_samples = int(round(self.max_seconds * self.sampling_rate))

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
        inputs = self.feature_extractor(arrays, sampling_rate=self.sampling_rate, return_tensors="np")
        limit = self.feature_extractor.nb_max_samples
        inputs["is_longer"] = np.array([[array.size > limit] for array in arrays])
        return BatchFeature(dict(inputs), tensor_type=return_tensors)
