"""Which strokes a stroke model misses: onset recall at 25 ms on a split, broken down by stroke and take.

    python benchmarks/stroke_recall.py runs/strokes-cnn --data ../shared/sousa-tune [--split validation]

A transcription model's F1 hides where its misses are. This reads every take of the split whole (as
`sousa-hf predict` does, in overlapping windows), matches its strokes to the labelled audible ones
(mir_eval, 25 ms) and prints recall by grace note or main stroke, by velocity band, by the gap to the
nearest neighbouring stroke (flams and diddles are the close ones), by tempo, by the player's skill tier,
by how much the audio's energy rises at the stroke (`attack_rise_db`: a stroke the sound does not rise at
is heard only through the rhythm around it; those again by skill tier) and by rudiment, with the precision
over all detections. Run it on validation, not test: it is for choosing what to fix.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

import numpy as np
from scipy.signal import stft
from tqdm.auto import tqdm

from sousa_hf import load_sousa
from sousa_hf.data.audio import decode_audio
from sousa_hf.data.strokes import audible_onsets
from sousa_hf.data.tier_confidence import SKILL_TIERS
from sousa_hf.predict import SousaPredictor
from sousa_hf.stroke_transcription import match_onsets

WINDOW_MS = 25
BANDS = {
    "velocity (0-127)": [(0, 30), (30, 60), (60, 90), (90, 128)],
    "gap to nearest stroke (ms)": [(0, 10), (10, 20), (20, 40), (40, 80), (80, np.inf)],
    "tempo (bpm)": [(0, 100), (100, 140), (140, 170), (170, np.inf)],
    "energy rise at the stroke (dB)": [(-np.inf, 1), (1, 3), (3, 6), (6, 12), (12, np.inf)],
}
RISE_BANDS_HZ = ((0, 300), (300, 1000), (1000, 3000), (3000, 8000))
CLEAR_RISE_DB = 6.0  # an attack anyone would see in the spectrogram
NO_RISE_DB = 1.0


def attack_rise_db(array: np.ndarray, rate: int, onsets_ms: np.ndarray) -> np.ndarray:
    """How much the sound rises at each onset: the largest over four frequency bands (to 8 kHz) of the band's
    mean energy in the windows centred 0-15 ms after the onset over that in the 20 ms of windows that end 2 ms
    before it, in dB (8 ms windows, 1 ms hop). A stroke played into a still-ringing note can rise by almost
    nothing."""
    window, hop = max(8, round(0.008 * rate)), max(1, round(0.001 * rate))
    freqs, times, spectrum = stft(array, rate, nperseg=window, noverlap=window - hop, boundary=None, padded=False)
    power = np.abs(spectrum) ** 2
    bands = np.stack([10 * np.log10(power[(freqs >= low) & (freqs < high)].sum(axis=0) + 1e-10)
                      for low, high in RISE_BANDS_HZ])
    centres_ms, half_ms = 1000.0 * times, 500.0 * window / rate
    rises = np.full(len(onsets_ms), np.nan)
    for k, onset in enumerate(onsets_ms):
        before = (centres_ms >= onset - 22 - half_ms) & (centres_ms < onset - 2 - half_ms)
        after = (centres_ms >= onset) & (centres_ms <= onset + 15)
        if before.any() and after.any():
            rises[k] = float(np.max(bands[:, after].mean(axis=1) - bands[:, before].mean(axis=1)))
    return rises


def stroke_rows(predictor: SousaPredictor, split) -> tuple[list[dict], int, int]:
    """One row per labelled audible stroke (found or not, and what it is), with the split's detection counts."""
    rows, detected, matched = [], 0, 0
    for row in tqdm(split, desc="reading takes", total=len(split)):
        array, rate = decode_audio(row["audio"], row["sample_id"])
        strokes = row["strokes"]
        heard = audible_onsets(strokes, 1000.0 * array.size / rate)
        reference = np.asarray(strokes["onset_ms"], dtype=np.float64)[heard]
        found = np.asarray([s["time_ms"] for s in predictor.take_strokes(array, rate)], dtype=np.float64)
        hits = {i for i, _ in match_onsets(reference, found, WINDOW_MS)}
        detected, matched = detected + found.size, matched + len(hits)
        neighbours = np.diff(reference)
        gaps = np.minimum(np.r_[np.inf, neighbours], np.r_[neighbours, np.inf])
        velocities = np.asarray(strokes["velocity"], dtype=np.float64)[heard] * 127.0
        graces = np.asarray(strokes["is_grace"], dtype=bool)[heard]
        rises = attack_rise_db(array, rate, reference)
        for k in range(reference.size):
            rows.append({"found": k in hits, "grace": bool(graces[k]), "velocity (0-127)": velocities[k],
                         "gap to nearest stroke (ms)": gaps[k], "tempo (bpm)": float(row["tempo_bpm"]),
                         "skill tier": row["skill_tier"],
                         "energy rise at the stroke (dB)": np.nan_to_num(rises[k], nan=-np.inf),
                         "rudiment": row["rudiment_slug"]})
    return rows, detected, matched


