"""A take's stroke timeline as a PNG a drummer can read: the waveform with every stroke found marked on it,
grace notes apart, and (given the tempo) how early or late each stroke was against the metronome grid.

    sousa-hf predict runs/strokes take.wav --tempo 120 --timeline out/

Stroke markers are drawn in `STROKE_COLOUR` (grace notes in `GRACE_COLOUR`), one pixel wide and without
anti-aliasing, so that the picture itself can be checked: each marker is a column of exactly that colour.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

STROKE_COLOUR = "#d62728"
GRACE_COLOUR = "#9467bd"
EARLY_COLOUR, LATE_COLOUR = "#1f77b4", "#ff7f0e"


def plot_stroke_timeline(audio: np.ndarray, sampling_rate: int, strokes: list[dict], path: str | Path,
                         tempo_bpm: float | None = None, title: str | None = None, width_inches: float = 12.0
                         ) -> Path:
    """Draw the timeline; `strokes` as `SousaPredictor.predict` gives them (`time_ms`, `velocity`, `is_grace`,
    and `deviation_ms` when the tempo was given). Returns the PNG's path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    audio = np.asarray(audio, dtype=np.float32)
    seconds = np.arange(audio.size) / sampling_rate
    deviations = [s.get("deviation_ms") for s in strokes]
    with_grid = tempo_bpm is not None and any(d is not None for d in deviations)
    figure, axes = plt.subplots(2 if with_grid else 1, 1, figsize=(width_inches, 4.6 if with_grid else 2.6),
                                sharex=True, squeeze=False, gridspec_kw={"height_ratios": [2, 1] if with_grid else [1]})
    wave = axes[0, 0]
    wave.plot(seconds, audio, color="0.55", linewidth=0.5)
    peak = float(np.abs(audio).max()) or 1.0
    wave.set_ylim(-1.15 * peak, 1.15 * peak)
    for stroke in strokes:
        colour = GRACE_COLOUR if stroke.get("is_grace") else STROKE_COLOUR
        height = 0.25 + 0.75 * min(1.0, float(stroke["velocity"]) / 127.0)  # taller for harder strokes
        wave.vlines(stroke["time_ms"] / 1000.0, -height * peak, height * peak, colors=colour, linewidth=1,
                    antialiased=False)
    graces = sum(bool(s.get("is_grace")) for s in strokes)
    wave.set_ylabel("waveform")
    heading = f"{len(strokes)} strokes found ({graces} grace notes)"
    wave.set_title(f"{title}: {heading}" if title else heading, fontsize=10)
    end = max(seconds[-1] if audio.size else 0.0, 1e-3)
    wave.set_xlim(-0.01 * end, 1.01 * end)  # a margin, so a stroke at either end is not hidden by the frame
    if with_grid:
        grid = axes[1, 0]
        times = np.array([s["time_ms"] / 1000.0 for s in strokes])
        values = np.array([s.get("deviation_ms", 0.0) for s in strokes])
        grid.bar(times, values, width=0.012, color=[EARLY_COLOUR if v < 0 else LATE_COLOUR for v in values])
        grid.axhline(0, color="0.3", linewidth=0.8)
        limit = max(10.0, float(np.abs(values).max()) * 1.15) if values.size else 10.0
        grid.set_ylim(-limit, limit)
        grid.set_ylabel("early (-) / late (+), ms")
        mean = float(np.abs(values).mean()) if values.size else 0.0
        grid.set_title(f"against a {tempo_bpm:g} bpm grid: mean |deviation| {mean:.1f} ms", fontsize=9)
    axes[-1, 0].set_xlabel("seconds")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
