"""A clip described by its strokes: per-clip statistics of onset times and velocities, for a small head to score.

SOUSA's clip scores are made of stroke timing and velocity errors, so a model that has found the strokes
(a stroke head's peaks) can score the clip from a few dozen numbers about them: how even the intervals
are (log inter-onset intervals, second differences of the onset times), how far strokes lie from the
metronome grid when the tempo is known (at the subdivision that fits the rudiment best, and the drift
of that deviation over the take), how loud and how even the strokes are (velocity percentiles, spread,
accent contrast, alternation between odd and even strokes: a hand-balance proxy), how many grace
notes and close pairs (flams, drags, diddles) there are and how they are spaced, and the rudiment's pattern:
the autocorrelation of the velocities and intervals over a few strokes and, with the tempo, where in the
beat and in two beats the strokes and the accents fall. With rhythm patterns (the notated positions of the
rudiments' main strokes, learned from stroke labels: `sousa_hf.data.rhythm_patterns`), the take is matched to
the pattern it plays best, laid from its first beat at the tempo, and each main stroke's distance from its
notated position gives the timing errors SOUSA's scores are made of (`_pattern_statistics`). With pattern evidence
(`pattern_evidence`), the stroke head's onset probability is read at each notated position too: how sure the model is
that each notated stroke is there, and where and how loud the strokes it heard below its threshold were
(`_evidence_statistics`): a stroke it missed still tells the timing and the velocity of the take. With pattern
matches (`pattern_matches`), how much worse than the best each pattern matches the take: which rudiment's rhythm
it is, and which ones it could be.

Imports only torch, so it travels as remote code beside `modeling_sousa.py`. `clip_strokes` (peaks of the onset
probability, `pick_onsets`, and the strokes of each peak's cluster) is the decoding every stroke reader in the
suite uses.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

# A rudiment is a pattern: which strokes are accented (the velocity's autocorrelation over 1-8 strokes), how the
# intervals repeat (over 1-4), and, with the tempo, where in the beat and in two beats the strokes and the
# accents fall (`_rhythm_statistics`).
VELOCITY_LAGS = tuple(range(1, 9))
IOI_LAGS = tuple(range(1, 5))
RHYTHM_HARMONICS = (("beat", 1, (1, 2, 3, 4, 6)), ("two_beat", 2, (1, 2, 3)))  # (name, beats a cycle, harmonics)
# Statistics of every clip, then those that need the metronome's tempo (`use_tempo`).
STATISTICS = (
    "strokes", "strokes_per_second", "grace_fraction",
    "ioi_median_ms", "ioi_log_std", "ioi_log_mad", "ioi_log_p90",
    "second_difference_mean_abs", "second_difference_std", "second_difference_p90", "second_difference_median_abs",
    "close_pair_fraction", "close_pair_mean_ms", "close_pair_std_ms",
    "velocity_mean", "velocity_std", "velocity_cv", "velocity_p10", "velocity_p25", "velocity_p50", "velocity_p75",
    "velocity_p90", "accent_contrast", "velocity_step_std", "velocity_alternation", "ioi_alternation",
    "grace_velocity_mean",
    *(f"velocity_autocorrelation_{lag}" for lag in VELOCITY_LAGS), *(f"ioi_autocorrelation_{lag}" for lag in IOI_LAGS),
)
TEMPO_STATISTICS = (
    "ioi_median_beats", "grid_subdivision",
    "grid_mean_abs_ms", "grid_std_ms", "grid_p90_ms", "grid_median_abs_ms", "grid_drift_ms_per_s",
    "grid_detrended_mean_abs_ms",
    "sixteenth_mean_abs_ms", "sixteenth_std_ms", "sixteenth_p90_ms", "sixteenth_median_abs_ms",
    *(f"{cycle}_{weight}_harmonic_{k}" for cycle, _, harmonics in RHYTHM_HARMONICS for k in harmonics
      for weight in ("onset", "accent")),
    "grace_per_beat",
)
# Statistics against the best-matching rhythm pattern (`rhythm_patterns`; they need the tempo too).
PATTERN_STATISTICS = (
    "pattern_match_ms", "pattern_mean_abs_ms", "pattern_std_ms", "pattern_median_abs_ms", "pattern_mean_ms",
    "pattern_p90_ms", "pattern_drift_ms_per_s", "pattern_cycle_beats", "pattern_strokes_per_beat",
)
# The stroke head's onset probability at each notated position of the best-matching pattern (`pattern_evidence`;
# they need the rhythm patterns): the probability's peak near each position (mean, 10th percentile, the fractions of
# positions below one half and one fifth, and without a found stroke near them), then, where the peak reaches
# `EVIDENCE_FLOOR`, its signed distance from the position (mean absolute value, spread, 90th percentile, median
# absolute value, mean, and the mean absolute value weighted by the peaks), the velocity read there (mean, spread,
# 10th and 90th percentiles, mean step between positions) and the fraction of positions that have such a peak.
EVIDENCE_STATISTICS = (
    "evidence_mean", "evidence_p10", "evidence_below_half", "evidence_below_fifth", "evidence_unfound",
    "evidence_mean_abs_ms", "evidence_std_ms", "evidence_p90_ms", "evidence_median_abs_ms", "evidence_mean_ms",
    "evidence_weighted_abs_ms", "evidence_velocity_mean", "evidence_velocity_std", "evidence_velocity_p10",
    "evidence_velocity_p90", "evidence_velocity_step", "evidence_coverage",
)
# How much worse each rhythm pattern matches a take than the best one (`pattern_matches`; they need the patterns),
# one statistic per pattern, in the order of `rhythm_patterns`: 0 for the best, up to twice PATTERN_MATCH_CAP_MS.
PATTERN_MATCH_PREFIX = "pattern_match_excess_ms_"
EVIDENCE_WINDOW_MS = 25.0  # a notated position's evidence: the onset probability's peak this near it
EVIDENCE_FLOOR = 0.05  # a peak below this near a notated position (within PATTERN_MATCH_CAP_MS) is no stroke at all
# A stroke or notated position further than this from the nearest of the other counts as this far when patterns
# are matched: a missed or an extra stroke costs the same in every pattern rather than deciding the match.
PATTERN_MATCH_CAP_MS = 40.0
SUBDIVISIONS = (1, 2, 3, 4, 6, 8)  # grid positions per beat tried for a rudiment's pattern
CLOSE_PAIR_MS = 45.0  # strokes closer than this are one gesture: a flam, a drag, a diddle at speed


def statistic_names(use_tempo: bool, rhythm_patterns: bool = False, pattern_evidence: bool = False,
                    pattern_match_count: int = 0) -> tuple[str, ...]:
    """The statistics `clip_statistics` computes, in order; `pattern_match_count`: how many patterns' match
    excesses come last (the number of rhythm patterns with `pattern_matches` on, else 0)."""
    names = STATISTICS + TEMPO_STATISTICS if use_tempo else STATISTICS
    names = names + PATTERN_STATISTICS if rhythm_patterns else names
    names = names + EVIDENCE_STATISTICS if pattern_evidence else names
    return names + tuple(f"{PATTERN_MATCH_PREFIX}{index}" for index in range(pattern_match_count))


class FrameCurves(NamedTuple):
    """A stroke head's per-frame outputs over a take: the onset probability and the velocity (0-1) of each frame,
    frames `frame_ms` apart from the take's start."""
    onset_probability: torch.Tensor
    velocity: torch.Tensor
    frame_ms: float

    @classmethod
    def from_logits(cls, stroke_logits: torch.Tensor, frame_ms: float) -> FrameCurves:
        """From a stroke head's `(frames, outputs)` logits (real frames only)."""
        return cls(stroke_logits[:, 0].double().sigmoid(), stroke_logits[:, 1].double().sigmoid(), frame_ms)


