"""`pipeline("audio-classification", model=..., trust_remote_code=True)` for a SOUSA classifier.

Travels as remote code with every saved classification model (`config.custom_pipelines` names it),
so it imports only numpy, torch and transformers (soundfile and soxr when installed) and cannot use
`sousa_hf`. It rebuilds, for one clip, what the suite's adapter does for evaluation, from what the
adapter stored in the saved feature-extractor config (`sousa_adapter`, `sousa_max_seconds`,
`sousa_min_seconds`, `sousa_length_policy`): downmix, resample, the evaluation crop, the shortest
input, then the family's extractor call. `tests/test_hub.py` checks that it gives the model the same
inputs as the adapter for every backbone family.

Inputs: a file path (read with soundfile, so WAV, FLAC, OGG and MP3 need no FFmpeg), bytes, a
`{"array" or "raw", "sampling_rate"}` dict at any rate, or a 1-D array at the feature extractor's
rate (the Transformers convention). Stereo is averaged down to mono.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from transformers import AudioClassificationPipeline, BatchFeature
from transformers.pipelines.audio_utils import ffmpeg_read

# Optional: Transformers' remote-code loader only insists on imports outside `try` blocks.
try:
    import soundfile
except ImportError:  # then files are read with FFmpeg, as the stock pipeline does
    soundfile = None
try:
    import soxr  # the resampler the suite trains with
except ImportError:
    soxr = None
try:
    import torchaudio.functional as torchaudio_functional
except ImportError:
    torchaudio_functional = None
try:
    import httpx  # for URLs, as in the stock pipeline
except ImportError:
    httpx = None

# Seed of the CLAP extractor's chunk choice for long clips at evaluation (the adapter's EVAL_SEED).
CLAP_EVAL_SEED = 0


class SousaAudioClassificationPipeline(AudioClassificationPipeline):
    """The stock audio-classification pipeline with the SOUSA adapter's evaluation preprocessing."""

    def preprocess(self, inputs):
        audio, sampling_rate = read_audio(inputs, self.feature_extractor.sampling_rate)
        processed = sousa_model_inputs(self.feature_extractor, audio, sampling_rate)
        if self.dtype is not None:
            processed = processed.to(dtype=self.dtype)
        return processed


def read_audio(inputs, default_rate: int) -> tuple[np.ndarray, int]:
    """`(mono float32 array, rate)` from a path, bytes, a dict with its rate or an array at `default_rate`."""
    if isinstance(inputs, str) and inputs.startswith(("http://", "https://")):
        if httpx is None:
            raise ImportError("reading audio from a URL needs httpx: pip install httpx")
        inputs = httpx.get(inputs, follow_redirects=True).content
    elif isinstance(inputs, str):
        with open(inputs, "rb") as file:
            inputs = file.read()
    if isinstance(inputs, bytes):
        if soundfile is None:
            return ffmpeg_read(inputs, default_rate), default_rate
        try:
            array, rate = soundfile.read(io.BytesIO(inputs), dtype="float32", always_2d=True)
        except Exception as err:  # libsndfile's errors name no format; say which ones are read
            raise ValueError(f"could not decode the audio ({err}); expected WAV, FLAC, OGG or MP3") from err
        return to_mono(array.T), int(rate)
    if isinstance(inputs, dict):
        if "sampling_rate" not in inputs or not ("raw" in inputs or "array" in inputs):
            raise ValueError('an audio dict needs "array" (or "raw") and "sampling_rate" keys; '
                             f"got {sorted(inputs)}")
        array = inputs["raw"] if "raw" in inputs else inputs["array"]
        return to_mono(np.asarray(array, dtype=np.float32)), int(inputs["sampling_rate"])
    if isinstance(inputs, torch.Tensor):
        inputs = inputs.cpu().numpy()
    if isinstance(inputs, np.ndarray):
        return to_mono(inputs.astype(np.float32, copy=False)), default_rate
    raise TypeError(f"expected a file path, bytes, an audio dict or an array, got {type(inputs).__name__}")


