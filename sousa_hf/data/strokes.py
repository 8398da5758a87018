"""SOUSA's per-stroke labels (`auxiliary/strokes.parquet`), attached to each clip as a `strokes` column.

The Hub repository (and a local folder in its layout, and the suite's synthetic data) holds one row per
stroke beside the configs: `sample_id`, `index`, `hand`, `stroke_type`, `intended_time_ms`,
`actual_time_ms`, `actual_velocity`, `is_grace_note`, `is_accent`, `parent_stroke_index`, ...
`with_strokes` gives every clip its strokes in time order:

    strokes = {"onset_ms": [...], "actual_ms": [...], "intended_ms": [...], "velocity": [...] (0-1),
               "is_grace": [...], "is_accent": [...], "is_bounce": [...], "hand": [...]}

`onset_ms` is where the stroke is heard in the audio: `actual_time_ms` plus the source's render
offset (`AUDIO_OFFSET_MS`, measured by `benchmarks/stroke_offset.py`). `is_bounce` marks the extra
bounces of a buzz stroke (2-5 ms apart, heard as one attack); transcription targets and metrics use
`audible_onsets`: the strokes that are not bounces, with a velocity above 0, inside the clip.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datasets import Dataset, Features, IterableDataset, List, Value

from .derived import add_columns
from .errors import SousaDataError

STROKES_FILE = "auxiliary/strokes.parquet"
# Where a stroke's attack is heard, relative to its `actual_time_ms`, by generator: measured by
# `benchmarks/stroke_offset.py` as the median over isolated strokes of the presets without a long room
# tail: 7.6 ms on ../shared/sousa-tune (16 kHz) and on ../shared/sousa-sample (44.1 kHz), quartiles
# 6.3-15 ms (the gym's and garage's reverb pull a flux peak later, hence the 22 ms a classical detector
# reported over all presets). The suite's synthetic renderer starts each stroke at its actual time.
AUDIO_OFFSET_MS = {"sousa": 7.6, "synthetic": 0.0}
STROKE_FEATURES = Features({"strokes": {
    "onset_ms": List(Value("float32")), "actual_ms": List(Value("float32")), "intended_ms": List(Value("float32")),
    "velocity": List(Value("float32")), "is_grace": List(Value("bool")), "is_accent": List(Value("bool")),
    "is_bounce": List(Value("bool")), "hand": List(Value("string")),
}})
_NEEDED = ("sample_id", "hand", "stroke_type", "intended_time_ms", "actual_time_ms", "actual_velocity",
           "is_grace_note", "is_accent", "parent_stroke_index")


def stroke_table(source, cache_dir: str | None = None) -> pa.Table:
    """The stroke table of a SOUSA source: a folder in the Hub layout or a Hub dataset id."""
    if isinstance(source, (str, os.PathLike)) and os.path.isdir(source):
        path = os.path.join(os.fspath(source), STROKES_FILE)
        if not os.path.isfile(path):
            raise SousaDataError(f"{os.fspath(source)!r} has no {STROKES_FILE}: stroke labels come beside the configs "
                                 "in SOUSA's Hub layout (zkeown/sousa, a local copy of it, or `sousa-hf data synth`)")
    elif isinstance(source, str) and not os.path.exists(source):
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError

        try:
            path = hf_hub_download(source, STROKES_FILE, repo_type="dataset", cache_dir=cache_dir)
        except EntryNotFoundError as err:
            raise SousaDataError(f"the Hub dataset {source!r} has no {STROKES_FILE}") from err
        except Exception as err:  # offline, unreachable, not found: huggingface_hub raises several types
            raise SousaDataError(f"could not fetch {STROKES_FILE} of {source!r} from the Hub: {err}") from err
    else:
        raise SousaDataError(f"stroke labels need a SOUSA folder or a Hub id, not {type(source).__name__}; "
                             f"read {STROKES_FILE} yourself and pass it to with_strokes")
    table = pq.read_table(path)
    missing = [c for c in _NEEDED if c not in table.column_names]
    if missing:
        raise SousaDataError(f"{path} lacks the stroke column(s) {', '.join(missing)}")
    return table.select(list(_NEEDED))


def strokes_by_sample(table: pa.Table, offset_ms: float = 0.0) -> dict[str, dict[str, list]]:
    """`{sample_id: strokes}` (the `strokes` cell of each clip), in time order."""
    table = table.sort_by([("sample_id", "ascending"), ("actual_time_ms", "ascending")])
    ids = table.column("sample_id").to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], len(ids)]
    columns = {name: table.column(name).to_numpy(zero_copy_only=False) for name in _NEEDED}
    bounce = (columns["stroke_type"] == "buzz") & ~pc.is_null(table.column("parent_stroke_index"),
                                                              nan_is_null=True).to_numpy(zero_copy_only=False)
    out = {}
    for start, end in zip(starts, ends):
        rows = slice(start, end)
        actual = columns["actual_time_ms"][rows].astype(np.float32)
        out[str(ids[start])] = {
            "onset_ms": (actual + offset_ms).tolist(), "actual_ms": actual.tolist(),
            "intended_ms": columns["intended_time_ms"][rows].astype(np.float32).tolist(),
            "velocity": (columns["actual_velocity"][rows].astype(np.float32) / 127.0).tolist(),
            "is_grace": columns["is_grace_note"][rows].astype(bool).tolist(),
            "is_accent": columns["is_accent"][rows].astype(bool).tolist(),
            "is_bounce": bounce[rows].tolist(), "hand": [str(h) for h in columns["hand"][rows]],
        }
    return out


def with_strokes(dataset: Dataset | IterableDataset, strokes: Mapping[str, dict]) -> Dataset | IterableDataset:
    """Add the `strokes` column from `{sample_id: strokes}`; a clip without strokes is an error naming it."""
    if "sample_id" not in (dataset.column_names or ()):
        raise SousaDataError("stroke labels are matched by sample_id, which the dataset lacks")

    def attach(batch: dict) -> dict:
        missing = [sample_id for sample_id in batch["sample_id"] if sample_id not in strokes]
        if missing:
            raise SousaDataError(f"{len(missing)} clip(s) have no rows in {STROKES_FILE} (e.g. "
                                 f"{', '.join(missing[:3])}); is it the stroke file of this dataset?")
        return {"strokes": [strokes[sample_id] for sample_id in batch["sample_id"]]}

    return add_columns(dataset, attach, ["sample_id"], STROKE_FEATURES)


def audible_onsets(strokes: Mapping[str, list], duration_ms: float | None = None) -> np.ndarray:
    """The indices of a clip's heard strokes: not a buzz's extra bounce, velocity above 0, inside the clip."""
    onsets = np.asarray(strokes["onset_ms"], dtype=np.float64)
    keep = ~np.asarray(strokes["is_bounce"], dtype=bool) & (np.asarray(strokes["velocity"]) > 0) & (onsets >= 0)
    if duration_ms is not None:
        keep &= onsets < duration_ms
    return np.flatnonzero(keep)
