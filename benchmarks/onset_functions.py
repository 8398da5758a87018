"""Do the classical onset functions, phase-based ones included, show the strokes the sound does not rise at?

    python benchmarks/onset_functions.py --data ../shared/sousa-tune [--split validation] [--limit N]

A quarter of SOUSA's labelled strokes bring no rise of the sound's energy (`stroke_recall.py`'s
`attack_rise_db` under 1 dB): a soft stroke played into the ringing of a loud one. A magnitude
spectrogram cannot show them; the MIR answer to such soft onsets is the phase: a new note restarts the
waveform where the ringing one would have gone on, which the complex-domain deviation (Duxbury et al.
2003; Bello et al. 2004) and the weighted phase deviation (Dixon 2006) measure. This scores three onset
functions, each over 5 ms frames of ~24 ms windows up to 8 kHz and divided by its running median over
+-150 ms (as an adaptive peak-picking threshold would): spectral flux (rectified rise of the log
magnitude), the complex-domain deviation of each bin from its prediction (the last frame's magnitude at
the phase its last two frames extrapolate to), summed over the bins and divided by the two frames' summed
magnitudes (the share of the spectrum its last frames do not predict), and the weighted phase
deviation. For each, the area under the ROC curve of its largest value within +-10 ms of every audible
labelled stroke against the same at frames 30 ms or more from any stroke, by how much the sound rises at
the stroke. An AUC of 0.5 is no evidence at all. No model is involved.
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy.ndimage import median_filter
from scipy.signal import stft
from sklearn.metrics import roc_auc_score
from tqdm.auto import tqdm

from sousa_hf import load_sousa
from sousa_hf.data.audio import decode_audio
from sousa_hf.data.strokes import audible_onsets
from stroke_recall import attack_rise_db  # the same rise measure as the recall breakdown

HOP_MS, WINDOW_MS, MAX_HZ = 5.0, 24.0, 8000.0
MEDIAN_MS = 300.0       # the running median's span (+-150 ms)
NEAR_MS = 10.0          # a stroke's value: the largest within this of it
FAR_MS = 30.0           # a negative frame lies this far or more from every labelled stroke
RISE_BANDS_DB = {"under 1 dB": (-np.inf, 1.0), "1-6 dB": (1.0, 6.0), "6 dB and more": (6.0, np.inf),
                 "every audible stroke": (-np.inf, np.inf)}
FUNCTIONS = ("spectral flux", "complex-domain deviation", "weighted phase deviation")


def onset_functions(array: np.ndarray, rate: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """`(frame centres in ms, {name: onset function})`, each function divided by its running median."""
    window, hop = round(WINDOW_MS / 1000 * rate), round(HOP_MS / 1000 * rate)
    freqs, times, spectrum = stft(array, rate, window="hann", nperseg=window, noverlap=window - hop,
                                  boundary=None, padded=False)
    spectrum = spectrum[freqs <= MAX_HZ]
    magnitude, phase = np.abs(spectrum), np.angle(spectrum)
    floor = 1e-6 * (magnitude.max() + 1e-12)
    log_magnitude = np.log1p(magnitude / (100 * floor))
    flux = np.r_[0.0, np.maximum(0.0, np.diff(log_magnitude, axis=1)).sum(axis=0)]
    predicted = magnitude[:, 1:-1] * np.exp(1j * (2 * phase[:, 1:-1] - phase[:, :-2]))
    deviation = np.abs(spectrum[:, 2:] - predicted).sum(axis=0)
    complex_domain = np.r_[0.0, 0.0, deviation / (magnitude[:, 2:] + magnitude[:, 1:-1] + floor).sum(axis=0)]
    second_difference = np.angle(np.exp(1j * (phase[:, 2:] - 2 * phase[:, 1:-1] + phase[:, :-2])))
    weighted_phase = np.r_[0.0, 0.0, (magnitude[:, 2:] * np.abs(second_difference)).sum(axis=0)
                           / (magnitude[:, 2:].sum(axis=0) + floor)]
    span = max(3, int(MEDIAN_MS / HOP_MS) | 1)
    functions = {}
    for name, values in zip(FUNCTIONS, (flux, complex_domain, weighted_phase)):
        functions[name] = values / (median_filter(values, size=span, mode="nearest") + 1e-12 + 1e-9 * values.max())
    return 1000.0 * times, functions


def largest_near(values: np.ndarray, centres_ms: np.ndarray, at_ms: np.ndarray) -> np.ndarray:
    """The largest of `values` at frames within `NEAR_MS` of each of `at_ms` (NaN where none)."""
    out = np.full(len(at_ms), np.nan)
    for k, at in enumerate(at_ms):
        near = np.abs(centres_ms - at) <= NEAR_MS
        if near.any():
            out[k] = values[near].max()
    return out


def split_scores(split) -> tuple[dict[str, list], dict[str, list], list]:
    """Each function's values at the audible strokes and at the far frames, and each stroke's energy rise."""
    at_strokes = {name: [] for name in FUNCTIONS}
    far = {name: [] for name in FUNCTIONS}
    rises = []
    for row in tqdm(split, desc="reading takes", total=len(split)):
        array, rate = decode_audio(row["audio"], row["sample_id"])
        strokes = row["strokes"]
        every = np.asarray(strokes["onset_ms"], dtype=np.float64)
        heard = every[audible_onsets(strokes, 1000.0 * array.size / rate)]
        centres, functions = onset_functions(array, rate)
        distance = (np.min(np.abs(centres[:, None] - every[None, :]), axis=1) if every.size
                    else np.full(len(centres), np.inf))
        negatives = centres[(distance >= FAR_MS) & (centres > NEAR_MS) & (centres < centres[-1] - NEAR_MS)][::3]
        rises += list(np.nan_to_num(attack_rise_db(array, rate, heard), nan=-np.inf))
        for name, values in functions.items():
            at_strokes[name] += list(largest_near(values, centres, heard))
            far[name] += list(largest_near(values, centres, negatives))
    return at_strokes, far, rises


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/sousa-tune")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--limit", type=int, default=None, help="read only the first N takes")
    args = parser.parse_args()

    split = load_sousa(args.data, "audio", split=args.split, strokes=True)
    if args.limit is not None:
        split = split.select(range(min(args.limit, len(split))))
    at_strokes, far, rises = split_scores(split)
    rises = np.asarray(rises)
    print(f"{args.split}: {len(split)} takes, {rises.size} audible strokes, "
          f"{len(far[FUNCTIONS[0]])} frames {FAR_MS:.0f} ms or more from any stroke")
    print("\n| energy rise at the stroke | strokes | " + " | ".join(f"AUC, {name}" for name in FUNCTIONS) + " |")
    print("| --- | --- |" + " --- |" * len(FUNCTIONS))
    for band, (low, high) in RISE_BANDS_DB.items():
        chosen = (rises >= low) & (rises < high)
        cells = []
        for name in FUNCTIONS:
            positives = np.asarray(at_strokes[name])[chosen]
            negatives = np.asarray(far[name])
            positives, negatives = positives[~np.isnan(positives)], negatives[~np.isnan(negatives)]
            labels = np.r_[np.ones(positives.size), np.zeros(negatives.size)]
            cells.append(f"{roc_auc_score(labels, np.r_[positives, negatives]):.3f}")
        print(f"| {band} | {int(chosen.sum())} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
