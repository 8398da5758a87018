"""The rudiments' notated rhythms: learned from stroke labels, and each take's strokes measured against its own."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sousa_hf import SousaDataError, load_sousa
from sousa_hf.data.rhythm_patterns import fit_rhythm_patterns
from sousa_hf.data.rudiments import sticking_pattern
from sousa_hf.data.strokes import AUDIO_OFFSET_MS
from sousa_hf.stroke_statistics import (
    PATTERN_MATCH_CAP_MS,
    PATTERN_STATISTICS,
    clip_statistics,
    match_rhythm_pattern,
    rhythm_pattern_matches,
    statistic_names,
)

# Straight sixteenths, eighth-note triplets, and a gallop (a sixteenth and an eighth: 0, 1/4, 1/2 of a beat left
# out of every other), each laid from a first beat heard 10 ms into the take.
PATTERNS = {"origin_ms": 10.0, "cycle_beats": [1.0, 1.0, 2.0],
            "positions_beats": [[0.0, 0.25, 0.5, 0.75], [0.0, 1 / 3, 2 / 3], [0.0, 0.25, 1.0, 1.25, 1.5]]}
TEMPO = 120.0  # 500 ms a beat


def _take(pattern: int, seconds: float = 8.0, late_ms: float = 0.0, jitter_ms: float = 0.0,
          drift_ms_per_s: float = 0.0) -> torch.Tensor:
    cycle, positions = PATTERNS["cycle_beats"][pattern], PATTERNS["positions_beats"][pattern]
    beats = (np.arange(int(seconds * 2 / cycle))[:, None] * cycle + np.asarray(positions)[None]).ravel()
    notated = beats * 500.0 + PATTERNS["origin_ms"]
    played = notated + late_ms + drift_ms_per_s * notated / 1000.0
    played = played + np.random.default_rng(0).normal(0.0, jitter_ms, len(played)) if jitter_ms else played
    return torch.from_numpy(np.sort(played))


def _statistics(times: torch.Tensor, patterns: dict | None = PATTERNS) -> dict[str, float]:
    names = statistic_names(use_tempo=True, rhythm_patterns=patterns is not None)
    values = clip_statistics(times, torch.full_like(times, 0.6), torch.zeros_like(times, dtype=torch.bool), TEMPO,
                             patterns)
    return dict(zip(names, values.tolist()))


def test_a_take_is_matched_to_the_rhythm_it_plays_not_the_densest_or_the_sparsest():
    for pattern in range(3):
        index, grid, _ = match_rhythm_pattern(_take(pattern, jitter_ms=6.0), TEMPO, PATTERNS)
        assert index == pattern
    # Sixteenths lie on a gallop's positions too, but leave none of the sixteenths' own empty: the gallop's
    # missing positions are strokes too far from any of its own.
    index, _, match = match_rhythm_pattern(_take(2), TEMPO, PATTERNS)
    assert index == 2 and float(match) == pytest.approx(0.0, abs=1e-9)


def test_pattern_matches_say_how_much_worse_than_the_best_each_rhythm_matches():
    # A fourth rhythm with one stroke in 64 beats has no two positions within an 8 s take: it matches worst of all.
    patterns = {**PATTERNS, "cycle_beats": [*PATTERNS["cycle_beats"], 64.0],
                "positions_beats": [*PATTERNS["positions_beats"], [0.0]]}
    names = statistic_names(use_tempo=True, rhythm_patterns=True, pattern_match_count=4)
    assert names[-4:] == tuple(f"pattern_match_excess_ms_{index}" for index in range(4))
    take = _take(1, jitter_ms=6.0)
    values = clip_statistics(take, torch.full_like(take, 0.6), torch.zeros_like(take, dtype=torch.bool), TEMPO,
                             patterns, pattern_matches=True)
    statistics = dict(zip(names, values.tolist()))
    assert len(values) == len(names)
    matches = {index: float(match) for index, _, match in rhythm_pattern_matches(take, TEMPO, patterns)}
    assert sorted(matches) == [0, 1, 2]
    assert statistics["pattern_match_excess_ms_1"] == 0.0  # the triplets it plays
    for index in (0, 2):
        assert statistics[f"pattern_match_excess_ms_{index}"] == pytest.approx(matches[index] - matches[1], abs=1e-4)
        assert statistics[f"pattern_match_excess_ms_{index}"] > 5.0
    assert statistics["pattern_match_excess_ms_3"] == pytest.approx(2 * PATTERN_MATCH_CAP_MS - matches[1], abs=1e-4)
    # The statistics before them are the same as without them; a take of one stroke matches nothing.
    without = clip_statistics(take, torch.full_like(take, 0.6), torch.zeros_like(take, dtype=torch.bool), TEMPO,
                              patterns)
    assert torch.equal(values[:-4], without)
    one = clip_statistics(take[:1], torch.full_like(take[:1], 0.6), torch.zeros(1, dtype=torch.bool), TEMPO,
                          patterns, pattern_matches=True)
    assert one[-4:].eq(0).all()
    with pytest.raises(ValueError, match="rhythm_patterns"):
        clip_statistics(take, torch.ones_like(take), torch.zeros_like(take, dtype=torch.bool), TEMPO, None,
                        pattern_matches=True)


def test_a_config_or_recipe_with_pattern_matches_needs_the_rhythm_patterns(tmp_path):
    from pathlib import Path

    from sousa_hf.adapters.base import LengthPolicy
    from sousa_hf.backbones import build_model
    from sousa_hf.recipe import load_recipe

    settings = dict(backbone_config={"time_pooling": False}, pooling="stroke_statistics", use_tempo=True,
                    pattern_matches=True, length=LengthPolicy(max_seconds=None))
    with pytest.raises(ValueError, match="pattern_matches .* needs rhythm_patterns"):
        build_model("rudiment40", "cnn:tiny", **settings)
    model, _ = build_model("rudiment40", "cnn:tiny", rhythm_patterns=PATTERNS, **settings)
    assert model.config.stroke_statistics[-3:] == [f"pattern_match_excess_ms_{index}" for index in range(3)]
    assert model.stroke_statistics.statistics_mean.numel() == len(statistic_names(True, True, pattern_match_count=3))
    with pytest.raises(SousaDataError, match="pattern_matches.*rhythm_patterns: true"):
        load_recipe(Path(__file__).resolve().parents[1] / "recipes" / "stroke_statistics.yaml",
                    [f"output_dir={tmp_path}", "rhythm_patterns=false", "pattern_matches=true"])


def test_each_stroke_is_measured_from_its_notated_position_early_or_late_as_a_whole_and_drifting():
    steady = _statistics(_take(1))
    assert steady["pattern_mean_abs_ms"] == pytest.approx(0.0, abs=1e-6)
    assert steady["pattern_cycle_beats"] == 1.0 and steady["pattern_strokes_per_beat"] == 3.0
    shaky = _statistics(_take(1, jitter_ms=10.0))
    assert 6.0 < shaky["pattern_mean_abs_ms"] < 10.0 and 8.0 < shaky["pattern_std_ms"] < 12.0  # |N(0, 10)|: 8
    # A take 20 ms late throughout: its grid deviation with a fitted phase sees nothing, its notated positions do.
    late = _statistics(_take(1, late_ms=20.0))
    assert late["grid_mean_abs_ms"] == pytest.approx(0.0, abs=1e-6)
    assert late["pattern_mean_ms"] == pytest.approx(20.0) and late["pattern_mean_abs_ms"] == pytest.approx(20.0)
    rushing = _statistics(_take(0, drift_ms_per_s=-3.0))
    assert rushing["pattern_drift_ms_per_s"] == pytest.approx(-3.0, abs=1e-6)
    # The pattern statistics come last, after the tempo's, and need the tempo.
    assert statistic_names(True, True)[-len(PATTERN_STATISTICS):] == PATTERN_STATISTICS
    without = _statistics(_take(1), patterns=None)
    assert list(without.values()) == pytest.approx(list(steady.values())[: len(without)])
    take = _take(1)
    with pytest.raises(ValueError, match="tempo"):
        clip_statistics(take, torch.ones_like(take), torch.zeros_like(take, dtype=torch.bool), None, PATTERNS)
    one_stroke = _statistics(torch.tensor([10.0]))
    assert all(one_stroke[name] == 0.0 for name in PATTERN_STATISTICS)


def test_the_rhythms_are_learned_from_the_stroke_labels_of_the_training_split(synthetic_dir):
    split = load_sousa(synthetic_dir, split="train", strokes=True)
    patterns = fit_rhythm_patterns(split)
    assert patterns["origin_ms"] == AUDIO_OFFSET_MS["synthetic"]
    learned = set(zip(patterns["cycle_beats"], map(tuple, patterns["positions_beats"])))
    assert len(learned) == len(patterns["cycle_beats"]) > 1  # each rhythm once
    # Each rudiment's sticking pattern (that the synthetic takes are played from) is among them: its main strokes'
    # slots over its slots per beat, in a cycle of its beats.
    for slug in set(split["rudiment_slug"]):
        sticking = sticking_pattern(slug)
        slots = sorted({stroke.slot for stroke in sticking.strokes if stroke.kind != "grace"})
        assert (sticking.beats, tuple(round(slot / sticking.slots_per_beat, 4) for slot in slots)) in learned, slug
    # Every take's main strokes lie on the positions of a learned rhythm laid from its first beat.
    row = split[0]
    strokes = row["strokes"]
    main = ~np.asarray(strokes["is_grace"])
    intended = torch.tensor(np.sort(np.asarray(strokes["intended_ms"])[main]), dtype=torch.float64)
    _, _, match = match_rhythm_pattern(intended + patterns["origin_ms"], row["tempo_bpm"], patterns)
    assert float(match) == pytest.approx(0.0, abs=0.1)  # positions kept to 1e-4 of a beat
    with pytest.raises(SousaDataError, match="strokes=True"):
        fit_rhythm_patterns(load_sousa(synthetic_dir, split="train"))
    with pytest.raises(SousaDataError, match="two or more cycles"):
        fit_rhythm_patterns(split.map(lambda row: {"num_cycles": 1}))
