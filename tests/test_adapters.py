"""Adapters: model inputs per backbone family, resampling, length policy, lookup by name or checkpoint."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from transformers import (
    ASTConfig,
    ASTFeatureExtractor,
    AutoFeatureExtractor,
    ClapConfig,
    ClapFeatureExtractor,
    HubertConfig,
    Wav2Vec2Config,
    Wav2Vec2FeatureExtractor,
    WhisperConfig,
    WhisperFeatureExtractor,
)

from sousa_hf import SousaDataError, load_sousa
from sousa_hf.adapters import ADAPTERS, KNOWN_CHECKPOINTS, LengthPolicy, get_adapter
from sousa_hf.pipeline_sousa import sousa_model_inputs

from .hub_stand_in import HubStandIn

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
        "ast": {"input_values": (1, 1024, 128), "attention_mask": (1, 1024)},
        "clap": {"input_features": (1, 4, 1001, 64), "is_longer": (1, 1)},
        "cnn": {"input_features": (1, frames, 128), "attention_mask": (1, frames)},
    }[name]


def _assert_dtypes(inputs) -> None:
    """Float features are finite float32, masks are 0/1 integers, `is_longer` is bool."""
    for key, value in inputs.items():
        assert isinstance(value, torch.Tensor), key
        if key == "attention_mask":
            assert value.dtype in (torch.int32, torch.int64) and set(value.unique().tolist()) <= {0, 1}, key
        elif key == "is_longer":
            assert value.dtype == torch.bool, key
        else:
            assert value.dtype == torch.float32 and torch.isfinite(value).all(), key


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
    _assert_dtypes(inputs)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("source_rate", [44100, 48000, 22050])
def test_a_1khz_sine_arrives_at_the_target_rate_with_its_peak_at_1khz(name, source_rate):
    adapter = get_adapter(name)
    prepared = adapter.prepare(_sine(rate=source_rate), source_rate)
    assert prepared.dtype == np.float32
    assert prepared.size == pytest.approx(adapter.sampling_rate, abs=2)  # one second at the target rate
    assert _peak_hz(prepared, adapter.sampling_rate) == pytest.approx(1000.0, abs=2.0)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("source_rate", [48000, 22050])
def test_a_batch_at_another_rate_comes_out_at_the_adapters_rate(name, source_rate):
    adapter = get_adapter(name)
    clips = [_sine(rate=source_rate, seconds=2.0), _sine(rate=source_rate, seconds=1.5)]
    inputs = adapter(clips, sampling_rate=source_rate)
    expected = {key: (2, *shape[1:]) for key, shape in _expected_shapes(name, 2.0).items()}
    assert {key: tuple(value.shape) for key, value in inputs.items()} == expected
    _assert_dtypes(inputs)
    if "attention_mask" in inputs:  # the shorter clip is padded, and its mask says how far
        lengths = inputs["attention_mask"].sum(dim=1).tolist()
        assert lengths[0] == inputs["attention_mask"].shape[1] or name in ("whisper", "ast")
        assert lengths[1] / lengths[0] == pytest.approx(0.75, abs=0.02)


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
    seconds = max(clip.shape[-1] / 44100, adapter.min_seconds)
    if name == "cnn":  # its extractor pads a clip to half an FFT window itself
        seconds = max(seconds, (adapter.feature_extractor.n_fft // 2 + 1) / 44100)
    assert {key: tuple(value.shape) for key, value in inputs.items()} == _expected_shapes(name, seconds)
    _assert_dtypes(inputs)
    if case == "shorter_than_a_frame":
        # 100 samples are zero-padded to the backbone's shortest input (one 25 ms window for the waveform
        # models and AST); the mask then marks that input (the CNN's: 3 frames) or the one frame the clip fills.
        shortest = int(np.ceil(adapter.min_seconds * adapter.sampling_rate))
        assert adapter.prepare(clip, 44100).size == max(shortest, round(100 * adapter.sampling_rate / 44100))
        if "attention_mask" in inputs:
            expected = {"wav2vec2": shortest, "hubert": shortest, "cnn": 3}.get(name, 1)
            assert inputs["attention_mask"].sum().item() == expected
    if case == "stereo":
        mono = adapter([_sine()], 44100)
        for key in inputs:
            torch.testing.assert_close(inputs[key], mono[key])


def test_one_bare_2d_array_is_refused_as_ambiguous():
    """A Transformers extractor reads a 2-D array as a batch, SOUSA's loaders as one stereo clip: ask which."""
    adapter = get_adapter("wav2vec2")
    stereo = _sine(channels=2)
    for bare in (stereo, torch.from_numpy(stereo)):
        with pytest.raises(SousaDataError, match=r"one 2-D array of shape \(2, 44100\); pass a list of clips"):
            adapter(bare, 44100)
    assert adapter([stereo], 44100)["input_values"].shape == (1, 16000)  # one stereo clip, downmixed
    assert adapter(list(stereo), 44100)["input_values"].shape == (2, 16000)  # a batch of two mono clips
    assert adapter(_sine(), 44100)["input_values"].shape == (1, 16000)  # a bare 1-D array is one clip


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
    assert get_adapter("clap", truncation="rand_trunc").max_seconds == 10.0  # CLAP's own window
    assert get_adapter("clap").max_seconds is None  # fusion sees the whole clip


