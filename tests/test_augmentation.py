"""Waveform augmentation of training clips: stroke labels follow a changed speed, the colour and noise are
what was asked for, evaluation clips stay as they are, and recipes refuse settings that cannot work."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import welch

from sousa_hf import SousaDataError
from sousa_hf.adapters.augmentation import WaveformAugmentation
from sousa_hf.adapters.base import LengthPolicy
from sousa_hf.adapters.preprocessing import ModelInputs
from sousa_hf.backbones import build_model
from sousa_hf.model_card import make_model_card
from sousa_hf.recipe import load_recipe
from sousa_hf.train import run

from .test_strokes import RECIPES, TINY_STROKES

RATE = 44100
HOP = 220  # 5 ms frames


def _clicks(onsets_ms: np.ndarray, seconds: float) -> np.ndarray:
    """Silence with a 3 ms burst of noise at each onset."""
    audio = np.zeros(int(seconds * RATE), dtype=np.float32)
    burst = np.random.default_rng(0).standard_normal(int(0.003 * RATE)).astype(np.float32)
    for onset in onsets_ms:
        start = int(onset * RATE / 1000)
        audio[start : start + burst.size] += burst
    return audio


def _strokes_batch(onsets_ms: np.ndarray, seconds: float) -> dict:
    return {"audio": [{"array": _clicks(onsets_ms, seconds), "sampling_rate": RATE}],
            "stroke_onsets": [onsets_ms.tolist()], "stroke_velocities": [[0.5] * onsets_ms.size],
            "stroke_is_grace": [[0.0] * onsets_ms.size]}


def _adapter(max_seconds: float | None):
    _, adapter = build_model("strokes", "cnn:tiny", length=LengthPolicy(max_seconds=max_seconds),
                             backbone_config={"time_pooling": False},
                             feature_extractor_config={"hop_length": HOP, "feature_size": 32, "n_fft": 256})
    return adapter


def _attack_frames(features: np.ndarray) -> np.ndarray:
    """Frames where the summed log-mel energy rises the most: the clicks' attacks."""
    energy = np.asarray(features).sum(axis=-1)
    rise = np.diff(energy, prepend=energy[0])
    return np.flatnonzero(rise > 0.5 * rise.max())


@pytest.mark.parametrize("max_seconds", [None, 2.0])
def test_stroke_labels_follow_the_speed_change(max_seconds):
    """Clips played 0.75-1.25x: every label of the kept part sits on a click of the changed audio, and the
    spacing of the labels is the original's divided by one speed in that range."""
    onsets = np.arange(100.0, 3000.0, 180.0)
    augmentation = WaveformAugmentation(speed=0.25)
    inputs = ModelInputs(_adapter(max_seconds), train=True, seed=3, augmentation=augmentation)
    speeds = []
    for _ in range(4):
        out = inputs(_strokes_batch(onsets, 3.2))
        labels = np.asarray(out["stroke_onsets"][0])
        assert labels.size >= 8
        attacks_ms = _attack_frames(out["input_features"][0]) * 1000.0 * HOP / RATE
        for label in labels:
            assert np.min(np.abs(attacks_ms - label)) <= 7.5, (label, attacks_ms)
        spacing = np.diff(labels)
        assert spacing.std() < 0.01 * spacing.mean()
        speeds.append(180.0 / spacing.mean())
    assert all(0.75 <= s <= 1.25 for s in speeds)
    assert np.ptp(speeds) > 0.02  # drawn anew for each clip


def test_without_augmentation_and_for_evaluation_the_clip_is_unchanged():
    onsets = np.arange(100.0, 3000.0, 180.0)
    adapter = _adapter(None)
    augmentation = WaveformAugmentation(speed=0.2, eq_db=9, noise_snr_db=(20, 30), gain_db=6)
    plain = ModelInputs(adapter, train=True)(_strokes_batch(onsets, 3.2))
    evaluation = ModelInputs(adapter, train=False, augmentation=augmentation)(_strokes_batch(onsets, 3.2))
    changed = ModelInputs(adapter, train=True, augmentation=augmentation)(_strokes_batch(onsets, 3.2))
    np.testing.assert_array_equal(evaluation["input_features"][0], plain["input_features"][0])
    assert evaluation["stroke_onsets"][0] == plain["stroke_onsets"][0] == pytest.approx(onsets.tolist())
    assert np.shape(changed["input_features"][0]) != np.shape(plain["input_features"][0]) or not np.allclose(
        changed["input_features"][0], plain["input_features"][0])