def breakdown(rows: list[dict]) -> dict[str, list[tuple[str, int, float]]]:
    """`{grouping: [(group, strokes, recall)]}` for each grouping this benchmark prints."""
    def recall(selected: list[dict]) -> tuple[int, float]:
        return len(selected), float(np.mean([r["found"] for r in selected])) if selected else float("nan")

    def by_band(selected: list[dict], column: str) -> list[tuple[str, int, float]]:
        return [(f"{low:g}-{high:g}", *recall([r for r in selected if low <= r[column] < high]))
                for low, high in BANDS[column]]

    tables = {"stroke": [(name, *recall([r for r in rows if r["grace"] == grace]))
                         for name, grace in (("main", False), ("grace note", True))]}
    for column in BANDS:
        tables[column] = by_band(rows, column)
    tables["skill tier"] = [(tier, *recall([r for r in rows if r["skill tier"] == tier])) for tier in SKILL_TIERS]
    # Strokes the sound does not rise at are placed from the rhythm: how steady the player is decides it.
    silent = [r for r in rows if r["energy rise at the stroke (dB)"] < NO_RISE_DB]
    tables[f"skill tier, rise < {NO_RISE_DB:g} dB"] = [
        (tier, *recall([r for r in silent if r["skill tier"] == tier])) for tier in SKILL_TIERS]
    # What the audio shows: the strokes the sound clearly rises at, by how close their neighbours are.
    clear = [r for r in rows if r["energy rise at the stroke (dB)"] >= CLEAR_RISE_DB]
    tables[f"gap to nearest stroke (ms), rise >= {CLEAR_RISE_DB:g} dB"] = by_band(clear, "gap to nearest stroke (ms)")
    by_rudiment = defaultdict(list)
    for r in rows:
        by_rudiment[r["rudiment"]].append(r)
    worst = sorted(((name, *recall(group)) for name, group in by_rudiment.items()), key=lambda item: item[2])
    tables["rudiment (the 8 worst)"] = worst[:8]
    return tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a saved stroke model (a run folder or a Hub id)")
    parser.add_argument("--data", default="../shared/sousa-tune")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--limit", type=int, default=None, help="read only the first N takes")
    parser.add_argument("--json", default=None, help="also write the tables to this file")
    args = parser.parse_args()

    predictor = SousaPredictor.from_pretrained(args.model)
    split = load_sousa(args.data, "audio", split=args.split, strokes=True)
    if args.limit is not None:
        split = split.select(range(min(args.limit, len(split))))
    rows, detected, matched = stroke_rows(predictor, split)
    found = sum(r["found"] for r in rows)
    print(f"{args.split}: {len(split)} takes, {len(rows)} audible strokes, recall {found / len(rows):.3f}, "
          f"precision {matched / max(detected, 1):.3f} (onsets within {WINDOW_MS} ms)")
    tables = breakdown(rows)
    for grouping, table in tables.items():
        print(f"\n| {grouping} | strokes | recall |\n| --- | --- | --- |")
        for name, count, value in table:
            print(f"| {name} | {count} | {value:.3f} |")
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"recall": found / len(rows), "precision": matched / max(detected, 1), **tables}, file, indent=2)


if __name__ == "__main__":
    main()
