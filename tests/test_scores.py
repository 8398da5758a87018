"""The score formulas against the real sample: its stroke table reproduces its scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sousa_hf import RUDIMENT_FAMILY, load_sousa
from sousa_hf.data.synthetic.performance import Performance, upstream_timing_error
from sousa_hf.data.synthetic.scores import OVERALL_WEIGHTS, exercise_scores

EXACT = ("timing_accuracy", "timing_consistency", "tempo_stability", "subdivision_evenness", "velocity_control",
         "accent_differentiation", "accent_accuracy", "weak_hand_index")


@pytest.fixture(scope="module")
def real(sample_dir):
    labels = pd.concat([split.to_pandas() for split in load_sousa(sample_dir, "labels_only").values()])
    strokes = pd.read_parquet(sample_dir / "auxiliary" / "strokes.parquet")
    return labels.set_index("sample_id"), strokes


def _performance(strokes: pd.DataFrame, tempo_bpm: float) -> Performance:
    strokes = strokes.sort_values("index")
    return Performance(
        hand=strokes.hand.to_numpy(),
        kind=strokes.stroke_type.to_numpy(),
        intended_ms=strokes.intended_time_ms.to_numpy(),
        actual_ms=strokes.actual_time_ms.to_numpy(),
        intended_velocity=strokes.intended_velocity.to_numpy(),
        actual_velocity=strokes.actual_velocity.to_numpy(),
        diddle_position=strokes.diddle_position.fillna(0).astype(int).to_numpy(),
        parent_index=np.where(strokes.is_grace_note, strokes.parent_stroke_index.fillna(-1), -1).astype(int),
        measure=np.zeros(len(strokes), dtype=int),
        beat_ms=60000 / tempo_bpm,
        duration_ms=float(strokes.intended_time_ms.max()),
        timing_error_ms=strokes.timing_error_ms.to_numpy(),
    )


def test_exact_formulas_reproduce_every_real_sample(real):
    labels, strokes = real
    checked = 0
    for sample_id, group in strokes.groupby("sample_id"):
        row = labels.loc[sample_id]
        scores = exercise_scores(_performance(group, row.tempo_bpm), RUDIMENT_FAMILY[row.rudiment_slug])
        for name in EXACT:
            assert scores[name] == pytest.approx(row[name], abs=1e-6), f"{name} of {sample_id}"
        checked += 1
    assert checked == len(labels) == 110


def test_stroke_timing_errors_follow_upstream_definition(real):
    _, strokes = real
    for _, group in strokes.groupby("sample_id"):
        group = group.sort_values("index")
        parent = np.where(group.is_grace_note, group.parent_stroke_index.fillna(-1), -1).astype(int)
        errors = upstream_timing_error(group.actual_time_ms.to_numpy(), group.intended_time_ms.to_numpy(), parent)
        np.testing.assert_allclose(errors, group.timing_error_ms.to_numpy(), atol=1e-9)


def test_overall_score_is_the_weighted_sum(real):
    labels, _ = real
    weighted = sum(weight * labels[name] for name, weight in OVERALL_WEIGHTS.items())
    np.testing.assert_allclose(weighted, labels["overall_score"], atol=1e-9)
    assert sum(OVERALL_WEIGHTS.values()) == pytest.approx(1.0)


def test_synthetic_labels_are_the_formulas_of_its_own_strokes(synthetic_dir):
    labels = pd.concat([split.to_pandas() for split in load_sousa(synthetic_dir, "labels_only").values()])
    strokes = pd.read_parquet(synthetic_dir / "auxiliary" / "strokes.parquet")
    for _, row in labels.iterrows():
        group = strokes[strokes.sample_id == row.sample_id]
        scores = exercise_scores(_performance(group, row.tempo_bpm), RUDIMENT_FAMILY[row.rudiment_slug])
        for name, value in scores.items():
            expected = row[name]
            if value is None:
                assert np.isnan(expected), f"{name} of {row.sample_id} should be null"
            else:
                assert value == pytest.approx(expected, abs=1e-6), f"{name} of {row.sample_id}"


def test_stand_in_scores_rank_samples_like_upstream(real):
    labels, strokes = real
    ours = {name: [] for name in ("hand_balance", "flam_quality", "roll_sustain", "groove_feel_proxy")}
    theirs = {name: [] for name in ours}
    for sample_id, group in strokes.groupby("sample_id"):
        row = labels.loc[sample_id]
        scores = exercise_scores(_performance(group, row.tempo_bpm), RUDIMENT_FAMILY[row.rudiment_slug])
        for name in ours:
            if scores[name] is not None and not np.isnan(row[name]):
                ours[name].append(scores[name])
                theirs[name].append(row[name])
    for name in ours:
        rank_correlation = pd.Series(ours[name]).corr(pd.Series(theirs[name]), method="spearman")
        assert rank_correlation > 0.75, f"{name}: {rank_correlation:.2f}"