def _long_clip(seconds=17.2, rate=44100):
    return np.random.default_rng(0).standard_normal(int(seconds * rate)).astype(np.float32) * 0.1


def test_clap_without_fusion_crops_long_clips_as_the_policy_says_and_says_so(caplog):
    """laion/clap-htsat-unfused's extractor (rand_trunc) would keep a random 10 s of a 17 s clip, silently."""
    clip = _long_clip()
    adapter = get_adapter("clap", truncation="rand_trunc")
    with caplog.at_level(logging.WARNING):
        first, second = adapter([clip], 44100), adapter([clip], 44100)
    assert caplog.text.count("clap adapter: cropping a 17.2 s clip to 10.0 s") == 1
    assert "length.max_seconds" in caplog.text
    assert first["input_features"].shape == (1, 1, 1001, 64) and first["is_longer"].tolist() == [[False]]
    torch.testing.assert_close(first["input_features"], second["input_features"], rtol=0, atol=0)

    whole = adapter.prepare(clip, 44100, crop=False)
    window = 10 * 48000
    for policy, start in ((LengthPolicy(), (whole.size - window) // 2), (LengthPolicy(eval_crop="start"), 0)):
        cropped = get_adapter("clap", policy, truncation="rand_trunc")([clip], 44100)["input_features"]
        reference = adapter.feature_extractor(whole[start : start + window], sampling_rate=48000,
                                              return_tensors="pt")["input_features"]
        torch.testing.assert_close(cropped, reference, rtol=0, atol=0)

    generator = np.random.default_rng(1)
    training = [adapter([clip], 44100, train=True, generator=generator)["input_features"] for _ in range(2)]
    assert not torch.equal(training[0], training[1])


def test_the_remote_pipeline_crops_long_clips_as_the_unfused_clap_adapter_does(tmp_path):
    adapter = get_adapter("clap", truncation="rand_trunc")
    adapter.save_pretrained(str(tmp_path))
    clip = _long_clip()
    got = sousa_model_inputs(AutoFeatureExtractor.from_pretrained(tmp_path), clip, 44100)
    expected = adapter([clip], 44100)
    assert set(got) == set(expected)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=1e-5)


def test_a_clap_window_longer_than_its_audio_tower_takes_is_refused():
    assert get_adapter("clap", LengthPolicy(max_seconds=10.23)).feature_extractor.nb_max_samples == 491040
    with pytest.raises(SousaDataError, match="max_seconds=12 is longer than CLAP's audio tower takes .* 10.23 s"):
        get_adapter("clap", LengthPolicy(max_seconds=12))


def test_clap_with_fusion_sees_the_whole_clip_without_a_warning(caplog):
    clap = get_adapter("clap")
    with caplog.at_level(logging.WARNING):
        inputs = clap([_long_clip()], 44100)
    assert "cropping" not in caplog.text
    assert inputs["is_longer"].tolist() == [[True]]
    torch.testing.assert_close(clap([_long_clip()], 44100)["input_features"], inputs["input_features"])


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


# Prints what get_adapter makes of each checkpoint id in argv[1] (a JSON list), in a fresh process so that
# huggingface_hub reads the environment's HF_HUB_OFFLINE / HF_ENDPOINT.
_RESOLVE_CHECKPOINTS = """
import json, logging, sys
from sousa_hf.adapters import get_adapter
logging.basicConfig(level=logging.WARNING)
result = {}
for checkpoint in json.loads(sys.argv[1]):
    try:
        adapter = get_adapter(checkpoint)
    except Exception as err:
        result[checkpoint] = {"error": str(err)}
        continue
    settings = {key: getattr(adapter.feature_extractor, key, None) for key in ("frequency_min", "truncation", "mean")}
    result[checkpoint] = {"adapter": adapter.name, "rate": adapter.sampling_rate, "max_seconds": adapter.max_seconds,
                          "extractor": settings}
print("RESULT=" + json.dumps(result))
"""
WELL_KNOWN = {
    "facebook/wav2vec2-base": ("wav2vec2", 16000),
    "facebook/hubert-base-ls960": ("hubert", 16000),
    "openai/whisper-small": ("whisper", 16000),
    "MIT/ast-finetuned-audioset-10-10-0.4593": ("ast", 16000),
    "laion/clap-htsat-unfused": ("clap", 48000),
}


def _resolve(checkpoints: list[str], env: dict[str, str]) -> tuple[dict, str]:
    done = subprocess.run([sys.executable, "-c", _RESOLVE_CHECKPOINTS, json.dumps(checkpoints)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.rsplit("RESULT=", 1)[1]), done.stderr


def test_well_known_checkpoints_resolve_offline_to_a_default_extractor_with_a_warning(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path))  # an empty cache: nothing to fall back on
    result, log = _resolve([*WELL_KNOWN, "nobody/no-such-model"], env)
    for checkpoint, (name, rate) in WELL_KNOWN.items():
        assert (result[checkpoint]["adapter"], result[checkpoint]["rate"]) == (name, rate), checkpoint
        assert f"feature extractor of {checkpoint!r}" in log
    assert log.count("default-constructed") == len(WELL_KNOWN)
    assert "may differ from the checkpoint's own" in log
    unfused = result["laion/clap-htsat-unfused"]
    assert unfused["extractor"]["truncation"] == "rand_trunc" and unfused["max_seconds"] == 10.0
    assert unfused["extractor"]["frequency_min"] == 50
    assert "unknown adapter or checkpoint 'nobody/no-such-model'" in result["nobody/no-such-model"]["error"]
    assert set(WELL_KNOWN) <= set(KNOWN_CHECKPOINTS)


def test_well_known_checkpoints_on_the_hub_use_their_own_config_and_extractor(tmp_path):
    """Through the Hub stand-in: the served model_type picks the adapter, the served extractor is used."""
    served = {
        "facebook/wav2vec2-base": (Wav2Vec2Config(), Wav2Vec2FeatureExtractor()),
        "facebook/hubert-base-ls960": (HubertConfig(), Wav2Vec2FeatureExtractor(do_normalize=False)),
        "openai/whisper-small": (WhisperConfig(), WhisperFeatureExtractor()),
        "MIT/ast-finetuned-audioset-10-10-0.4593": (ASTConfig(), ASTFeatureExtractor(mean=-1.5, std=3.0)),
        "laion/clap-htsat-unfused": (ClapConfig(), ClapFeatureExtractor(truncation="rand_trunc", frequency_min=50)),
    }
    with HubStandIn() as hub:
        for repo_id, (config, extractor) in served.items():
            hub.add_repo(repo_id, {"config.json": config.to_json_string().encode(),
                                   "preprocessor_config.json": extractor.to_json_string().encode()})
        result, log = _resolve(list(served), hub.client_env(tmp_path))
    for checkpoint, (name, rate) in WELL_KNOWN.items():
        assert (result[checkpoint]["adapter"], result[checkpoint]["rate"]) == (name, rate), checkpoint
    assert "default-constructed" not in log
    assert result["MIT/ast-finetuned-audioset-10-10-0.4593"]["extractor"]["mean"] == -1.5
    assert result["laion/clap-htsat-unfused"]["extractor"]["truncation"] == "rand_trunc"


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