def test_noise_lands_in_the_asked_snr_and_the_bands_colour_the_spectrum():
    generator = np.random.default_rng(0)
    clip = np.sin(2 * np.pi * 440 * np.arange(RATE) / RATE).astype(np.float32)
    noisy = WaveformAugmentation(noise_snr_db=(20, 25)).colour(clip, RATE, generator)
    snr = 10 * np.log10(np.mean(clip.astype(np.float64) ** 2) / np.mean((noisy - clip).astype(np.float64) ** 2))
    assert 19.8 <= snr <= 25.2
    white = generator.standard_normal(4 * RATE).astype(np.float32)
    _, before = welch(white, RATE, nperseg=4096)
    shapes = []
    for _ in range(3):
        _, after = welch(WaveformAugmentation(eq_db=12, eq_bands=2).colour(white, RATE, generator), RATE, nperseg=4096)
        ratio_db = 10 * np.log10(after[10:800] / before[10:800])  # 100 Hz - 8.6 kHz
        assert 3.0 <= np.ptp(ratio_db) <= 2 * 12 + 3  # some band moved, by no more than both bands at most
        shapes.append(ratio_db)
    assert not np.allclose(shapes[0], shapes[1], atol=1.0)
    louder = WaveformAugmentation(gain_db=6).colour(clip, RATE, generator)
    assert 10 ** (-6 / 20) - 1e-6 <= np.abs(louder).max() / np.abs(clip).max() <= 10 ** (6 / 20) + 1e-6


@pytest.mark.parametrize(("override", "match"), [
    ("augmentation.speed=0.6", r"speed must be in \[0, 0.5\), got 0.6"),
    ("augmentation.noise_snr_db=[40, 20]", r"noise_snr_db must be \[lowest, highest\]"),
    ("augmentation.spead=0.1", r"unknown entry 'spead' \(did you mean 'speed'\?\)"),
    ("augmentation.eq_db=-3", "must be >= 0"),
])
def test_the_recipe_refuses_bad_augmentation_naming_it(override, match):
    with pytest.raises(SousaDataError, match=match):
        load_recipe(RECIPES / "strokes_cnn.yaml", [override])


@pytest.mark.parametrize(("recipe", "cache", "more"), [("strokes_cnn.yaml", "features", []),
                                                       ("stroke_statistics.yaml", "backbone", ["strokes_from=runs/x"])])
def test_augmentation_needs_audio_made_on_access(recipe, cache, more):
    with pytest.raises(SousaDataError, match=f"augmentation.*cache '{cache}'.*cache: waveform"):
        load_recipe(RECIPES / recipe, ["augmentation.speed=0.1", f"cache={cache}", *more])


def test_a_stroke_recipe_trains_with_augmentation_and_records_it(synthetic_dir, tmp_path):
    out = tmp_path / "augmented"
    overrides = [*TINY_STROKES, f"data={synthetic_dir}", f"output_dir={out}", "cache=waveform",
                 "augmentation={speed: 0.1, eq_db: 6, noise_snr_db: [30, 50]}"]
    recipe, training = load_recipe(RECIPES / "strokes_cnn.yaml", overrides)
    results = run(recipe, training)
    assert np.isfinite(results["metrics"]["onset_f1_25ms"])
    saved, _ = load_recipe(out / "recipe.yaml")
    assert saved.augmentation == {"speed": 0.1, "eq_db": 6, "noise_snr_db": [30, 50]}
    card = str(make_model_card(out, "user/strokes"))
    assert '| augmentation | `{"speed": 0.1, "eq_db": 6, "noise_snr_db": [30, 50]}` |' in card
    # Resuming under another augmentation is another run: refused, naming the key.
    recipe, training = load_recipe(RECIPES / "strokes_cnn.yaml", [*overrides[:-1], "augmentation={speed: 0.2}"])
    with pytest.raises(SousaDataError, match="augmentation"):
        run(recipe, training)
