"""Exercise-level scores of a simulated performance, from its stroke errors.

Provisional formulas; replaced by SOUSA's published ones.
"""

from __future__ import annotations

import numpy as np

from .performance import Performance


def _sigmoid_score(value: float, midpoint: float, scale: float) -> float:
    """100 when `value` is well under `midpoint`, 0 well over it; 50 at the midpoint."""
    return float(100.0 / (1.0 + np.exp((value - midpoint) / scale)))


def exercise_scores(perf: Performance, family: str) -> dict[str, float | None]:
    main = ~perf.is_grace
    error = perf.timing_error_ms[main]
    timing_accuracy = _sigmoid_score(float(np.mean(np.abs(error))), 25.0, 10.0)
    timing_consistency = _sigmoid_score(float(np.std(error)), 15.0, 8.0)
    beats = perf.intended_ms[main] / perf.beat_ms
    slope = float(np.polyfit(beats, error, 1)[0]) if beats.size > 2 else 0.0
    tempo_stability = _sigmoid_score(abs(slope), 1.5, 0.5)
    ioi = np.diff(perf.actual_ms[main]) - np.diff(perf.intended_ms[main])
    subdivision_evenness = _sigmoid_score(float(np.std(ioi)), 20.0, 8.0)
    velocity = perf.actual_velocity.astype(np.float64)
    velocity_error = (perf.actual_velocity - perf.intended_velocity)[main]
    velocity_control = _sigmoid_score(float(np.std(velocity_error)), 12.0, 5.0)
    accents, taps = perf.is_accent, main & ~perf.is_accent
    if accents.any() and taps.any():
        gap = velocity[accents].mean() - velocity[taps].mean()
        accent_differentiation = float(np.clip(gap / 55.0 * 80.0, 0.0, 80.0))
        accent_accuracy = float(100.0 * np.mean(velocity[accents] > velocity[taps].mean()))
    else:
        accent_differentiation, accent_accuracy = 80.0, 100.0
    right, left = main & (perf.hand == "R"), main & (perf.hand == "L")
    mean_r, mean_l = velocity[right].mean(), velocity[left].mean()
    hand_balance = float(100.0 * min(mean_r, mean_l) / max(mean_r, mean_l))
    weak_hand_index = float(np.clip(50.0 + (mean_r - mean_l) / 2.0, 0.0, 100.0))
    flam_quality = diddle_quality = roll_sustain = None
    if family == "flam":
        spacing = perf.actual_ms[perf.parent_index[perf.is_grace]] - perf.actual_ms[perf.is_grace]
        flam_quality = _sigmoid_score(float(np.mean(np.abs(spacing - 25.0))), 20.0, 6.0)
    if family in ("roll", "diddle"):
        first, second = perf.diddle_position == 1, perf.diddle_position == 2
        if second.any():
            ratio = velocity[second].mean() / velocity[first].mean()
            diddle_quality = float(np.clip(100.0 * ratio, 0.0, 100.0))
        else:
            diddle_quality = velocity_control
    if family == "roll":
        halves = np.array_split(velocity[main], 2)
        roll_sustain = float(np.clip(100.0 * halves[1].mean() / halves[0].mean(), 0.0, 100.0))
    groove_feel_proxy = float(np.clip(timing_consistency / 100.0 * subdivision_evenness / 100.0, 0.0, 1.0))
    parts = [timing_accuracy, timing_consistency, tempo_stability, subdivision_evenness, velocity_control,
             accent_differentiation / 0.8, hand_balance]
    overall_score = float(np.mean(parts))
    return {
        "timing_accuracy": timing_accuracy,
        "timing_consistency": timing_consistency,
        "tempo_stability": tempo_stability,
        "subdivision_evenness": subdivision_evenness,
        "velocity_control": velocity_control,
        "accent_differentiation": accent_differentiation,
        "accent_accuracy": accent_accuracy,
        "hand_balance": hand_balance,
        "weak_hand_index": weak_hand_index,
        "flam_quality": flam_quality,
        "diddle_quality": diddle_quality,
        "roll_sustain": roll_sustain,
        "groove_feel_proxy": groove_feel_proxy,
        "overall_score": overall_score,
    }
