"""Adapters: model inputs per backbone family, resampling, length policy, lookup by name or checkpoint."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from transformers import (
    ASTConfig,
    ASTFeatureExtractor,
    ClapConfig,
    ClapFeatureExtractor,
    HubertConfig,
    Wav2Vec2Config,
    Wav2Vec2FeatureExtractor,
    WhisperConfig,
    WhisperFeatureExtractor,
)

from sousa_hf import SousaDataError, load_sousa
from sousa_hf.adapters import ADAPTERS, LengthPolicy, get_adapter

NAMES = list(ADAPTERS)
RATES = {"wav2vec2": 16000, "hubert": 16000, "whisper": 16000, "ast": 16000, "clap": 48000, "cnn": 44100}


def _expected_shapes(name: str, seconds: float) -> dict[str, tuple]:
    """Shapes of one clip's inputs under the default length policy."""
    samples = int(round(seconds * 16000))
    frames = 1 + int(round(seconds * 44100)) // 512
    return {
        "wav2vec2": {"input_values": (1, samples), "attention_mask": (1, samples)},
        "hubert": {"input_values": (1, samples), "attention_mask": (1, samples)},
        "whisper": {"input_features": (1, 80, 3000), "attention_mask": (1, 3000)},
        "ast": {"input_values": (1, 1024, 128)},
        "clap": {"input_features": (1, 4, 1001, 64), "is_longer": (1, 1)},
        "cnn": {"input_features": (1, frames, 128), "attention_mask": (1, frames)},
    }[name]


def _sine(frequency=1000.0, rate=44100, seconds=1.0, channels=None):
    t = np.arange(int(rate * seconds)) / rate
    wave = (0.5 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)
    return np.stack([wave] * channels) if channels else wave


def _peak_hz(array: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(array * np.hanning(array.size)))
    return float(np.fft.rfftfreq(array.size, 1 / rate)[spectrum.argmax()])


@pytest.fixture(scope="module")
def real_clip(sample_dir):
    row = load_sousa(sample_dir, "audio", split="validation")[0]
    return row["audio"]["array"], row["audio"]["sampling_rate"]