def pick_onsets(onset_probability: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Peaks of one clip's per-frame onset probability `(frames,)` at or above `threshold`:
    `(frame indices, positions in frames refined by a parabola through each peak and its neighbours)`."""
    onset = onset_probability.double()
    padded = torch.cat([onset.new_zeros(1), onset, onset.new_zeros(1)])
    peaks = torch.nonzero((onset >= threshold) & (onset >= padded[:-2]) & (onset > padded[2:])).flatten()
    left, right = padded[peaks], padded[peaks + 2]
    curvature = left - 2 * onset[peaks] + right
    concave = curvature < 0
    shift = torch.where(concave, 0.5 * (left - right) / torch.where(concave, curvature, torch.ones_like(curvature)),
                        torch.zeros_like(curvature))
    return peaks, peaks + shift.clamp(-0.5, 0.5)


def clip_strokes(stroke_logits: torch.Tensor, threshold: float) -> dict[str, torch.Tensor]:
    """One clip's strokes from its stroke head's `(frames, outputs)` logits (real frames only):
    `{"position" (frames), "velocity" (0-1), "is_grace", "confidence"}` in time order.

    Each peak of the onset probability (`pick_onsets`) is a stroke. A head with cluster outputs (five: a model
    with `stroke_cluster_ms`) marks only a cluster's first stroke with a peak; the peak's own outputs say how many
    strokes follow it (the Poisson rate, rounded) and how far apart (frames), and each of those strokes reads its
    velocity and grace flag at its own nearest frame, its confidence being the peak's.
    """
    logits = stroke_logits.double()
    onset = logits[:, 0].sigmoid()
    at, positions = pick_onsets(onset, threshold)
    confidence = onset[at]
    if logits.shape[1] > 3 and len(at):
        # exp(9) ~ 8,100 strokes: far past any cluster, and no overflow from an untrained head.
        repeats = logits[at, 3].clamp(max=9.0).exp().round().long() + 1  # the peak's stroke and its followers
        spacing = nn.functional.softplus(logits[at, 4])
        step = torch.arange(int(repeats.sum())) - torch.repeat_interleave(repeats.cumsum(0) - repeats, repeats)
        positions = torch.repeat_interleave(positions, repeats) + step * torch.repeat_interleave(spacing, repeats)
        at = torch.where(step == 0, torch.repeat_interleave(at, repeats), positions.round().long())
        confidence = torch.repeat_interleave(confidence, repeats)
        keep = positions <= len(onset) - 1
        order = positions[keep].argsort(stable=True)
        at, positions = at[keep][order].clamp(0, len(onset) - 1), positions[keep][order]
        confidence = confidence[keep][order]
    return {"position": positions, "velocity": logits[at, 1].sigmoid(), "is_grace": logits[at, 2] > 0,
            "confidence": confidence}


def _spread(values: torch.Tensor) -> list[torch.Tensor]:
    """Mean absolute value, standard deviation, 90th percentile of the absolute value, median absolute value."""
    if values.numel() == 0:
        return [values.new_zeros(())] * 4
    magnitude = values.abs()
    return [magnitude.mean(), values.std(unbiased=False), torch.quantile(magnitude, 0.9), magnitude.median()]


def fitted_grid_deviation(times_ms: torch.Tensor, tempo_bpm: float, subdivision: int) -> tuple[torch.Tensor, float]:
    """Each time's signed distance (ms) from the nearest grid position, the grid's phase fitted to the times."""
    step = 60_000.0 / tempo_bpm / subdivision
    angles = 2 * math.pi * times_ms / step
    phase = torch.atan2(angles.sin().mean(), angles.cos().mean()) / (2 * math.pi) * step
    offsets = times_ms - phase
    return offsets - torch.round(offsets / step) * step, step


def clip_statistics(time_ms: torch.Tensor, velocity: torch.Tensor, is_grace: torch.Tensor,
                    tempo_bpm: float | None = None, rhythm_patterns: dict | None = None,
                    frame_curves: FrameCurves | None = None, pattern_matches: bool = False) -> torch.Tensor:
    """One clip's statistics (`statistic_names(tempo_bpm is not None, rhythm_patterns is not None, frame_curves is
    not None, pattern_matches and len(rhythm_patterns["cycle_beats"]))`, in that order) from its strokes.

    Args:
        time_ms: the strokes' onset times (any order), from the start of the take.
        velocity: their velocities on 0-1.
        is_grace: whether each is a grace note (grace notes are left out of the interval and grid statistics).
        tempo_bpm: the metronome's tempo; adds the grid statistics.
        rhythm_patterns: the notated rhythms to match the take to (`sousa_hf.data.rhythm_patterns`; needs the
            tempo); adds the statistics against the best match (`PATTERN_STATISTICS`).
        frame_curves: the stroke head's onset probability and velocity per frame over the take the strokes were
            found in (needs the patterns); adds their statistics at the best match's positions
            (`EVIDENCE_STATISTICS`).
        pattern_matches: add how much worse than the best each of the patterns matches (needs the patterns).
    """
    time_ms, velocity = time_ms.double().flatten(), velocity.double().flatten()
    is_grace = is_grace.bool().flatten()
    order = torch.argsort(time_ms)
    time_ms, velocity, is_grace = time_ms[order], velocity[order], is_grace[order]
    zero = time_ms.new_zeros(())
    count = time_ms.numel()
    span = (time_ms[-1] - time_ms[0]).clamp(min=1.0) if count > 1 else time_ms.new_ones(())
    main_times, main_velocities = time_ms[~is_grace], velocity[~is_grace]
    intervals = main_times.diff() if main_times.numel() > 1 else time_ms.new_zeros(1)
    median = intervals.median().clamp(min=1.0)
    log_ratio = torch.log(intervals.clamp(min=1.0) / median)
    second = (main_times[2:] - 2 * main_times[1:-1] + main_times[:-2]) if main_times.numel() > 2 else zero[None][:0]
    gaps = time_ms.diff() if count > 1 else zero[None][:0]
    close = gaps[gaps < CLOSE_PAIR_MS]
    values = [time_ms.new_tensor(float(count)), count / span * 1000.0, is_grace.double().mean() if count else zero,
              median, log_ratio.std(unbiased=False), log_ratio.abs().median(), torch.quantile(log_ratio.abs(), 0.9),
              *_spread(second),
              close.numel() / max(count, 1) + zero, close.mean() if close.numel() else zero,
              close.std(unbiased=False) if close.numel() else zero]
    if main_velocities.numel():
        quantiles = torch.quantile(main_velocities, main_velocities.new_tensor([0.1, 0.25, 0.5, 0.75, 0.9]))
        mean, std = main_velocities.mean(), main_velocities.std(unbiased=False)
        steps = main_velocities.diff()
        alternating = main_velocities.numel() > 1
        values += [mean, std, std / mean.clamp(min=1e-3), *quantiles, quantiles[4] - quantiles[2],
                   steps.std(unbiased=False) if alternating else zero,
                   (main_velocities[::2].mean() - main_velocities[1::2].mean()).abs() if alternating else zero,
                   (intervals[::2].mean() - intervals[1::2].mean()).abs() / median if intervals.numel() > 1 else zero]
    else:
        values += [zero] * 12
    values.append(velocity[is_grace].mean() if is_grace.any() else zero)
    values += _autocorrelations(main_velocities, VELOCITY_LAGS) + _autocorrelations(log_ratio, IOI_LAGS)
    if tempo_bpm is not None:
        if tempo_bpm <= 0:
            raise ValueError(f"tempo must be positive, got {tempo_bpm}")
        values += _grid_statistics(main_times, float(tempo_bpm), median)
        values += _rhythm_statistics(main_times, main_velocities, float(tempo_bpm))
        values.append(is_grace.sum() / span * 60_000.0 / tempo_bpm if count > 1 else zero)
    if rhythm_patterns is not None:
        if tempo_bpm is None:
            raise ValueError("rhythm patterns are laid at the tempo: pass tempo_bpm with rhythm_patterns")
        matches, match = [], None  # one stroke matches every rhythm alike
        if main_times.numel() > 1:
            matches = rhythm_pattern_matches(main_times, float(tempo_bpm), rhythm_patterns)
            match = _best_match(matches)
        values += _pattern_statistics(main_times, match, rhythm_patterns)
    if frame_curves is not None:
        if rhythm_patterns is None:
            raise ValueError("pattern evidence is read at the notated positions: pass rhythm_patterns with "
                             "frame_curves")
        values += _evidence_statistics(None if match is None else match[1], time_ms, frame_curves)
    if pattern_matches:
        if rhythm_patterns is None:
            raise ValueError("pattern matches compare the rhythm patterns: pass rhythm_patterns with pattern_matches")
        values += _match_excesses(matches, match, len(rhythm_patterns["cycle_beats"]), zero)
    return torch.stack([torch.as_tensor(v, dtype=torch.float64) for v in values]).float()


def _autocorrelations(values: torch.Tensor, lags: tuple[int, ...]) -> list[torch.Tensor]:
    """The autocorrelation of a sequence (its mean removed) at each lag, 0 where it is shorter than the lag."""
    centred = values - values.mean() if values.numel() else values
    energy = centred.pow(2).sum() + 1e-9
    zero = values.new_zeros(())
    return [(centred[:-lag] * centred[lag:]).sum() / energy if centred.numel() > lag else zero for lag in lags]


def _rhythm_statistics(times_ms: torch.Tensor, velocity: torch.Tensor, tempo_bpm: float) -> list[torch.Tensor]:
    """Where in the beat's (and two beats') cycle the strokes fall, whatever the take's phase: for each harmonic
    k of `RHYTHM_HARMONICS`, the length of the mean of exp(2 pi i k t / cycle) over the strokes (1: all at one
    position of the cycle; e.g. even sixteenths cancel at k=1, 2, 3 and add up at k=4), then the same weighted by
    velocity (where the accents fall)."""
    beat = 60_000.0 / tempo_bpm
    each = torch.full_like(velocity, 1.0 / max(velocity.numel(), 1))
    accent = velocity / velocity.sum().clamp(min=1e-9)
    values = []
    for _, beats, harmonics in RHYTHM_HARMONICS:
        angle = 2 * math.pi * times_ms / (beat * beats)
        for k in harmonics:
            phasor = torch.polar(torch.ones_like(angle), k * angle)
            values += [(each * phasor).sum().abs(), (accent * phasor).sum().abs()]
    return values


def _grid_statistics(times_ms: torch.Tensor, tempo_bpm: float, median_interval: torch.Tensor) -> list:
    zero = times_ms.new_zeros(())
    if times_ms.numel() == 0:
        return [median_interval * tempo_bpm / 60_000.0] + [zero] * 11
    best = None
    for subdivision in SUBDIVISIONS:
        deviation, step = fitted_grid_deviation(times_ms, tempo_bpm, subdivision)
        spread = _spread(deviation)
        if best is None or spread[0] / step < best[0]:
            best = (spread[0] / step, subdivision, spread, deviation)
    _, subdivision, spread, deviation = best
    drift, detrended = zero, zero
    if times_ms.numel() > 3:  # a least-squares line through the deviations over time (seconds)
        seconds = times_ms / 1000.0
        centred = seconds - seconds.mean()
        drift = (centred * (deviation - deviation.mean())).sum() / centred.pow(2).sum().clamp(min=1e-9)
        detrended = (deviation - deviation.mean() - drift * centred).abs().mean()
    sixteenth, _ = fitted_grid_deviation(times_ms, tempo_bpm, 4)
    return [median_interval * tempo_bpm / 60_000.0, zero + subdivision, *spread, drift, detrended,
            *_spread(sixteenth)]


def pattern_positions_ms(cycle_beats: float, positions_beats: list[float], tempo_bpm: float, until_ms: float,
                         origin_ms: float = 0.0) -> torch.Tensor:
    """Where a rhythm pattern's strokes fall (ms from the take's start, ascending, up to `until_ms`): its positions
    in each cycle of `cycle_beats` beats, repeated from the first beat at `origin_ms`."""
    beat = 60_000.0 / tempo_bpm
    cycles = torch.arange(int(max(until_ms - origin_ms, 0.0) // (cycle_beats * beat)) + 2, dtype=torch.float64)
    positions = torch.as_tensor(positions_beats, dtype=torch.float64)
    grid = ((cycles[:, None] * cycle_beats + positions[None]).flatten() * beat + origin_ms).sort().values
    return grid[grid <= until_ms]


def _nearest(values: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """The element of the ascending `grid` (two or more) nearest each value."""
    right = torch.searchsorted(grid, values).clamp(1, len(grid) - 1)
    left = right - 1
    return torch.where((values - grid[left]).abs() <= (grid[right] - values).abs(), grid[left], grid[right])


def rhythm_pattern_matches(times_ms: torch.Tensor, tempo_bpm: float, rhythm_patterns: dict
                           ) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
    """How well a take's main strokes (ascending, two or more) play each pattern of `rhythm_patterns`: `(its index,
    its positions up to the last stroke (ms), the match (ms))` for every pattern with two positions within the take.

    The match is a symmetric distance: the mean distance of each stroke to the nearest notated position plus that
    of each notated position to the nearest stroke, each capped at `PATTERN_MATCH_CAP_MS`. The first term alone
    would pick the densest pattern; the second alone, the sparsest.
    """
    until = float(times_ms[-1]) + PATTERN_MATCH_CAP_MS
    matches = []
    for index, (cycle, positions) in enumerate(zip(rhythm_patterns["cycle_beats"], rhythm_patterns["positions_beats"])):
        grid = pattern_positions_ms(cycle, positions, tempo_bpm, until, rhythm_patterns["origin_ms"])
        if len(grid) < 2:
            continue
        match = ((times_ms - _nearest(times_ms, grid)).abs().clamp(max=PATTERN_MATCH_CAP_MS).mean()
                 + (grid - _nearest(grid, times_ms)).abs().clamp(max=PATTERN_MATCH_CAP_MS).mean())
        matches.append((index, grid, match))
    return matches


def match_rhythm_pattern(times_ms: torch.Tensor, tempo_bpm: float, rhythm_patterns: dict
                         ) -> tuple[int, torch.Tensor, torch.Tensor]:
    """The pattern of `rhythm_patterns` that a take's main strokes (ascending, two or more) play best: `(its index,
    its positions up to the last stroke (ms), how well it matches (ms))` (`rhythm_pattern_matches`)."""
    return _best_match(rhythm_pattern_matches(times_ms, tempo_bpm, rhythm_patterns))


def _best_match(matches: list[tuple[int, torch.Tensor, torch.Tensor]]) -> tuple[int, torch.Tensor, torch.Tensor]:
    if not matches:
        raise ValueError("no rhythm pattern has two positions within the take: are the patterns empty?")
    return min(matches, key=lambda candidate: float(candidate[2]))


def _match_excesses(matches: list, best: tuple | None, count: int, zero: torch.Tensor) -> list[torch.Tensor]:
    """How much worse than `best` each of `count` patterns matches (`rhythm_pattern_matches`' answer); a pattern
    with no two positions within the take, the worst a match can be. All 0 for a take of fewer than two strokes."""
    if best is None:
        return [zero] * count
    excess = [zero + 2 * PATTERN_MATCH_CAP_MS - best[2]] * count
    for index, _, match in matches:
        excess[index] = match - best[2]
    return excess


def _pattern_statistics(times_ms: torch.Tensor, match: tuple | None, rhythm_patterns: dict) -> list[torch.Tensor]:
    """Each main stroke's signed distance from the nearest notated position of the best-matching pattern (`match`:
    `match_rhythm_pattern`'s answer for these strokes, None for fewer than two): the match, the distances' mean
    absolute value, spread, median absolute value, mean (early or late as a whole), 90th percentile and drift (a
    least-squares line over time, ms per second), and the pattern's cycle (beats) and strokes per beat."""
    zero = times_ms.new_zeros(())
    if match is None:
        return [zero] * len(PATTERN_STATISTICS)
    index, grid, match = match
    notated = _nearest(times_ms, grid)
    deviation = times_ms - notated
    magnitude = deviation.abs()
    seconds = notated / 1000.0 - (notated / 1000.0).mean()
    drift = (seconds * (deviation - deviation.mean())).sum() / seconds.pow(2).sum().clamp(min=1e-9)
    cycle = float(rhythm_patterns["cycle_beats"][index])
    return [match, magnitude.mean(), deviation.std(unbiased=False), magnitude.median(), deviation.mean(),
            torch.quantile(magnitude, 0.9), drift, zero + cycle,
            zero + len(rhythm_patterns["positions_beats"][index]) / cycle]


def _evidence_statistics(grid: torch.Tensor | None, found_ms: torch.Tensor, curves: FrameCurves
                         ) -> list[torch.Tensor]:
    """The stroke head's outputs at each notated position of the best-matching pattern (`grid`, ms; None where the
    take has fewer than two main strokes): `EVIDENCE_STATISTICS`, from the frames within `EVIDENCE_WINDOW_MS` of
    each position for its evidence and within `PATTERN_MATCH_CAP_MS` for where the peak near it lies."""
    zero = found_ms.new_zeros(())
    frames = curves.onset_probability.numel()
    if grid is None or grid.numel() == 0 or frames == 0:
        return [zero] * len(EVIDENCE_STATISTICS)
    probability, velocity = curves.onset_probability.double(), curves.velocity.double()
    reach = math.ceil(PATTERN_MATCH_CAP_MS / curves.frame_ms)
    at = torch.round(grid / curves.frame_ms).long()[:, None] + torch.arange(-reach, reach + 1)  # (positions, frames)
    distance = at * curves.frame_ms - grid[:, None]
    inside = (at >= 0) & (at < frames) & (distance.abs() <= PATTERN_MATCH_CAP_MS)
    at = at.clamp(0, frames - 1)
    near = torch.where(inside, probability[at], probability.new_zeros(()))
    evidence = torch.where(distance.abs() <= EVIDENCE_WINDOW_MS, near, near.new_zeros(())).amax(dim=1)
    unfound = ((found_ms[None, :] - grid[:, None]).abs() <= EVIDENCE_WINDOW_MS).any(dim=1).logical_not()
    values = [evidence.mean(), torch.quantile(evidence, 0.1), (evidence < 0.5).double().mean(),
              (evidence < 0.2).double().mean(), unfound.double().mean()]
    peak = near.argmax(dim=1)
    strength = near.gather(1, peak[:, None])[:, 0]
    heard = strength >= EVIDENCE_FLOOR
    if int(heard.sum()) < 3:
        return values + [zero] * (len(EVIDENCE_STATISTICS) - len(values))
    deviation = distance.gather(1, peak[:, None])[:, 0][heard]
    weight = strength[heard]
    loudness = velocity[at.gather(1, peak[:, None])[:, 0]][heard]
    magnitude = deviation.abs()
    return values + [magnitude.mean(), deviation.std(unbiased=False), torch.quantile(magnitude, 0.9),
                     magnitude.median(), deviation.mean(), (weight * magnitude).sum() / weight.sum(),
                     loudness.mean(), loudness.std(unbiased=False), torch.quantile(loudness, 0.1),
                     torch.quantile(loudness, 0.9), loudness.diff().abs().mean(), heard.double().mean()]


def batch_statistics(stroke_logits: torch.Tensor, frame_mask: torch.Tensor | None, frame_seconds: float,
                     threshold: float, tempo_bpm: torch.Tensor | None = None,
                     rhythm_patterns: dict | None = None, pattern_evidence: bool = False,
                     pattern_matches: bool = False) -> torch.Tensor:
    """Each clip's statistics `(batch, statistics)` from a stroke head's logits `(batch, frames, outputs)`: its
    strokes (`clip_strokes`) with their velocities and grace flags, and with `pattern_evidence` the head's outputs
    at the notated positions (`FrameCurves`). No gradient flows through the peak picking."""
    rows = []
    with torch.no_grad():
        for i, logits in enumerate(stroke_logits.detach().float()):
            frames = int(frame_mask[i].sum()) if frame_mask is not None else logits.shape[0]
            logits = logits[:frames]
            strokes = clip_strokes(logits, threshold)
            tempo = None if tempo_bpm is None else float(tempo_bpm.reshape(-1)[i])
            curves = FrameCurves.from_logits(logits, frame_seconds * 1000.0) if pattern_evidence else None
            rows.append(clip_statistics(strokes["position"].float() * frame_seconds * 1000.0,
                                        strokes["velocity"].float(), strokes["is_grace"], tempo, rhythm_patterns,
                                        curves, pattern_matches))
    return torch.stack(rows).to(stroke_logits.device)


class StrokeStatisticsEncoder(nn.Module):
    """Clip statistics `(batch, statistics)` -> a clip vector `(batch, hidden_size)`: standardised by the training
    split's mean and spread (buffers saved with the model, set by `fit`), then two GELU layers.

    The statistics differ in scale by orders of magnitude (counts, milliseconds, 0-1 velocities); an MLP rather
    than a linear map, because the scores combine them non-linearly (on the true strokes of sousa-tune, two
    layers reach overall_score R2 0.83 where a linear map reaches 0.72).
    """

    def __init__(self, num_statistics: int, hidden_size: int, dropout: float = 0.1):
        super().__init__()
        self.register_buffer("statistics_mean", torch.zeros(num_statistics))
        self.register_buffer("statistics_std", torch.ones(num_statistics))
        self.layers = nn.Sequential(nn.Linear(num_statistics, hidden_size), nn.GELU(), nn.Dropout(dropout),
                                    nn.Linear(hidden_size, hidden_size), nn.GELU())

    def forward(self, statistics: torch.Tensor) -> torch.Tensor:
        statistics = statistics.to(self.statistics_mean.device, self.statistics_mean.dtype)
        if statistics.shape[-1] != self.statistics_mean.numel():
            raise ValueError(f"expected {self.statistics_mean.numel()} stroke statistics per clip, got "
                             f"{statistics.shape[-1]}: were they computed with the model's use_tempo and "
                             "rhythm_patterns, pattern_evidence and pattern_matches settings?")
        return self.layers((statistics - self.statistics_mean) / self.statistics_std)

    @torch.no_grad()
    def fit(self, statistics: torch.Tensor) -> None:
        """Set the standardisation from the training split's statistics `(clips, statistics)`."""
        if len(statistics) < 2:
            raise ValueError("fitting the stroke statistics' standardisation needs at least two clips")
        statistics = statistics.double()
        std = statistics.std(dim=0, unbiased=False)
        self.statistics_mean.copy_(statistics.mean(dim=0).float())
        self.statistics_std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)).float())
