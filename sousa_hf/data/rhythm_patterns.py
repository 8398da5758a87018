"""The rhythms SOUSA's takes are notated in, learned from stroke labels: what a take is measured against.

A SOUSA take plays one rudiment's pattern `num_cycles` times from its first beat, at its tempo: each main stroke
(not a grace note) has a notated position, `intended_time_ms`, on a grid that starts at the take's first beat.
Its timing error is its distance from that position, and the clip's scores are made of those errors. Audio gives
the strokes and the tempo but not the positions; knowing the few dozen rhythms the rudiments are written in, a
take can be matched to the one it plays (`stroke_statistics.match_rhythm_pattern`) and its strokes measured
against it.

`fit_rhythm_patterns` collects them from a split's stroke labels: for each clip, its main strokes' intended
positions in beats over its first cycle and the cycle's length in beats; distinct rhythms kept once. With them,
where the first beat is heard in the audio (`origin_ms`): the source's render offset (`onset_ms - actual_ms`
of its strokes, `strokes.AUDIO_OFFSET_MS`).
"""

from __future__ import annotations

import numpy as np
from datasets import Dataset

from .errors import SousaDataError

# Positions (beats) equal to this many decimals are one rhythm (the generator's are exact fractions of a beat).
_DECIMALS = 4


def fit_rhythm_patterns(split: Dataset) -> dict:
    """The distinct rhythms of a split's takes: `{"origin_ms", "cycle_beats": [...], "positions_beats": [[...]]}`
    (a `SousaConfig.rhythm_patterns`), in a fixed order (by cycle, then positions).

    Args:
        split: rows with `strokes` (`load_sousa(..., strokes=True)`), `tempo_bpm` and `num_cycles`; takes of one
            cycle (whose cycle length their strokes do not show) are left out.
    """
    needed = {"strokes", "tempo_bpm", "num_cycles"}
    missing = needed - set(split.column_names)
    if missing:
        raise SousaDataError(f"learning rhythm patterns needs the columns {sorted(needed)}; the split lacks "
                             f"{sorted(missing)} (load it with load_sousa(..., strokes=True) from a source with "
                             "auxiliary/strokes.parquet)")
    patterns, offsets = set(), []
    for row in split.select_columns(sorted(needed)):
        strokes, cycles = row["strokes"], int(row["num_cycles"] or 0)
        main = ~np.asarray(strokes["is_grace"], dtype=bool)
        beats = np.sort(np.asarray(strokes["intended_ms"], dtype=np.float64)[main]) * float(row["tempo_bpm"]) / 60_000.0
        per_cycle = len(beats) // cycles if cycles else 0
        if cycles < 2 or per_cycle == 0:
            continue
        cycle = round(float(beats[per_cycle] - beats[0]), _DECIMALS)
        if cycle <= 0:
            continue
        patterns.add((cycle, tuple(np.round(beats[:per_cycle], _DECIMALS).tolist())))
        offsets.extend(np.asarray(strokes["onset_ms"], dtype=np.float64) - np.asarray(strokes["actual_ms"]))
    if not patterns:
        raise SousaDataError("no take in the split has stroke labels over two or more cycles (num_cycles >= 2) to "
                             "learn the rhythm patterns from; train without rhythm_patterns")
    ordered = sorted(patterns)
    return {"origin_ms": round(float(np.median(offsets)), 3), "cycle_beats": [cycle for cycle, _ in ordered],
            "positions_beats": [list(positions) for _, positions in ordered]}
