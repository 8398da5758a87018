"""Predictions for audio files from any saved SOUSA model: a label with probabilities, or scores on 0-100.

    sousa-hf predict runs/quickstart clips/ take.wav --json

Classifiers also run in `pipeline("audio-classification", trust_remote_code=True)`; regression and
multi-task models have no stock pipeline, so this predictor serves all of them the same way, with
the adapter the model was trained with (its evaluation crop and resampler).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import soundfile
import torch
from tqdm.auto import tqdm
from transformers import AutoModel

from .adapters import AudioAdapter, get_adapter
from .data.audio import to_mono
from .data.errors import SousaDataError
from .hub import check_model_source

logger = logging.getLogger(__name__)

# A clip shorter than this is far shorter than any SOUSA clip (1.7-19 s): too little to judge a performance.
SHORTEST_SECONDS = 1.0
# A peak below this (-80 dBFS) is silence, whatever the recording level.
SILENT_PEAK = 1e-4
# What `predict_files` picks up inside a folder; files named explicitly are tried whatever their suffix.
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".aif", ".aiff", ".aifc", ".w64", ".caf")


class SousaPredictor:
    """A saved SOUSA model with its adapter, turning clips into labels or scores.

    Args:
        model: a SOUSA head (`SousaForAudioClassification`, `SousaForScoreRegression`, `SousaForMultiTask`).
        adapter: the adapter that makes the model's inputs (saved with the model).
        batch_size: clips per forward pass.
    """

    def __init__(self, model, adapter: AudioAdapter, batch_size: int = 8):
        if not hasattr(model, "task_loss"):
            raise SousaDataError(f"{type(model).__name__} is not a SOUSA task model (no head to predict with)")
        self.model = model.eval()
        self.adapter = adapter
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(cls, model_dir_or_id: str, batch_size: int = 8, device: str | None = None, **hub_kwargs):
        """Load a training run's folder or a Hub id (`revision`, `token` ... pass through to `from_pretrained`)."""
        check_model_source(model_dir_or_id)
        model = AutoModel.from_pretrained(model_dir_or_id, **hub_kwargs)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        return cls(model.to(device), get_adapter(model_dir_or_id), batch_size=batch_size)

    @property
    def is_classifier(self) -> bool:
        return self.model.config.task_kind == "classification"

    @torch.no_grad()
    def predict(self, audios: list[tuple[np.ndarray, int]]) -> list[dict]:
        """`[(array, sampling_rate), ...]` -> `[{"label": ..., "scores": {...}}, ...]`.

        Classifiers give the most likely label and every label's probability; score models give
        `label: None` and each target's score on 0-100. A clip the model cannot judge (silence, or far
        shorter than any SOUSA clip) still gets its outputs, with a `"warning"` saying why not to trust them.
        """
        results = []
        for start in range(0, len(audios), self.batch_size):
            batch = audios[start : start + self.batch_size]
            inputs = self.adapter([self.adapter.prepare(array, rate) for array, rate in batch],
                                  sampling_rate=self.adapter.sampling_rate)
            inputs = {key: value.to(self.model.device) for key, value in inputs.items()}
            output = self.model(**inputs)
            for (array, rate), result in zip(batch, self._decode(output)):
                warning = input_warning(np.asarray(array), int(rate))
                results.append({**result, "warning": warning} if warning else result)
        return results

    def _decode(self, output) -> list[dict]:
        config = self.model.config
        if self.is_classifier:
            probabilities = output.logits.float().softmax(-1).cpu().numpy()
            return [{"label": config.id2label[int(row.argmax())],
                     "scores": {config.id2label[i]: float(p) for i, p in enumerate(row)}} for row in probabilities]
        scores = output.scores.float().cpu().numpy()
        return [{"label": None, "scores": {name: float(s) for name, s in zip(config.target_names, row)}}
                for row in scores]

    def predict_files(self, paths: Iterable[str | Path], progress: bool = True) -> list[dict]:
        """Predict for files and folders (searched recursively for audio files), in batches.

        A file that cannot be read or processed gets `{"file", "error"}` and the rest go on.
        """
        files = list(expand_audio_paths(paths))
        results = []
        with tqdm(total=len(files), desc="predicting", unit="clip", disable=not progress) as bar:
            for start in range(0, len(files), self.batch_size):
                chunk = files[start : start + self.batch_size]
                results.extend(self._predict_chunk(chunk))
                bar.update(len(chunk))
        return results

    def _predict_chunk(self, files: list[Path]) -> list[dict]:
        decoded, results = {}, {}
        for file in files:
            try:
                decoded[file] = read_audio_file(file)
            except Exception as err:  # any unreadable file is reported, never fatal
                results[file] = {"file": str(file), "error": _describe(err)}
        try:
            predictions = self.predict(list(decoded.values())) if decoded else []
            for file, prediction in zip(decoded, predictions):
                results[file] = {"file": str(file), **prediction}
        except Exception:  # one bad clip (e.g. NaN samples) must not cost the batch: retry clip by clip
            for file, audio in decoded.items():
                try:
                    results[file] = {"file": str(file), **self.predict([audio])[0]}
                except Exception as err:
                    results[file] = {"file": str(file), "error": _describe(err)}
        for file, result in results.items():
            if "error" in result:
                logger.warning("skipped %s: %s", file, result["error"])
        return [results[file] for file in files]


def input_warning(array: np.ndarray, sampling_rate: int) -> str | None:
    """Why a prediction for this clip means little (it is silent or far too short), or `None`."""
    samples = array.shape[-1] if array.ndim else 0
    seconds = samples / sampling_rate
    if seconds < SHORTEST_SECONDS:
        return (f"the clip is {seconds * 1000:.1f} ms long ({samples} sample(s) at {sampling_rate} Hz), far shorter "
                "than any SOUSA clip (1.7-19 s): too little playing to judge, so this prediction means little")
    peak = float(np.abs(array).max()) if samples else 0.0
    if peak < SILENT_PEAK:
        return (f"the clip is silent (peak {peak:.1e}, below -80 dBFS): there are no strokes to judge, so this "
                "prediction means little")
    return None


def expand_audio_paths(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Files as given (missing ones too, to be reported), folders as their audio files in sorted order.

    A folder without audio files is yielded itself, to be reported."""
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
            yield from found or [path]
        else:
            yield path


def read_audio_file(path: Path) -> tuple[np.ndarray, int]:
    """`(mono float32 array, rate)` of an audio file, read with soundfile (WAV, FLAC, OGG, MP3, AIFF ...)."""
    if path.is_dir():
        raise SousaDataError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) in this folder")
    if not path.is_file():
        raise SousaDataError("no such file")
    try:
        array, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError) as err:
        raise SousaDataError(f"not a readable audio file ({err}); expected WAV, FLAC, OGG, MP3 or AIFF") from err
    if array.size == 0:
        raise SousaDataError("the file holds no samples")
    return to_mono(array.T), int(rate)


def _describe(err: Exception) -> str:
    return str(err) if isinstance(err, SousaDataError) else f"{type(err).__name__}: {err}"
