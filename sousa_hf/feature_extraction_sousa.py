"""Feature extractor of the suite's own CNN: a normalised log-mel spectrogram at SOUSA's native rate.

Imports only numpy, torch and transformers, so it travels as remote code with a pushed model.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from transformers import BatchFeature, SequenceFeatureExtractor
from transformers.audio_utils import mel_filter_bank


class SousaMelFeatureExtractor(SequenceFeatureExtractor):
    """Log-mel spectrogram `input_features` of shape `(batch, frames, num_mel_bins)` + frame `attention_mask`.

    Time comes first, as in AST's inputs, so a batch pads along its first axis.

    Args:
        feature_size: number of mel bins.
        sampling_rate: expected input rate (SOUSA's native 44.1 kHz: no resampling).
        n_fft: STFT size (46 ms at 44.1 kHz).
        hop_length: STFT hop (11.6 ms at 44.1 kHz, 86 frames a second).
        f_min, f_max: mel range in Hz (`f_max=None`: Nyquist).
        mean, std: normalisation of the dB values. The defaults were measured on the real SOUSA
            sample's training split (`sousa-hf adapters stats cnn --data ../shared/sousa-sample`);
            refit them on your training split with that command.
    """

    model_input_names = ["input_features", "attention_mask"]

    def __init__(self, feature_size: int = 128, sampling_rate: int = 44100, padding_value: float = 0.0,
                 n_fft: int = 2048, hop_length: int = 512, f_min: float = 0.0, f_max: float | None = None,
                 mean: float = -35.23, std: float = 27.96, do_normalize: bool = True,
                 return_attention_mask: bool = True, **kwargs):
        super().__init__(feature_size=feature_size, sampling_rate=sampling_rate, padding_value=padding_value,
                         return_attention_mask=return_attention_mask, **kwargs)
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.f_min = f_min
        self.f_max = f_max
        self.mean = mean
        self.std = std
        self.do_normalize = do_normalize

    def _mel_filters(self) -> torch.Tensor:
        return _mel_filters(self.n_fft, self.feature_size, self.f_min, self.f_max or self.sampling_rate / 2,
                            self.sampling_rate)

    def log_mel(self, waveforms: torch.Tensor) -> torch.Tensor:
        """`(batch, samples)` float waveforms -> `(batch, mels, frames)` dB values, unnormalised."""
        window = torch.hann_window(self.n_fft, device=waveforms.device)
        # Zero (not reflect) padding at the edges: a clip then gets the same frames alone as when a batch
        # pads it with zeros after its end.
        spectrum = torch.stft(waveforms, self.n_fft, self.hop_length, window=window, pad_mode="constant",
                              return_complex=True)
        power = spectrum.abs() ** 2
        mel = self._mel_filters().to(waveforms.device).T @ power
        return 10.0 * torch.log10(torch.clamp(mel, min=1e-10))

    def __call__(self, raw_audio, sampling_rate: int | None = None, return_tensors: str | None = None,
                 **kwargs) -> BatchFeature:
        if sampling_rate is not None and sampling_rate != self.sampling_rate:
            raise ValueError(f"SousaMelFeatureExtractor expects {self.sampling_rate} Hz audio, got {sampling_rate} Hz; "
                             "resample first (the suite's `cnn` adapter does)")
        if isinstance(raw_audio, np.ndarray) and raw_audio.ndim == 1:
            raw_audio = [raw_audio]
        arrays = [np.asarray(a, dtype=np.float32) for a in raw_audio]
        if any(a.ndim != 1 for a in arrays):
            raise ValueError("SousaMelFeatureExtractor expects mono 1-D clips")
        shortest = self.n_fft // 2 + 1  # a shorter clip is padded with silence to this many samples
        lengths = [max(a.size, shortest) for a in arrays]
        batch = torch.zeros(len(arrays), max(lengths))
        for i, array in enumerate(arrays):
            batch[i, : array.size] = torch.from_numpy(array)
        features = self.log_mel(batch)
        if self.do_normalize:
            features = (features - self.mean) / self.std
        frames = torch.tensor([1 + n // self.hop_length for n in lengths])
        mask = torch.arange(features.shape[-1])[None, :] < frames[:, None]
        features = features.masked_fill(~mask[:, None, :], self.padding_value).transpose(1, 2)
        data = {"input_features": np.ascontiguousarray(features.numpy())}
        if self.return_attention_mask:
            data["attention_mask"] = mask.numpy().astype(np.int32)
        return BatchFeature(data, tensor_type=return_tensors)


@lru_cache(maxsize=8)
def _mel_filters(n_fft: int, num_mel_bins: int, f_min: float, f_max: float, sampling_rate: int) -> torch.Tensor:
    """Slaney mel filters `(n_fft // 2 + 1, num_mel_bins)`, built once per setting (it takes milliseconds)."""
    filters = mel_filter_bank(num_frequency_bins=n_fft // 2 + 1, num_mel_filters=num_mel_bins, min_frequency=f_min,
                              max_frequency=f_max, sampling_rate=sampling_rate, norm="slaney", mel_scale="slaney")
    return torch.from_numpy(filters.astype(np.float32))
