"""Sample-rate conversion from SOUSA's 44.1 kHz to each backbone's rate.

soxr's HQ mode, chosen by measurement (`python benchmarks/resample.py`; 5.6 s clips, one core):
44.1 -> 16 kHz at ~6,500x real time with a 10 kHz tone's alias at -152 dB, against torchaudio's
default `Resample` at ~8,400x but only -45 dB (its 6-tap Hann-windowed sinc lets the alias through)
and torchaudio's Kaiser "best" settings at ~4,100x and -151 dB. Up to CLAP's 48 kHz soxr runs at
~3,700x against torchaudio's ~7,000x, a cost that disappears next to CLAP's spectrogram, so one
resampler serves every adapter. From FLAC bytes, FFmpeg through torchcodec (what `datasets`'
`Audio(sampling_rate=...)` uses) decodes and resamples ~10% faster than soundfile + soxr but
leaves the alias at -98 dB instead of -163 dB, and needs a system FFmpeg, which the suite does not.
"""

from __future__ import annotations

import numpy as np
import soxr

from ..data.errors import SousaDataError


def resample(array: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Anti-aliased conversion of a 1-D float array; returns float32 (the input itself when rates match)."""
    if array.ndim != 1:
        raise SousaDataError(f"resample expects mono 1-D audio, got shape {array.shape}; downmix first")
    if source_rate <= 0:
        raise SousaDataError(f"sampling rate must be positive, got {source_rate}")
    array = np.asarray(array, dtype=np.float32)
    if source_rate == target_rate:
        return array
    return soxr.resample(array, source_rate, target_rate, quality="HQ").astype(np.float32, copy=False)
