"""Exercise-level scores of a simulated performance, computed from its strokes.

Nine formulas are SOUSA's own: `timing_accuracy` is the published one, and the others were
recovered from the real sample (`../shared/sousa-sample`: its stroke table reproduces each score of
all 110 rows to 1e-10). The remaining five could not be pinned down from the sample; they are
stand-ins that depend on the same stroke properties as upstream's (rank correlation 0.9 or more):
`hand_balance`, `flam_quality`, `diddle_quality`, `roll_sustain` and `groove_feel_proxy`.

Exact (stroke arrays over every stroke, grace notes included, unless said otherwise):
- timing_accuracy      = 100 / (1 + exp((mean |timing error| - 25) / 10))
- timing_consistency   = 100 / (1 + exp((std timing error - 15) / 8))
- tempo_stability      = clip(100 - 10000 * |slope - 1|, 0, 100); slope of actual vs intended time
                         over the non-grace strokes (100 points per 1% of tempo drift)
- subdivision_evenness = clip(100 * (1 - std(actual IOI / intended IOI)), 0, 100), strokes in
                         intended order
- velocity_control     = clip(100 - 2 * std(actual velocity), 0, 100)
- accent_differentiation = clip((mean accent velocity - mean tap velocity) / 127 * 160, 0, 80);
                         80 when there are no accents or no taps
- accent_accuracy      = 100 * share of accents louder than the mean stroke; 100 without accents
- weak_hand_index      = 100 * mean |error| of L / (mean |error| of L + of R); 50 when balanced
- overall_score        = .20 timing_accuracy + .15 timing_consistency + .10 tempo_stability
                         + .10 subdivision_evenness + .10 velocity_control + .10 accent_differentiation
                         + .10 accent_accuracy + .15 hand_balance
"""

from __future__ import annotations

import numpy as np

from .performance import Performance

OVERALL_WEIGHTS: dict[str, float] = {
    "timing_accuracy": 0.20,
    "timing_consistency": 0.15,
    "tempo_stability": 0.10,
    "subdivision_evenness": 0.10,
    "velocity_control": 0.10,
    "accent_differentiation": 0.10,
    "accent_accuracy": 0.10,
    "hand_balance": 0.15,
}
NO_DIDDLE_SCORE = 80.0  # upstream's diddle_quality for a roll without diddle strokes
MAX_ACCENT_DIFFERENTIATION = 80.0


def _logistic(value: float, midpoint: float, scale: float) -> float:
    """100 well below `midpoint`, 0 well above it."""
    return float(100.0 / (1.0 + np.exp((value - midpoint) / scale)))


def _clip(value: float) -> float:
    return float(np.clip(value, 0.0, 100.0))


def exercise_scores(perf: Performance, family: str) -> dict[str, float | None]:
    """The 14 score columns of one performance; the three articulation scores are None where the
    rudiment's family has no such articulation (flams: flam; diddles: roll and diddle; rolls: roll)."""
    error = perf.timing_error_ms
    velocity = perf.actual_velocity.astype(np.float64)
    main = ~perf.is_grace

    order = np.argsort(perf.intended_ms, kind="stable")
    intended_ioi = np.diff(perf.intended_ms[order])
    actual_ioi = np.diff(perf.actual_ms[order])
    spaced = intended_ioi > 0
    slope = np.polyfit(perf.intended_ms[main], perf.actual_ms[main], 1)[0] if main.sum() > 1 else 1.0

    accents, taps = perf.kind == "accent", perf.kind == "tap"
    if accents.any() and taps.any():
        gap = velocity[accents].mean() - velocity[taps].mean()
        accent_differentiation = float(np.clip(gap / 127 * 160, 0.0, MAX_ACCENT_DIFFERENTIATION))
    else:
        accent_differentiation = MAX_ACCENT_DIFFERENTIATION
    accent_accuracy = 100.0 * float(np.mean(velocity[accents] > velocity.mean())) if accents.any() else 100.0

    left, right = perf.hand == "L", perf.hand == "R"
    left_error, right_error = np.abs(error[left]).mean(), np.abs(error[right]).mean()

    scores: dict[str, float | None] = {
        "timing_accuracy": _logistic(float(np.abs(error).mean()), 25.0, 10.0),
        "timing_consistency": _logistic(float(error.std()), 15.0, 8.0),
        "tempo_stability": _clip(100.0 - 10_000.0 * abs(slope - 1.0)),
        "subdivision_evenness": _clip(100.0 * (1.0 - float(np.std(actual_ioi[spaced] / intended_ioi[spaced])))),
        "velocity_control": _clip(100.0 - 2.0 * float(velocity.std())),
        "accent_differentiation": accent_differentiation,
        "accent_accuracy": accent_accuracy,
        "hand_balance": _hand_balance(velocity[left].mean(), velocity[right].mean(), float(np.abs(error).mean())),
        "weak_hand_index": float(100.0 * left_error / (left_error + right_error)),
        "flam_quality": _flam_quality(perf) if family == "flam" else None,
        "diddle_quality": _diddle_quality(perf) if family in ("roll", "diddle") else None,
        "roll_sustain": _roll_sustain(velocity[main]) if family == "roll" else None,
    }
    # Stand-in: upstream's 0-1 groove proxy follows the product of these two (correlation 0.94).
    scores["groove_feel_proxy"] = scores["subdivision_evenness"] / 100 * scores["timing_consistency"] / 100
    scores["overall_score"] = float(sum(w * scores[name] for name, w in OVERALL_WEIGHTS.items()))
    return scores


def _hand_balance(left_velocity: float, right_velocity: float, mean_abs_error_ms: float) -> float:
    """Stand-in: 70% left/right loudness ratio, 30% overall timing (upstream's best 2-term fit)."""
    ratio = min(left_velocity, right_velocity) / max(left_velocity, right_velocity)
    return _clip(0.7 * 100.0 * ratio + 0.3 * _logistic(mean_abs_error_ms, 24.0, 12.0))


def _flam_quality(perf: Performance) -> float:
    """Stand-in: flam grace spacing near 25 ms and steady (fit to the sample, mean error 6 points)."""
    graces = perf.is_grace & (perf.kind == "grace")
    spacing = perf.actual_ms[perf.parent_index[graces]] - perf.actual_ms[graces]
    return _clip(_logistic(abs(float(spacing.mean()) - 25.0) + float(spacing.std()), 110.0, 34.7) / 0.96)


def _diddle_quality(perf: Performance) -> float:
    """Stand-in: steadiness of the diddle strokes' timing (fit to the sample, mean error 7 points)."""
    diddles = perf.diddle_position > 0
    if not diddles.any():
        return NO_DIDDLE_SCORE
    return _logistic(float(perf.timing_error_ms[diddles].std()), 95.9, 43.6)


def _roll_sustain(velocity: np.ndarray) -> float:
    """Stand-in: how well the second half of the roll keeps the first half's loudness."""
    half = velocity.size // 2
    return _clip(100.0 - 150.0 * (1.0 - velocity[half:].mean() / velocity[:half].mean()))
