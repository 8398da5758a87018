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
from .modeling_sousa import is_task_model
from .stroke_transcription import grid_deviations, take_statistics, transcribe_take

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
        if not is_task_model(model):
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

    @property
    def transcribes_strokes(self) -> bool:
        """Whether the model has a stroke head (the `strokes` task, or a clip task trained with `aux_strokes`)."""
        return getattr(self.model, "strokes", None) is not None

    @property
    def scores_strokes(self) -> bool:
        """Whether the clip head judges the statistics of the take's strokes (`pooling: stroke_statistics`)."""
        return getattr(self.model, "stroke_statistics", None) is not None

    @property
    def needs_tempo(self) -> bool:
        return bool(getattr(self.model.config, "use_tempo", False))

    @torch.no_grad()
    def predict(self, audios: list[tuple[np.ndarray, int]], tempo_bpm: float | None = None,
                subdivision: int = 4) -> list[dict]:
        """`[(array, sampling_rate), ...]` -> `[{"label": ..., "scores": {...}}, ...]`.

        Classifiers give the most likely label and every label's probability; score models give
        `label: None` and each target's score on 0-100. A clip the model cannot judge (silence, or far
        shorter than any SOUSA clip) still gets its outputs, with a `"warning"` saying why not to trust them.
        A model with a stroke head also gives `"strokes"` over the whole take (in windows of the model's
        `max_seconds` when it is longer): each stroke's `time_ms` (from the take's start), `velocity` (0-127),
        `is_grace` and `confidence`, and with `tempo_bpm` its `deviation_ms` from the nearest position of a
        grid of `subdivision` per beat (negative: early).

        Args:
            tempo_bpm: the metronome's tempo; required by a model trained with `use_tempo`.
        """
        if self.needs_tempo and tempo_bpm is None:
            raise SousaDataError("this model takes the performance's tempo: pass tempo_bpm (sousa-hf predict --tempo "
                                 "BPM), the metronome's beats per minute")
        results = []
        for start in range(0, len(audios), self.batch_size):
            batch = audios[start : start + self.batch_size]
            if self.model.config.task_kind == "strokes":  # no clip head: its strokes are all there is
                decoded = [{"label": None, "scores": {}} for _ in batch]
            elif self.scores_strokes:  # judged from every stroke of the take, as its training cache was
                found = [self._take_strokes(array, rate, tempo_bpm) for array, rate in batch]
                statistics = torch.stack([take_statistics(strokes, tempo_bpm if self.needs_tempo else None,
                                                          self.model.config) for strokes in found])
                decoded = self._decode(self.model(cached_stroke_statistics=statistics.to(self.model.device)))
            else:  # the clip head judges the window it was trained on; strokes come from the whole take below
                decoded = self._decode(self._forward([self.adapter.prepare(array, rate) for array, rate in batch],
                                                     tempo_bpm))
            for k, ((array, rate), result) in enumerate(zip(batch, decoded)):
                if self.transcribes_strokes:
                    result["strokes"] = self.take_strokes(array, rate, tempo_bpm, subdivision,
                                                          found[k] if self.scores_strokes else None)
                warning = input_warning(np.asarray(array), int(rate))
                results.append({**result, "warning": warning} if warning else result)
        return results

    def _forward(self, arrays: list[np.ndarray], tempo_bpm: float | None):
        inputs = self.adapter(arrays, sampling_rate=self.adapter.sampling_rate)
        if tempo_bpm is not None and self.needs_tempo:
            inputs["tempo_bpm"] = torch.full((len(arrays),), float(tempo_bpm))
        return self.model(**{key: value.to(self.model.device) for key, value in inputs.items()})

    @torch.no_grad()
    def take_strokes(self, array: np.ndarray, sampling_rate: int, tempo_bpm: float | None = None,
                     subdivision: int = 4, found: dict | None = None) -> list[dict]:
        """Every stroke of a whole take (see `predict`), read in windows when it is longer than the model's
        (`stroke_transcription.transcribe_take`; `found`: its output for this take, when already made)."""
        found = found if found is not None else self._take_strokes(array, sampling_rate, tempo_bpm)
        times = found["time_ms"].astype(np.float64)
        deviations = grid_deviations(times, tempo_bpm, subdivision) if tempo_bpm else None
        return [{"time_ms": round(float(t), 2), "velocity": round(float(v) * 127.0, 1), "is_grace": bool(g),
                 "confidence": round(float(c), 3),
                 **({"deviation_ms": round(float(deviations[k]), 2)} if deviations is not None else {})}
                for k, (t, v, g, c) in enumerate(zip(times, found["velocity"], found["is_grace"],
                                                     found["confidence"]))]

    def _take_strokes(self, array: np.ndarray, sampling_rate: int, tempo_bpm: float | None) -> dict:
        take = self.adapter.prepare(array, sampling_rate, crop=False)
        return transcribe_take(self.model, self.adapter, take, tempo_bpm if self.needs_tempo else None,
                               self.batch_size)

    def _decode(self, output) -> list[dict]:
        config = self.model.config
        if self.is_classifier:
            probabilities = output.logits.float().softmax(-1).cpu().numpy()
            return [{"label": config.id2label[int(row.argmax())],
                     "scores": {config.id2label[i]: float(p) for i, p in enumerate(row)}} for row in probabilities]
        scores = output.scores.float().cpu().numpy()
        return [{"label": None, "scores": {name: float(s) for name, s in zip(config.target_names, row)}}
                for row in scores]

    def predict_files(self, paths: Iterable[str | Path], progress: bool = True, tempo_bpm: float | None = None,
                      subdivision: int = 4, timeline_dir: str | Path | None = None) -> list[dict]:
        """Predict for files and folders (searched recursively for audio files), in batches.

        A file that cannot be read or processed gets `{"file", "error"}` and the rest go on. `tempo_bpm`
        and `subdivision` are as for `predict`; with `timeline_dir`, a stroke model also draws each take's
        timeline there (`<file name>.png`: the waveform, the strokes found, their deviations from the grid)
        and names it in the result's `"timeline"`.
        """
        if self.needs_tempo and tempo_bpm is None:
            raise SousaDataError("this model takes the performance's tempo: pass --tempo BPM (tempo_bpm), the "
                                 "metronome's beats per minute")
        if timeline_dir is not None and not self.transcribes_strokes:
            raise SousaDataError("a timeline shows strokes, and this model has no stroke head (train with task: "
                                 "strokes or aux_strokes)")
        files = list(expand_audio_paths(paths))
        results = []
        with tqdm(total=len(files), desc="predicting", unit="clip", disable=not progress) as bar:
            for start in range(0, len(files), self.batch_size):
                chunk = files[start : start + self.batch_size]
                results.extend(self._predict_chunk(chunk, tempo_bpm, subdivision, timeline_dir))
                bar.update(len(chunk))
        return results

    def _predict_chunk(self, files: list[Path], tempo_bpm: float | None, subdivision: int,
                       timeline_dir: str | Path | None) -> list[dict]:
        decoded, results = {}, {}
        for file in files:
            try:
                decoded[file] = read_audio_file(file)
            except Exception as err:  # any unreadable file is reported, never fatal
                results[file] = {"file": str(file), "error": _describe(err)}
        try:
            predictions = self.predict(list(decoded.values()), tempo_bpm, subdivision) if decoded else []
            for file, prediction in zip(decoded, predictions):
                results[file] = {"file": str(file), **prediction}
        except Exception:  # one bad clip (e.g. NaN samples) must not cost the batch: retry clip by clip
            for file, audio in decoded.items():
                try:
                    results[file] = {"file": str(file), **self.predict([audio], tempo_bpm, subdivision)[0]}
                except Exception as err:
                    results[file] = {"file": str(file), "error": _describe(err)}
        if timeline_dir is not None:
            from .stroke_timeline import plot_stroke_timeline

            for file, (array, rate) in decoded.items():
                if "strokes" in results[file]:
                    path = Path(timeline_dir) / f"{file.name}.png"
                    plot_stroke_timeline(array, rate, results[file]["strokes"], path, tempo_bpm=tempo_bpm,
                                         title=file.name)
                    results[file]["timeline"] = str(path)
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