def to_mono(array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:
        array = array.mean(axis=0 if array.shape[0] <= array.shape[1] else 1)
    if array.ndim != 1:
        raise ValueError(f"expected 1-D or (channels, samples) audio, got shape {array.shape}")
    return np.ascontiguousarray(array, dtype=np.float32)


def resample(array: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    if source_rate == target_rate:
        return array
    if soxr is not None:
        return soxr.resample(array, source_rate, target_rate, quality="HQ").astype(np.float32, copy=False)
    if torchaudio_functional is None:
        raise ImportError(f"resampling {source_rate} Hz audio to {target_rate} Hz needs soxr (what the model was "
                          "trained with) or torchaudio: pip install soxr")
    return torchaudio_functional.resample(torch.from_numpy(array), source_rate, target_rate).numpy()


def sousa_model_inputs(feature_extractor, audio: np.ndarray, sampling_rate: int) -> BatchFeature:
    """One clip -> the model's inputs (a batch of one, torch tensors), as the adapter makes them to evaluate."""
    rate = int(feature_extractor.sampling_rate)
    if audio.size == 0:
        raise ValueError("got an empty clip (0 samples)")
    if not np.isfinite(audio).all():
        raise ValueError("the clip holds NaN or infinite samples")
    array = resample(audio, sampling_rate, rate)
    max_seconds = getattr(feature_extractor, "sousa_max_seconds", None)
    if max_seconds is not None and array.size > round(max_seconds * rate):
        keep = int(round(max_seconds * rate))
        policy = getattr(feature_extractor, "sousa_length_policy", None) or {}
        start = 0 if policy.get("eval_crop") == "start" else (array.size - keep) // 2
        array = array[start : start + keep]
    shortest = int(np.ceil(getattr(feature_extractor, "sousa_min_seconds", 0.0) * rate))
    if array.size < shortest:
        array = np.pad(array, (0, shortest - array.size))

    family = getattr(feature_extractor, "sousa_adapter", None)
    if family in ("wav2vec2", "hubert"):
        return feature_extractor(array, sampling_rate=rate, padding=True, return_attention_mask=True,
                                 return_tensors="pt")
    if family == "whisper":
        features = feature_extractor(array, sampling_rate=rate, padding="max_length", truncation=True,
                                     return_tensors="np")["input_features"]
        frames = features.shape[-1]
        mask = (np.arange(frames) * feature_extractor.hop_length < array.size)[None].astype(np.int32)
        return BatchFeature({"input_features": features, "attention_mask": mask}, tensor_type="pt")
    if family == "clap":
        # From a saved config ClapFeatureExtractor computes `max_length_s * rate`, a float numpy cannot pad to.
        feature_extractor.nb_max_samples = int(round(feature_extractor.nb_max_samples))
        state = np.random.get_state()
        np.random.seed(CLAP_EVAL_SEED)
        try:
            inputs = feature_extractor(array, sampling_rate=rate, return_tensors="np")
        finally:
            np.random.set_state(state)
        inputs["is_longer"] = np.array([[array.size > feature_extractor.nb_max_samples]])
        return BatchFeature(dict(inputs), tensor_type="pt")
    if family == "ast":
        values = feature_extractor(array, sampling_rate=rate, return_tensors="np")["input_values"]
        mask = (np.arange(values.shape[1]) < ast_audio_frames(array.size, rate))[None].astype(np.int32)
        return BatchFeature({"input_values": values, "attention_mask": mask}, tensor_type="pt")
    return feature_extractor(array, sampling_rate=rate, return_tensors="pt")


def ast_audio_frames(num_samples: int, rate: int) -> int:
    """Filterbank frames a clip fills: Kaldi's 25 ms windows every 10 ms, whole windows only (the adapter's)."""
    window, hop = round(0.025 * rate), round(rate / 100)
    return 0 if num_samples < window else 1 + (num_samples - window) // hop
