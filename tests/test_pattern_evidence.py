"""Pattern evidence: the stroke head's outputs read at each notated position of the rhythm a take plays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sousa_hf.stroke_statistics import (
    EVIDENCE_STATISTICS,
    FrameCurves,
    clip_statistics,
    statistic_names,
)

# Straight sixteenths at 120 bpm (a stroke every 125 ms), the first beat heard 10 ms into the take.
PATTERNS = {"origin_ms": 10.0, "cycle_beats": [1.0, 2.0], "positions_beats": [[0.0, 0.25, 0.5, 0.75], [0.0, 1.0]]}
TEMPO = 120.0
RECIPES = Path(__file__).resolve().parents[1] / "recipes"
FRAME_MS = 5.0


def _heard_take(weak_late_ms: float, weak_probability: float) -> tuple[torch.Tensor, FrameCurves]:
    """Eight seconds of sixteenths: three of every four strokes on time, heard loud and sure (probability 0.9,
    velocity 0.8); every fourth `weak_late_ms` late, quiet (velocity 0.2) and below the threshold of one half
    (`weak_probability`), so not among the found strokes. Returns the found strokes' times and the frame curves."""
    notated = 10.0 + 125.0 * np.arange(64)
    weak = np.arange(64) % 4 == 3
    played = notated + np.where(weak, weak_late_ms, 0.0)
    probability, velocity = np.zeros(int(8200 / FRAME_MS)), np.zeros(int(8200 / FRAME_MS))
    frames = np.round(played / FRAME_MS).astype(int)
    probability[frames] = np.where(weak, weak_probability, 0.9)
    velocity[frames] = np.where(weak, 0.2, 0.8)
    curves = FrameCurves(torch.from_numpy(probability), torch.from_numpy(velocity), FRAME_MS)
    return torch.from_numpy(played[~weak]), curves


def _statistics(found: torch.Tensor, curves: FrameCurves | None) -> dict[str, float]:
    names = statistic_names(use_tempo=True, rhythm_patterns=True, pattern_evidence=curves is not None)
    values = clip_statistics(found, torch.full_like(found, 0.8), torch.zeros_like(found, dtype=torch.bool), TEMPO,
                             PATTERNS, curves)
    return dict(zip(names, values.tolist()))


def test_a_stroke_heard_below_the_threshold_still_tells_its_timing_and_velocity():
    found, curves = _heard_take(weak_late_ms=20.0, weak_probability=0.3)
    statistics = _statistics(found, curves)
    # The found strokes are all on time and the sixteenths are still the rhythm they play best ...
    assert statistics["pattern_strokes_per_beat"] == 4.0
    assert statistics["pattern_mean_abs_ms"] == pytest.approx(0.0, abs=1e-6)
    # ... but a quarter of the notated positions hold a stroke the model heard only faintly, 20 ms late and quiet.
    assert statistics["evidence_unfound"] == pytest.approx(0.25, abs=0.02)
    assert statistics["evidence_below_half"] == pytest.approx(0.25, abs=0.02)
    assert statistics["evidence_below_fifth"] == pytest.approx(0.0, abs=1e-6)
    assert statistics["evidence_mean"] == pytest.approx(0.75 * 0.9 + 0.25 * 0.3, abs=0.02)
    assert statistics["evidence_mean_ms"] == pytest.approx(5.0, abs=0.5)  # a quarter of them 20 ms late
    assert statistics["evidence_mean_abs_ms"] == pytest.approx(5.0, abs=0.5)
    assert statistics["evidence_p90_ms"] == pytest.approx(20.0, abs=1e-4)
    assert statistics["evidence_weighted_abs_ms"] == pytest.approx(20.0 * 0.25 * 0.3 / (0.75 * 0.9 + 0.25 * 0.3),
                                                                   abs=0.5)
    assert statistics["evidence_velocity_p10"] == pytest.approx(0.2, abs=1e-6)
    assert statistics["evidence_velocity_p90"] == pytest.approx(0.8, abs=1e-6)
    assert statistics["evidence_coverage"] == pytest.approx(1.0, abs=1e-6)
    # Not heard at all: those positions are empty, and the timing read is the found strokes' own.
    found, silent = _heard_take(weak_late_ms=20.0, weak_probability=0.0)
    statistics = _statistics(found, silent)
    assert statistics["evidence_below_fifth"] == pytest.approx(0.25, abs=0.02)
    assert statistics["evidence_coverage"] == pytest.approx(0.75, abs=0.02)
    assert statistics["evidence_mean_abs_ms"] == pytest.approx(0.0, abs=1e-6)
    assert statistics["evidence_velocity_p10"] == pytest.approx(0.8, abs=1e-6)


def test_the_evidence_statistics_come_last_and_need_the_rhythm_patterns():
    found, curves = _heard_take(weak_late_ms=20.0, weak_probability=0.3)
    with_evidence = _statistics(found, curves)
    without = _statistics(found, None)
    assert list(with_evidence)[-len(EVIDENCE_STATISTICS):] == list(EVIDENCE_STATISTICS)
    assert list(with_evidence.values())[: len(without)] == pytest.approx(list(without.values()))
    with pytest.raises(ValueError, match="rhythm_patterns"):
        clip_statistics(found, torch.ones_like(found), torch.zeros_like(found, dtype=torch.bool), TEMPO, None, curves)
    one_stroke = _statistics(torch.tensor([10.0]), curves)  # no rhythm to match: no evidence either
    assert all(one_stroke[name] == 0.0 for name in EVIDENCE_STATISTICS)


def test_a_config_or_recipe_with_pattern_evidence_needs_the_rhythm_patterns(tmp_path):
    from sousa_hf import SousaDataError
    from sousa_hf.adapters.base import LengthPolicy
    from sousa_hf.backbones import build_model
    from sousa_hf.recipe import load_recipe

    with pytest.raises(ValueError, match="pattern_evidence .* needs rhythm_patterns"):
        build_model("overall_score", "cnn:tiny", backbone_config={"time_pooling": False}, pooling="stroke_statistics",
                    use_tempo=True, pattern_evidence=True, length=LengthPolicy(max_seconds=None))
    model, _ = build_model("overall_score", "cnn:tiny", backbone_config={"time_pooling": False},
                           pooling="stroke_statistics", use_tempo=True, rhythm_patterns=PATTERNS,
                           pattern_evidence=True, length=LengthPolicy(max_seconds=None))
    assert model.config.stroke_statistics[-len(EVIDENCE_STATISTICS):] == list(EVIDENCE_STATISTICS)
    assert model.stroke_statistics.statistics_mean.numel() == len(statistic_names(True, True, True))
    with pytest.raises(SousaDataError, match="pattern_evidence.*rhythm_patterns: true"):
        load_recipe(RECIPES / "stroke_statistics.yaml",
                    [f"output_dir={tmp_path}", "rhythm_patterns=false", "pattern_evidence=true"])
