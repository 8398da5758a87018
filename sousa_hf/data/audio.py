"""Decoding a SOUSA `audio` cell to mono float32, without FFmpeg.

A cell comes in one of three forms: the Hub's stored `{"bytes", "path"}` struct (FLAC, decoded here
with libsndfile through soundfile), a `datasets`-decoded `{"array", "sampling_rate"}` dict, or the
torchcodec `AudioDecoder` that datasets 4+ returns when its `Audio` feature decodes. All three give
the same thing: a 1-D float32 array at the clip's own rate, stereo averaged down to mono.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np
import soundfile

from .errors import SousaDataError


def decode_audio(cell: Any, sample_id: str | None = None) -> tuple[np.ndarray, int]:
    """Decode one `audio` cell to `(mono float32 array, sampling_rate)`.

    Args:
        cell: the value of a row's `audio` column, in any of the forms above.
        sample_id: named in the error when the clip cannot be decoded.
    """
    where = f"sample {sample_id!r}" if sample_id else "an audio clip"
    if isinstance(cell, Mapping) and cell.get("array") is not None:
        return to_mono(np.asarray(cell["array"], dtype=np.float32)), int(cell["sampling_rate"])
    if isinstance(cell, Mapping) and cell.get("bytes") is not None:
        try:
            array, sampling_rate = soundfile.read(io.BytesIO(cell["bytes"]), dtype="float32", always_2d=True)
        except (soundfile.LibsndfileError, RuntimeError, TypeError) as err:
            raise SousaDataError(
                f"could not decode the audio of {where} ({cell.get('path') or 'no path'}): {err}. "
                "The FLAC bytes are corrupt or not audio; re-download the shard or drop the row."
            ) from err
        return to_mono(array.T), int(sampling_rate)
    if hasattr(cell, "get_all_samples"):  # torchcodec AudioDecoder from datasets' Audio(decode=True)
        samples = cell.get_all_samples()
        return to_mono(samples.data.numpy().astype(np.float32, copy=False)), int(samples.sample_rate)
    if isinstance(cell, Mapping) and cell.get("path"):
        return decode_audio({"bytes": _read(cell["path"], where), "path": cell["path"]}, sample_id)
    raise SousaDataError(
        f"{where} has no audio: expected FLAC bytes, a decoded {{'array', 'sampling_rate'}} dict or an "
        f"AudioDecoder, got {type(cell).__name__}"
    )


def to_mono(array: np.ndarray) -> np.ndarray:
    """Average the channels of a `(channels, samples)` array; a 1-D array is returned as is."""
    if array.ndim == 1:
        return np.ascontiguousarray(array, dtype=np.float32)
    if array.ndim != 2:
        raise SousaDataError(f"expected 1-D or (channels, samples) audio, got shape {array.shape}")
    if array.shape[0] > array.shape[1]:  # (samples, channels), as soundfile and some users give it
        array = array.T
    # Channel by channel: numpy's mean over a short axis is several times slower than this sum.
    mono = np.array(array[0], dtype=np.float32)
    for channel in array[1:]:
        mono += channel
    return mono / np.float32(array.shape[0]) if array.shape[0] > 1 else mono


def _read(path: str, where: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as err:
        raise SousaDataError(f"the audio of {where} has no bytes and its path {path!r} cannot be read") from err
