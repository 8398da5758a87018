"""From a stroke head's frame outputs to strokes, and how well they match the labelled ones.

`decode_strokes` picks onsets (`stroke_statistics.clip_strokes`: local maxima of the onset probability above a
threshold, refined between frames by a parabola through the peak and its neighbours, and for a cluster head the
strokes that follow each peak) and reads each one's velocity and grace-note flag. `grid_deviations` places them
against a metronome grid (what a drummer wants to know: how early or late each stroke was). `transcribe_take` reads a
whole take with a model, in windows when it is longer than the model's (`take_statistics`: the stroke statistics of
all of it, what a clip model scored from strokes sees). `stroke_metrics` scores
detections with mir_eval's onset F-measure (a detection matches at most one reference within the window) at +-10 and
+-25 ms, plus, over the strokes matched at 25 ms, the mean absolute error of their times and velocities.
"""

from __future__ import annotations

import math

import mir_eval
import numpy as np
import torch

from .stroke_statistics import FrameCurves, clip_statistics, clip_strokes, fitted_grid_deviation

WINDOWS_MS = (10, 25)
# How far from a window's cut edge a stroke must be to be read from that window (a take longer than the model's
# window is transcribed in windows overlapping by twice this).
STROKE_WINDOW_MARGIN_S = 0.5
DEFAULT_THRESHOLD = 0.5
THRESHOLD_CANDIDATES = tuple(round(0.1 + 0.05 * i, 2) for i in range(17))  # 0.1 ... 0.9


def decode_strokes(stroke_logits: np.ndarray, frame_seconds: float, frames: int | None = None,
                   threshold: float = DEFAULT_THRESHOLD) -> dict[str, np.ndarray]:
    """One clip's strokes from its `(frames, outputs)` logits: `{"time_ms", "velocity" (0-1), "is_grace",
    "confidence"}` (`stroke_statistics.clip_strokes`).

    Args:
        stroke_logits: onset, velocity and grace logits per frame, and a cluster head's two more
            (`SousaStrokeOutput.stroke_logits[i]`).
        frame_seconds: the model's frame spacing (`config.frame_seconds`).
        frames: how many of the frames hold audio (the rest is batch padding).
        threshold: the onset probability a peak must reach.
    """
    logits = np.asarray(stroke_logits, dtype=np.float64)[: frames if frames is not None else None]
    strokes = {name: value.numpy() for name, value in clip_strokes(torch.from_numpy(logits), threshold).items()}
    return {"time_ms": strokes["position"] * frame_seconds * 1000.0, "velocity": strokes["velocity"],
            "is_grace": strokes["is_grace"], "confidence": strokes["confidence"]}


@torch.no_grad()
def transcribe_take(model, adapter, take: np.ndarray, tempo_bpm: float | None = None,
                    batch_size: int = 8) -> dict[str, np.ndarray]:
    """Every stroke of a whole take with a model's stroke head: `{"time_ms" (from the take's start), "velocity" (0-1),
    "is_grace", "confidence"}` in time order, and the head's outputs over the whole take, one frame every
    `config.frame_seconds` from its start: `"frame_onset_probability"` and `"frame_velocity"` (0-1).

    Args:
        model: a SOUSA model with a stroke head (its `config.stroke_threshold` picks the peaks).
        adapter: the model's adapter; a take longer than its window (`max_seconds`) is read in windows overlapping
            by `2 * STROKE_WINDOW_MARGIN_S`, each answering for the strokes up to the middle of its overlaps.
        take: the whole take as the adapter prepares it, uncropped (`adapter.prepare(array, rate, crop=False)`).
        tempo_bpm: the take's tempo, for a model that takes it (`use_tempo`).
        batch_size: windows per forward pass.
    """
    rate = adapter.sampling_rate
    window = adapter.max_seconds
    seconds = take.size / rate
    if window is None or seconds <= window:
        spans = [(0.0, seconds)]
    else:
        step = window - 2 * STROKE_WINDOW_MARGIN_S
        spans = [(float(s), float(s) + window) for s in [*np.arange(0.0, seconds - window, step), seconds - window]]
    config = model.config
    found = {"time_ms": [], "velocity": [], "is_grace": [], "confidence": []}
    # Each frame of the take read from the window that answers for its time, as each stroke is.
    curves = np.zeros((2, int(round(seconds / config.frame_seconds)) + 1))
    for first in range(0, len(spans), batch_size):
        chunk = spans[first : first + batch_size]
        inputs = adapter([take[int(round(a * rate)) : int(round(b * rate))] for a, b in chunk], sampling_rate=rate)
        if getattr(config, "use_tempo", False):
            inputs["tempo_bpm"] = torch.full((len(chunk),), float(tempo_bpm))
        output = model(**{key: value.to(model.device) for key, value in inputs.items()})
        logits = output.stroke_logits.float().cpu().numpy()
        masks = output.frame_mask.cpu().numpy() if output.frame_mask is not None else None
        for i, (begin, end) in enumerate(chunk):
            strokes = decode_strokes(logits[i], config.frame_seconds,
                                     frames=int(masks[i].sum()) if masks is not None else None,
                                     threshold=config.stroke_threshold)
            at = strokes["time_ms"] / 1000.0 + begin
            k = first + i
            low = 0.5 * (begin + spans[k - 1][1]) if k else -np.inf
            high = 0.5 * (end + spans[k + 1][0]) if k + 1 < len(spans) else np.inf
            keep = (at >= low) & (at < high)
            found["time_ms"].append(1000.0 * at[keep])
            for name in ("velocity", "is_grace", "confidence"):
                found[name].append(strokes[name][keep])
            frames = int(masks[i].sum()) if masks is not None else logits.shape[1]
            frame_at = begin + np.arange(frames) * config.frame_seconds
            answered = (frame_at >= low) & (frame_at < high)
            index = np.round(frame_at[answered] / config.frame_seconds).astype(int)
            inside = index < curves.shape[1]
            probability = 1.0 / (1.0 + np.exp(-logits[i, :frames, :2][answered][inside].astype(np.float64)))
            curves[:, index[inside]] = probability.T
    return {**{name: np.concatenate(parts) for name, parts in found.items()},
            "frame_onset_probability": curves[0], "frame_velocity": curves[1]}


