"""`tier_confidence`: how typical a sample's overall score is of its skill tier.

The Hub configs leave this column out although SOUSA's training guide filters on it
(`tier_confidence > 0.5`), so the suite derives it with the upstream formula:
`exp(-0.5 * ((overall_score - mean_t) / std_t) ** 2)` with the tier's (mean, std) below.
"""

from __future__ import annotations

import numpy as np

from .errors import SousaDataError

SKILL_TIERS: tuple[str, ...] = ("beginner", "intermediate", "advanced", "professional")

# (mean, std) of overall_score per tier, as upstream computes tier_confidence.
TIER_SCORE_STATS: dict[str, tuple[float, float]] = {
    "beginner": (34.3, 6.6),
    "intermediate": (45.7, 10.1),
    "advanced": (61.0, 10.8),
    "professional": (73.5, 10.7),
}


def tier_confidence(overall_score, skill_tier) -> np.ndarray:
    """Vectorised upstream formula over arrays (or scalars) of scores and tier names."""
    scores = np.asarray(overall_score, dtype=np.float64)
    tiers = np.asarray(skill_tier, dtype=object)
    unknown = sorted({str(t) for t in np.unique(tiers) if t not in TIER_SCORE_STATS})
    if unknown:
        raise SousaDataError(
            f"unknown skill_tier value(s) {', '.join(map(repr, unknown))}; expected one of {', '.join(SKILL_TIERS)}"
        )
    means = np.array([TIER_SCORE_STATS[t][0] for t in tiers.ravel()]).reshape(tiers.shape)
    stds = np.array([TIER_SCORE_STATS[t][1] for t in tiers.ravel()]).reshape(tiers.shape)
    return np.exp(-0.5 * ((scores - means) / stds) ** 2)