@pytest.fixture(scope="module")
def synthetic_clip(synthetic_dir):
    row = load_sousa(synthetic_dir, "audio", split="test")[0]
    return row["audio"]["array"], row["audio"]["sampling_rate"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("clip", ["real_clip", "synthetic_clip"])
def test_model_inputs_of_a_sousa_clip(name, clip, request):
    array, rate = request.getfixturevalue(clip)
    adapter = get_adapter(name)
    assert adapter.sampling_rate == RATES[name]
    inputs = adapter([array], rate)
    seconds = array.size / rate
    expected = _expected_shapes(name, min(seconds, adapter.max_seconds or seconds))
    assert {key: tuple(value.shape) for key, value in inputs.items()} == expected
    for key, value in inputs.items():
        assert isinstance(value, torch.Tensor)
        if value.is_floating_point():
            assert value.dtype == torch.float32 and torch.isfinite(value).all(), key


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("source_rate", [44100, 48000, 22050])
def test_a_1khz_sine_arrives_at_the_target_rate_with_its_peak_at_1khz(name, source_rate):
    adapter = get_adapter(name)
    prepared = adapter.prepare(_sine(rate=source_rate), source_rate)
    assert prepared.dtype == np.float32
    assert prepared.size == pytest.approx(adapter.sampling_rate, abs=2)  # one second at the target rate
    assert _peak_hz(prepared, adapter.sampling_rate) == pytest.approx(1000.0, abs=2.0)


@pytest.mark.parametrize("name", ["wav2vec2", "whisper", "ast", "cnn"])
def test_the_sine_peak_survives_into_the_features(name):
    adapter = get_adapter(name)
    features = adapter([_sine(seconds=2.0)], 44100)
    if name in ("wav2vec2",):
        assert _peak_hz(features["input_values"][0].numpy(), 16000) == pytest.approx(1000.0, abs=2.0)
        return
    values = features["input_values" if name == "ast" else "input_features"][0].numpy()
    mel_axis = 0 if name == "whisper" else 1
    strongest_bin = int(values.mean(axis=1 - mel_axis).argmax())
    centres = _mel_centres(adapter)
    assert abs(centres[strongest_bin] - 1000.0) < 0.1 * 1000 + (centres[1] - centres[0]) * 2


def _mel_centres(adapter) -> np.ndarray:
    """Frequencies of the mel bins' centres for the extractor's scale (HTK for AST, Slaney otherwise)."""
    extractor = adapter.feature_extractor
    bins = extractor.num_mel_bins if hasattr(extractor, "num_mel_bins") else extractor.feature_size
    top = adapter.sampling_rate / 2
    if adapter.name == "ast":
        to_hz = lambda m: 700 * (10 ** (m / 2595) - 1)  # noqa: E731
        top_mel = 2595 * np.log10(1 + top / 700)
        return to_hz(np.linspace(0, top_mel, bins + 2)[1:-1])
    from transformers.audio_utils import hertz_to_mel, mel_to_hertz

    edges = np.linspace(hertz_to_mel(0.0, "slaney"), hertz_to_mel(top, "slaney"), bins + 2)
    return mel_to_hertz(edges[1:-1], "slaney")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("case", ["shorter_than_a_frame", "silent", "stereo"])
def test_awkward_clips_are_handled(name, case):
    adapter = get_adapter(name)
    clip = {"shorter_than_a_frame": np.full(100, 0.1, np.float32), "silent": np.zeros(44100, np.float32),
            "stereo": _sine(channels=2)}[case]
    inputs = adapter([clip], 44100)
    for value in inputs.values():
        if value.is_floating_point():
            assert torch.isfinite(value).all()
    if case == "stereo":
        mono = adapter([_sine()], 44100)
        for key in inputs:
            torch.testing.assert_close(inputs[key], mono[key])


@pytest.mark.parametrize("name", NAMES)
def test_empty_or_broken_clips_are_refused(name):
    adapter = get_adapter(name)
    with pytest.raises(SousaDataError, match="empty clip"):
        adapter([np.zeros(0, np.float32)], 44100)
    with pytest.raises(SousaDataError, match="NaN or infinite"):
        adapter([np.full(1000, np.nan, np.float32)], 44100)
    with pytest.raises(SousaDataError, match="sampling rate must be positive"):
        adapter([np.zeros(1000, np.float32)], 0)


def test_length_policy_crops_long_clips_and_says_so(caplog):
    clip = np.random.default_rng(0).standard_normal(int(17.2 * 44100)).astype(np.float32)
    ast = get_adapter("ast")
    with caplog.at_level(logging.WARNING):
        assert ast([clip], 44100)["input_values"].shape == (1, 1024, 128)
    assert "cropping a 17.2 s clip to 10.2 s" in caplog.text

    whole = get_adapter("wav2vec2")  # waveform backbones keep the whole clip by default
    assert whole([clip], 44100)["input_values"].shape[-1] == int(17.2 * 16000)

    policy = LengthPolicy(max_seconds=4.0, train_crop="random", eval_crop="center")
    cropped = get_adapter("wav2vec2", policy)
    evaluation = [cropped.prepare(clip, 44100) for _ in range(2)]
    np.testing.assert_array_equal(evaluation[0], evaluation[1])
    full = cropped.prepare(clip, 44100, crop=False)
    start = (full.size - 64000) // 2
    np.testing.assert_array_equal(evaluation[0], full[start : start + 64000])
    generator = np.random.default_rng(1)
    training = [cropped.prepare(clip, 44100, train=True, generator=generator) for _ in range(2)]
    assert training[0].size == training[1].size == 64000
    assert not np.array_equal(training[0], training[1])


def test_fixed_windows_follow_the_policy():
    assert get_adapter("whisper", LengthPolicy(max_seconds=8))([_sine()], 44100)["input_features"].shape == (1, 80, 800)
    assert get_adapter("ast", LengthPolicy(max_seconds=5))([_sine()], 44100)["input_values"].shape == (1, 500, 128)
    clap = get_adapter("clap", LengthPolicy(max_seconds=5))
    assert clap.feature_extractor.nb_max_samples == 5 * 48000


def test_bad_policies():
    with pytest.raises(SousaDataError, match="unknown train_crop 'middle'"):
        LengthPolicy(train_crop="middle")
    with pytest.raises(SousaDataError, match="eval_crop 'random'.*deterministic"):
        LengthPolicy(eval_crop="random")
    with pytest.raises(SousaDataError, match="max_seconds must be positive"):
        LengthPolicy(max_seconds=0)


@pytest.mark.parametrize("config, extractor, expected", [
    (Wav2Vec2Config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=20),
     Wav2Vec2FeatureExtractor(), "wav2vec2"),
    (HubertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=20),
     Wav2Vec2FeatureExtractor(), "hubert"),
    (WhisperConfig(d_model=16, encoder_layers=1, decoder_layers=1), WhisperFeatureExtractor(), "whisper"),
    (ASTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2), ASTFeatureExtractor(), "ast"),
    (ClapConfig(), ClapFeatureExtractor(), "clap"),
])
def test_checkpoints_map_to_their_adapter_by_model_type(tmp_path, config, extractor, expected):
    config.save_pretrained(tmp_path)
    extractor.save_pretrained(tmp_path)
    adapter = get_adapter(str(tmp_path))
    assert adapter.name == expected
    assert isinstance(adapter.feature_extractor, type(extractor))


