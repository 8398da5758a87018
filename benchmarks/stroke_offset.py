"""Where a labelled stroke is heard: the offset between `actual_time_ms` and the attack in the audio.

    python benchmarks/stroke_offset.py ../shared/sousa-tune ../shared/sousa-sample

For every isolated stroke (no other stroke within 40 ms, velocity at least 40 of 127, not a buzz's extra
bounce) it finds the sharpest rise of the audio's energy (spectral flux of 4 ms frames at a 1 ms hop)
within -20..+80 ms of `actual_time_ms`, and prints the median and quartiles of the difference per
augmentation preset and over the presets without a long room tail. That median is the render offset
`sousa_hf.data.strokes.AUDIO_OFFSET_MS` corrects for.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

import numpy as np
from scipy.signal import stft

from sousa_hf import load_sousa
from sousa_hf.data.loading import data_origin
from sousa_hf.data.strokes import audible_onsets

DRY_PRESETS = ("clean_studio", "practice_room", "marching_field")  # short or no room tail
SEARCH_MS = (-20.0, 80.0)
WINDOW_MS = 4.0


def onset_strength(audio: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Spectral flux (positive log-magnitude differences summed over bins) at a 1 ms hop: `(values, times in ms)`."""
    hop, window = max(1, rate // 1000), int(WINDOW_MS * rate / 1000)
    _, _, spectrum = stft(audio, rate, nperseg=window, noverlap=window - hop, boundary=None, padded=False)
    magnitude = np.log1p(1000.0 * np.abs(spectrum))
    flux = np.maximum(0.0, np.diff(magnitude, axis=1)).sum(axis=0)
    # Value i compares the frames starting at hops i and i + 1: its time is the later frame's centre.
    times = 1000.0 * ((np.arange(len(flux)) + 1) * hop + window / 2) / rate
    return flux, times


def clip_offsets(audio: np.ndarray, rate: int, strokes: dict) -> list[float]:
    flux, times = onset_strength(audio, rate)
    heard = audible_onsets(strokes, 1000.0 * len(audio) / rate)
    actual = np.asarray(strokes["actual_ms"], dtype=np.float64)
    velocity = np.asarray(strokes["velocity"]) * 127
    out = []
    for i in heard:
        others = np.delete(actual[heard], np.flatnonzero(heard == i))
        if velocity[i] < 40 or (others.size and np.min(np.abs(others - actual[i])) < 40):
            continue
        window = (times >= actual[i] + SEARCH_MS[0]) & (times <= actual[i] + SEARCH_MS[1])
        if window.any():
            out.append(float(times[window][np.argmax(flux[window])] - actual[i]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", help="SOUSA folders in the Hub layout")
    parser.add_argument("--max-clips", type=int, default=300, help="clips per source (from every split)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    report = {}
    for source in args.sources:
        splits = load_sousa(source, "audio", strokes=True)
        rows = [row for split in splits.values() for row in split.select(range(len(split)))]
        step = max(1, len(rows) // args.max_clips)
        by_preset = defaultdict(list)
        origin = data_origin(source)
        for row in rows[::step]:
            audio = row["audio"]
            by_preset[row["augmentation_preset"]].extend(
                clip_offsets(audio["array"], audio["sampling_rate"], row["strokes"]))
        dry = [value for preset in DRY_PRESETS for value in by_preset.get(preset, [])]
        summary = {preset: _quartiles(values) for preset, values in sorted(by_preset.items())}
        summary["dry presets"] = _quartiles(dry)
        report[source] = summary
        print(f"{source} ({origin}, {len(rows[::step])} clips): attack minus actual_time_ms, ms")
        print(f"  {'preset':<16} {'strokes':>8} {'median':>8} {'q25':>8} {'q75':>8}")
        for preset, row in summary.items():
            print(f"  {preset:<16} {row['strokes']:>8} {row['median']:>8.1f} {row['q25']:>8.1f} {row['q75']:>8.1f}")
    if args.json:
        with open(args.json, "w") as file:
            json.dump(report, file, indent=2)


def _quartiles(values: list[float]) -> dict:
    if not values:
        return {"strokes": 0, "median": float("nan"), "q25": float("nan"), "q75": float("nan")}
    q25, median, q75 = np.percentile(values, [25, 50, 75])
    return {"strokes": len(values), "median": float(median), "q25": float(q25), "q75": float(q75)}


if __name__ == "__main__":
    main()
