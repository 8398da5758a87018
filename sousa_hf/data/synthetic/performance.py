"""Simulated players and their performances of a rudiment, stroke by stroke.

A player profile draws its error scales from its skill tier; the tiers overlap (as SOUSA's do) but
timing, velocity and hand-balance errors shrink with skill, so the tier is audible in the clip.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np

from ..rudiments import StickingPattern

# Per tier, calibrated so that each tier's mean scores land near the real sample's (overall_score
# 32 / 49 / 63 / 73 there, 33 / 51 / 66 / 77 here over 400 clips): timing jitter std (ms), tempo
# drift (fraction of the tempo; 1% drift is a tempo_stability of 0), velocity jitter std (MIDI
# units), weak-hand velocity ratio and lag (ms), flam grace spacing mean and std (ms), second
# diddle stroke velocity ratio, accent contrast (share of the accent-tap gap kept) and fatigue
# (share of velocity lost by the end of the clip).
TIER_PARAMETERS: dict[str, dict[str, float]] = {
    "beginner": dict(timing_std_ms=60.0, drift_fraction=0.014, velocity_std=14.0, weak_hand_ratio=0.72,
                     weak_hand_lag_ms=15.0, flam_spacing_ms=60.0, flam_spacing_std=30.0, diddle_ratio=0.75,
                     accent_contrast=0.6, fatigue=0.45),
    "intermediate": dict(timing_std_ms=36.0, drift_fraction=0.007, velocity_std=10.0, weak_hand_ratio=0.82,
                         weak_hand_lag_ms=8.0, flam_spacing_ms=38.0, flam_spacing_std=10.0, diddle_ratio=0.82,
                         accent_contrast=0.75, fatigue=0.28),
    "advanced": dict(timing_std_ms=20.0, drift_fraction=0.005, velocity_std=7.0, weak_hand_ratio=0.9,
                     weak_hand_lag_ms=4.0, flam_spacing_ms=30.0, flam_spacing_std=4.0, diddle_ratio=0.9,
                     accent_contrast=0.9, fatigue=0.09),
    "professional": dict(timing_std_ms=11.0, drift_fraction=0.0026, velocity_std=4.0, weak_hand_ratio=0.95,
                         weak_hand_lag_ms=2.0, flam_spacing_ms=26.0, flam_spacing_std=2.0, diddle_ratio=0.95,
                         accent_contrast=1.0, fatigue=0.05),
}
# Parameters that are ratios near 1 get a small jitter; all others (error sizes) scale together.
_RATIO_PARAMETERS = ("weak_hand_ratio", "diddle_ratio", "accent_contrast")
# Tempo ranges overlap as in the real sample (beginners there play 70-173 BPM), so the tempo alone
# does not give the tier away.
TIER_TEMPO_BPM: dict[str, tuple[int, int]] = {
    "beginner": (65, 175), "intermediate": (65, 175), "advanced": (80, 170), "professional": (80, 180),
}
TIER_ABBREVIATION = {"beginner": "beg", "intermediate": "int", "advanced": "adv", "professional": "pro"}

# Intended MIDI velocities per stroke kind, as the real stroke table records them.
INTENDED_VELOCITY = {"accent": 120, "tap": 65, "diddle": 75, "grace": 40, "buzz": 70}
BUZZ_BOUNCES = 5
GRACE_SPACING_MS = 30.0  # the reference spacing of grace notes in upstream's stroke errors


@dataclass(frozen=True)
class PlayerProfile:
    profile_id: str
    name: str  # e.g. "adv002", the prefix of the profile's sample ids
    tier: str
    dominant_hand: str
    tempo_bpm: int
    parameters: dict[str, float]

    @classmethod
    def random(cls, tier: str, index: int, rng: np.random.Generator) -> PlayerProfile:
        # Each profile scales its tier's error sizes by its own factor, so tiers overlap at the edges.
        spread = float(rng.lognormal(0.0, 0.2))
        base = TIER_PARAMETERS[tier]
        parameters = {
            key: (float(np.clip(value + rng.normal(0, 0.03), 0.3, 1.0)) if key in _RATIO_PARAMETERS
                  else value * spread)
            for key, value in base.items()
        }
        low, high = TIER_TEMPO_BPM[tier]
        return cls(
            profile_id=str(uuid.UUID(bytes=rng.bytes(16), version=4)),
            name=f"{TIER_ABBREVIATION[tier]}{index:03d}",
            tier=tier,
            dominant_hand="left" if rng.random() < 0.1 else "right",
            tempo_bpm=int(rng.integers(low, high + 1)),
            parameters=parameters,
        )


@dataclass
class Performance:
    """Stroke arrays of one performance (all the same length, in playing order)."""

    hand: np.ndarray  # "R"/"L"
    kind: np.ndarray  # accent, tap, diddle, grace, buzz
    intended_ms: np.ndarray
    actual_ms: np.ndarray
    intended_velocity: np.ndarray
    actual_velocity: np.ndarray
    diddle_position: np.ndarray  # 0 when not a diddle
    parent_index: np.ndarray  # for grace notes and buzz bounces: index of their main stroke, else -1
    measure: np.ndarray  # cycle index
    beat_ms: float
    duration_ms: float
    timing_error_ms: np.ndarray = None  # upstream's definition; see `upstream_timing_error`

    def __post_init__(self):
        if self.timing_error_ms is None:
            self.timing_error_ms = upstream_timing_error(self.actual_ms, self.intended_ms, self.parent_index)

    @property
    def flam_spacing_ms(self) -> np.ndarray:
        """Time from each grace note (or bounce) to its main stroke; NaN for main strokes."""
        parents = np.maximum(self.parent_index, 0)
        return np.where(self.is_grace, self.actual_ms[parents] - self.actual_ms, np.nan)

    @property
    def is_grace(self) -> np.ndarray:
        return self.parent_index >= 0

    @property
    def is_accent(self) -> np.ndarray:
        return self.kind == "accent"


def perform(profile: PlayerProfile, pattern: StickingPattern, num_cycles: int,
            rng: np.random.Generator) -> Performance:
    """Play `num_cycles` cycles of a sticking pattern with the profile's errors."""
    p = profile.parameters
    beat_ms = 60000.0 / profile.tempo_bpm
    slot_ms = beat_ms / pattern.slots_per_beat
    weak = "L" if profile.dominant_hand == "right" else "R"
    # Each performance rushes or drags by its own amount around the profile's drift.
    drift = p["drift_fraction"] * abs(rng.normal(1.0, 0.5)) * rng.choice((-1.0, 1.0))
    duration_ms = num_cycles * pattern.slots * slot_ms
    columns: dict[str, list] = {k: [] for k in ("hand", "kind", "intended", "actual", "velocity", "played",
                                                 "diddle", "parent", "measure")}

    def add(hand, kind, intended, actual, velocity, played, diddle=0, parent=-1, measure=0):
        for key, value in zip(columns, (hand, kind, intended, actual, velocity, played, diddle, parent, measure)):
            columns[key].append(value)

    for cycle in range(num_cycles):
        cycle_start = cycle * pattern.slots * slot_ms
        for stroke in pattern.strokes:
            if stroke.kind == "grace":
                continue
            intended = cycle_start + stroke.slot * slot_ms
            lag = p["weak_hand_lag_ms"] if stroke.hand == weak else 0.0
            actual = intended * (1.0 + drift) + rng.normal(0.0, p["timing_std_ms"]) + lag
            velocity = INTENDED_VELOCITY[stroke.kind]
            played = _played_velocity(stroke.kind, velocity, p, stroke.hand == weak, stroke.diddle_position, rng)
            played *= 1.0 - p["fatigue"] * intended / duration_ms
            graces = [s for s in pattern.strokes if s.kind == "grace" and s.slot == stroke.slot]
            main_index = len(columns["hand"]) + len(graces)
            for grace in sorted(graces, key=lambda s: -s.grace_rank):
                spacing = max(5.0, rng.normal(p["flam_spacing_ms"], p["flam_spacing_std"])) * grace.grace_rank
                grace_played = _played_velocity("grace", 40, p, grace.hand == weak, 0, rng)
                add(grace.hand, "grace", intended - 30.0 * grace.grace_rank, actual - spacing, 40, grace_played,
                    parent=main_index, measure=cycle)
            add(stroke.hand, stroke.kind, intended, actual, velocity, played, stroke.diddle_position, -1, cycle)
            if stroke.kind == "buzz":
                bounce_ms = min(slot_ms / (BUZZ_BOUNCES + 1), 25.0)
                for bounce in range(1, BUZZ_BOUNCES + 1):
                    add(stroke.hand, "buzz", intended + bounce * bounce_ms, actual + bounce * bounce_ms,
                        int(velocity * 0.85**bounce), played * 0.85**bounce, parent=main_index, measure=cycle)

    return Performance(
        hand=np.array(columns["hand"]),
        kind=np.array(columns["kind"]),
        intended_ms=np.array(columns["intended"], dtype=np.float64),
        actual_ms=np.array(columns["actual"], dtype=np.float64),
        intended_velocity=np.array(columns["velocity"], dtype=np.int64),
        actual_velocity=np.clip(np.rint(columns["played"]), 1, 127).astype(np.int64),
        diddle_position=np.array(columns["diddle"], dtype=np.int64),
        parent_index=np.array(columns["parent"], dtype=np.int64),
        measure=np.array(columns["measure"], dtype=np.int64),
        beat_ms=beat_ms,
        duration_ms=duration_ms,
    )


def upstream_timing_error(actual_ms: np.ndarray, intended_ms: np.ndarray, parent_index: np.ndarray) -> np.ndarray:
    """Timing error as SOUSA's stroke table defines it (and its scores use it).

    A main stroke's error is actual - intended time. A grace note's (and a buzz bounce's) is its
    spacing before its main stroke minus 30 ms, as the real stroke table records it.
    """
    parents = np.maximum(parent_index, 0)
    spacing = actual_ms[parents] - actual_ms
    return np.where(parent_index >= 0, spacing - GRACE_SPACING_MS, actual_ms - intended_ms)


def _played_velocity(kind: str, intended: int, p: dict[str, float], weak_hand: bool, diddle_position: int,
                     rng: np.random.Generator) -> float:
    velocity = float(intended)
    if kind == "accent":  # less skilled players flatten the accent towards the taps
        velocity = INTENDED_VELOCITY["tap"] + p["accent_contrast"] * (intended - INTENDED_VELOCITY["tap"])
    if diddle_position == 2:
        velocity *= p["diddle_ratio"]
    if weak_hand:
        velocity *= p["weak_hand_ratio"]
    return velocity + rng.normal(0.0, p["velocity_std"])