def test_a_saved_adapter_keeps_its_name_policy_and_statistics(tmp_path):
    adapter = get_adapter("hubert", LengthPolicy(max_seconds=6.0, eval_crop="start"))
    adapter.save_pretrained(str(tmp_path))
    stored = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert stored["sousa_adapter"] == "hubert"
    again = get_adapter(str(tmp_path))
    assert again.name == "hubert" and again.length == adapter.length and again.max_seconds == 6.0


def test_unknown_adapter_or_checkpoint(tmp_path):
    with pytest.raises(SousaDataError, match="unknown adapter or checkpoint 'wavlm'.*wav2vec2, hubert, whisper"):
        get_adapter("wavlm")
    WhisperConfig(d_model=16, encoder_layers=1, decoder_layers=1).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["model_type"] = "bert"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(SousaDataError, match="is a 'bert' checkpoint, which has no adapter"):
        get_adapter(str(tmp_path))


def test_clap_is_longer_says_whether_the_clip_is_longer_whatever_the_batch():
    clap = get_adapter("clap")
    short, long = _sine(seconds=3.0), _sine(seconds=12.0)
    assert clap([short], 44100)["is_longer"].tolist() == [[False]]
    assert clap([short, short, long], 44100)["is_longer"].tolist() == [[False], [False], [True]]
    alone = clap([short], 44100)["input_features"]
    torch.testing.assert_close(clap([short, long], 44100)["input_features"][:1], alone)


@pytest.mark.parametrize("seconds", [0.004, 1.0, 4.7, 17.2, 29.99, 31.0])
@pytest.mark.parametrize("max_seconds", [None, 20.0])
def test_whisper_features_equal_the_extractors_own_full_window(seconds, max_seconds):
    adapter = get_adapter("whisper", LengthPolicy(max_seconds=max_seconds, eval_crop="start"))
    clip = np.random.default_rng(0).standard_normal(int(seconds * 16000)).astype(np.float32) * 0.1
    clip[: clip.size // 3] *= 0.01  # quiet and loud parts
    ours = adapter([clip], 16000)
    reference = WhisperFeatureExtractor(chunk_length=adapter.feature_extractor.chunk_length)(
        clip[: adapter.feature_extractor.n_samples], sampling_rate=16000, return_tensors="pt",
        return_attention_mask=True)
    torch.testing.assert_close(ours["input_features"], reference["input_features"], atol=1e-5, rtol=0)
    torch.testing.assert_close(ours["attention_mask"], reference["attention_mask"].to(torch.int32))


def test_whisper_silence_gives_the_extractors_values():
    adapter = get_adapter("whisper")
    silent = np.zeros(16000 * 3, np.float32)
    reference = WhisperFeatureExtractor()(silent, sampling_rate=16000, return_tensors="pt")
    torch.testing.assert_close(adapter([silent], 16000)["input_features"], reference["input_features"])


@pytest.mark.parametrize("seconds", [0.5, 4.0, 12.0])
def test_clap_features_equal_the_extractors_own(seconds, tmp_path):
    adapter = get_adapter("clap")
    clip = _sine(rate=48000, seconds=seconds) * np.linspace(0.1, 1.0, int(48000 * seconds), dtype=np.float32)
    np.random.seed(3)
    ours = adapter.feature_extractor(clip, sampling_rate=48000, return_tensors="pt")
    np.random.seed(3)
    reference = ClapFeatureExtractor()(clip, sampling_rate=48000, return_tensors="pt")
    torch.testing.assert_close(ours["input_features"], reference["input_features"], atol=2e-3, rtol=0)
    adapter.save_pretrained(str(tmp_path))
    stored = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert stored["feature_extractor_type"] == "ClapFeatureExtractor"