def take_statistics(strokes: dict[str, np.ndarray], tempo_bpm: float | None = None, config=None) -> torch.Tensor:
    """The stroke statistics (`stroke_statistics.clip_statistics`) of a whole take's strokes (`transcribe_take`), with
    the grid statistics when given the tempo, and those `config` (a `SousaConfig`) asks for: against the best-matching
    of its `rhythm_patterns`, the pattern evidence read from the take's frame outputs (`pattern_evidence`) and how well
    each pattern matches (`pattern_matches`). What a clip model scored from strokes (`pooling: stroke_statistics`)
    judges, however long the take and whatever the model's window."""
    found = (torch.from_numpy(strokes["time_ms"]), torch.from_numpy(strokes["velocity"]),
             torch.from_numpy(strokes["is_grace"]), None if tempo_bpm is None else float(tempo_bpm))
    if config is None:
        return clip_statistics(*found)
    curves = None
    if config.evidence_frame_ms is not None:
        curves = FrameCurves(torch.from_numpy(strokes["frame_onset_probability"]),
                             torch.from_numpy(strokes["frame_velocity"]), float(config.evidence_frame_ms))
    return clip_statistics(*found, config.rhythm_patterns, curves, config.pattern_matches)


def grid_deviations(times_ms: np.ndarray, tempo_bpm: float, subdivision: int = 4) -> np.ndarray:
    """Each stroke's signed distance (ms; negative: early) from the nearest position of a metronome grid.

    The grid has `subdivision` positions per beat (4: sixteenth notes); its phase is the one that best fits
    the strokes (the circular mean of their positions within a grid step), since a take need not start on
    the grid's first position.
    """
    times_ms = np.asarray(times_ms, dtype=np.float64)
    if tempo_bpm <= 0:
        raise ValueError(f"tempo must be positive, got {tempo_bpm}")
    if times_ms.size == 0:
        return times_ms
    return fitted_grid_deviation(torch.from_numpy(times_ms), tempo_bpm, subdivision)[0].numpy()


def stroke_metrics(references: list[dict], estimates: list[dict]) -> dict[str, float]:
    """Onset precision/recall/F1 at each of `WINDOWS_MS` (micro-averaged over all clips' strokes) and, for the
    strokes matched at 25 ms, `onset_mae_ms` and `velocity_mae` (on MIDI's 0-127 scale).

    Args:
        references, estimates: per clip, `{"time_ms", "velocity"}` arrays (labelled and detected strokes).
    """
    metrics: dict[str, float] = {}
    for window in WINDOWS_MS:
        matched = total_reference = total_estimate = 0
        for reference, estimate in zip(references, estimates):
            pairs = match_onsets(reference["time_ms"], estimate["time_ms"], window)
            matched += len(pairs)
            total_reference += len(reference["time_ms"])
            total_estimate += len(estimate["time_ms"])
        precision = matched / total_estimate if total_estimate else 0.0
        recall = matched / total_reference if total_reference else 0.0
        metrics[f"onset_precision_{window}ms"] = precision
        metrics[f"onset_recall_{window}ms"] = recall
        metrics[f"onset_f1_{window}ms"] = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    timing, velocity = [], []
    for reference, estimate in zip(references, estimates):
        for i, j in match_onsets(reference["time_ms"], estimate["time_ms"], max(WINDOWS_MS)):
            timing.append(abs(reference["time_ms"][i] - estimate["time_ms"][j]))
            velocity.append(abs(reference["velocity"][i] - estimate["velocity"][j]) * 127.0)
    metrics["onset_mae_ms"] = float(np.mean(timing)) if timing else math.nan
    metrics["velocity_mae"] = float(np.mean(velocity)) if velocity else math.nan
    return metrics


def best_threshold(onset_logits: list[np.ndarray], references: list[dict], frame_seconds: float,
                   candidates: tuple[float, ...] = THRESHOLD_CANDIDATES) -> tuple[float, float]:
    """The onset threshold (of `candidates`) with the best mean of the onset F1s at 10 and 25 ms over these clips,
    and that F1: `(threshold, f1)`. `onset_logits` are each clip's real frames' `(frames, 3)` logits."""
    best = (DEFAULT_THRESHOLD, -1.0)
    for threshold in candidates:
        estimates = [decode_strokes(logits, frame_seconds, threshold=threshold) for logits in onset_logits]
        metrics = stroke_metrics(references, estimates)
        score = float(np.mean([metrics[f"onset_f1_{w}ms"] for w in WINDOWS_MS]))
        if score > best[1]:
            best = (float(threshold), score)
    return best


def match_onsets(reference_ms, estimate_ms, window_ms: float) -> list[tuple[int, int]]:
    """mir_eval's one-to-one matching of labelled and detected onsets (ms) within `window_ms`: `(i, j)` index pairs."""
    reference = np.asarray(reference_ms, dtype=np.float64) / 1000.0
    estimate = np.asarray(estimate_ms, dtype=np.float64) / 1000.0
    if reference.size == 0 or estimate.size == 0:
        return []
    return mir_eval.util.match_events(reference, estimate, window_ms / 1000.0)
