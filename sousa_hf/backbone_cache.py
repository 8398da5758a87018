"""A frozen backbone's outputs, computed once per clip and cached, so that a probe's epochs cost its head alone.

With `training_mode: freeze_backbone` the backbone is a fixed function of the audio: running it every
epoch (the costly part) recomputes the same numbers. `cache_backbone_outputs` runs it once per clip and
stores what the head needs in an Arrow cache (`datasets.map`), fingerprinted by the split, the
backbone's weights and config, the adapter (extractor settings and window) and the code that makes
the numbers, so that any change makes a new cache and an unchanged recipe (or another task on the same
backbone) reuses it. This is how s3prl makes probing cheap.

What is cached follows the pooling, which is all a frozen model does with the frames:
- poolings that are statistics over time (`mean`, `weighted_layers`, `layer_stats`): every hidden
  layer's mean and standard deviation over the clip's frames, `cached_layer_stats` (layers, 2 x width),
  a few KB per clip; one cache serves all three poolings.
- a pooling learned over time (`attentive_stats`): the frames themselves, `cached_hidden_states`
  (frames, layers, width) in float16, without padding.
- `stroke_statistics`: the clip's statistics of the strokes its frozen stroke head finds in the whole take (read
  in the model's windows when it is longer: `stroke_transcription.transcribe_take`), `cached_stroke_statistics`
  (a few dozen numbers; with `use_tempo`, from the row's `tempo_bpm`).

The metadata columns are kept (the audio is not), so `prepare_task` filters and labels the cache of a
loaded split for any task: one backbone pass serves all five.
"""

from __future__ import annotations

import hashlib
import json
import logging
from functools import lru_cache

import numpy as np
import torch
from datasets import Array2D, Array3D, Dataset, Features, List, Value
from datasets.fingerprint import Hasher

from .adapters import AudioAdapter
from .adapters.preprocessing import _single_threaded_in_workers, preprocessing_code_digest
from .data.audio import decode_audio
from .data.errors import SousaDataError
from .modeling_sousa import SousaPreTrainedModel, encode, masked_statistics
from .stroke_transcription import take_statistics, transcribe_take

logger = logging.getLogger(__name__)

CACHED_INPUTS = ("cached_layer_stats", "cached_hidden_states", "cached_stroke_statistics")
FRAMES_DTYPE = "float16"  # half the disk and memory of float32; the heads compute in float32
_DROPPED = ("audio", "midi")  # what a cache row does not need to keep


def cache_kind(model: SousaPreTrainedModel) -> str:
    """`layer_stats` when all the head sees is a statistic over time, `stroke_statistics` when it sees the statistics
    of its stroke head's strokes, else `frames` (a pooling learned over time, temporal blocks or a GRU, a tempo input
    or a stroke head)."""
    if getattr(model, "stroke_statistics", None) is not None:
        return "stroke_statistics"
    sousa = model.sousa
    on_frames = (sousa.attentive is not None or len(sousa.temporal) > 0 or sousa.temporal_gru is not None
                 or sousa.tempo is not None or model.strokes is not None)
    return "frames" if on_frames else "layer_stats"


def cache_backbone_outputs(dataset: Dataset, model: SousaPreTrainedModel, adapter: AudioAdapter, *,
                           num_proc: int | None = None, batch_size: int = 8) -> Dataset:
    """The rows of a loaded split with the backbone's outputs in place of their audio.

    Args:
        dataset: a split with an `audio` column, as `load_sousa` gives it (before or after filters).
        model: a SOUSA head whose backbone is frozen (its outputs are cached as they are now).
        adapter: the adapter that makes the backbone's inputs (evaluation crop: a cache holds one crop).
        num_proc: processes running the backbone.
        batch_size: clips per forward pass.
    """
    if not isinstance(dataset, Dataset):
        raise SousaDataError("cache: backbone needs a Dataset on disk, not a stream; use cache: null when streaming")
    if "audio" not in dataset.column_names:
        raise SousaDataError("cache: backbone needs the 'audio' config (the dataset has no 'audio' column)")
    kind = cache_kind(model)
    outputs = BackboneOutputs(model, adapter, kind)
    probe = outputs.shapes()
    features = Features({name: feature for name, feature in dataset.features.items()
                         if name not in _DROPPED})
    if kind == "layer_stats":
        features["cached_layer_stats"] = Array2D(shape=probe, dtype="float32")
    elif kind == "stroke_statistics":
        features["cached_stroke_statistics"] = List(Value("float32"), length=probe[-1])
    else:
        features["cached_hidden_states"] = Array3D(shape=(None, *probe), dtype=FRAMES_DTYPE)
    fingerprint = Hasher.hash([dataset._fingerprint, outputs.digest(), kind])
    if adapter.max_seconds is not None and adapter.length.train_crop != adapter.length.eval_crop:
        logger.info("cache: backbone holds each clip's %s crop; training sees no random crops",
                    adapter.length.eval_crop)
    cached = dataset.map(outputs, batched=True, batch_size=batch_size, num_proc=num_proc,
                         remove_columns=[c for c in _DROPPED if c in dataset.column_names], features=features,
                         new_fingerprint=fingerprint, desc=f"Caching {adapter.name} backbone outputs ({kind})")
    return cached


class BackboneOutputs:
    """The batched `map` function: SOUSA rows -> the frozen backbone's cached outputs."""

    def __init__(self, model: SousaPreTrainedModel, adapter: AudioAdapter, kind: str):
        self.model = model
        self.sousa = model.sousa
        self.adapter = adapter
        self.kind = kind

    def __call__(self, batch: dict) -> dict:
        _single_threaded_in_workers()
        ids = batch.get("sample_id") or [None] * len(batch["audio"])
        clips = [decode_audio(cell, sample_id) for cell, sample_id in zip(batch["audio"], ids)]
        out = {key: value for key, value in batch.items() if key not in _DROPPED}
        # Statistics describe every stroke of the take (read in the model's windows), not one crop of it.
        whole = self.kind == "stroke_statistics"
        values = self.outputs([self.adapter.prepare(array, rate, crop=not whole) for array, rate in clips],
                              batch.get("tempo_bpm"))
        out[{"layer_stats": "cached_layer_stats", "stroke_statistics": "cached_stroke_statistics"}.get(
            self.kind, "cached_hidden_states")] = values
        return out

    @torch.no_grad()
    def outputs(self, arrays: list[np.ndarray], tempo_bpm: list | None = None) -> list[np.ndarray]:
        sousa = self.sousa.eval()
        if self.kind == "stroke_statistics":
            model = self.model.eval()
            tempi = [None if tempo_bpm is None or not model.config.use_tempo else float(t)
                     for t in (tempo_bpm or [None] * len(arrays))]
            if model.config.use_tempo and None in tempi:
                raise SousaDataError("the stroke statistics' grid needs each clip's tempo_bpm (use_tempo)")
            return [take_statistics(transcribe_take(model, self.adapter, take, tempo), tempo, model.config)
                    .float().numpy() for take, tempo in zip(arrays, tempi)]
        inputs = self.adapter(arrays, sampling_rate=self.adapter.sampling_rate)
        device = next(sousa.parameters()).device
        inputs = {key: value.to(device) for key, value in inputs.items()}
        # Every layer of one width, whichever pooling asked: then one cache serves them all.
        all_layers = sousa.num_layers is not None
        last, hidden_states, mask = encode(sousa.backbone, sousa.config, inputs, output_hidden_states=all_layers)
        layers = hidden_states if all_layers else (last,)
        if self.kind == "layer_stats":
            statistics = torch.stack([masked_statistics(layer, mask) for layer in layers], dim=1)
            return list(statistics.float().cpu().numpy())  # (layers, 2 * width) per clip
        stacked = torch.stack(layers, dim=2)  # (batch, frames, layers, width)
        lengths = mask.sum(dim=1).tolist() if mask is not None else [stacked.shape[1]] * len(arrays)
        return [stacked[i, : int(n)].to(torch.float16).cpu().numpy() for i, n in enumerate(lengths)]

    def shapes(self) -> tuple[int, int]:
        """(layers, 2 x width) or (layers, width): one clip's outputs but its frames, from a second of silence."""
        probe = np.zeros(self.adapter.sampling_rate, dtype=np.float32)
        values = self.outputs([self.adapter.prepare(probe, self.adapter.sampling_rate)], [120.0])[0]
        return tuple(values.shape[-2:])

    def digest(self) -> str:
        """What the cached numbers depend on: weights, configs, the adapter's settings and the code."""
        digest = hashlib.sha256()
        # Stroke statistics come from the whole front end (backbone, temporal blocks, stroke head: all in its
        # weights), its peak threshold and whether the grid statistics are in.
        weights = self.sousa.backbone.state_dict()
        if self.kind == "stroke_statistics":  # not the head being trained on them
            weights = {name: value for name, value in self.model.state_dict().items()
                       if name.startswith(("sousa.", "strokes."))}
        for name, tensor in sorted(weights.items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        extractor = self.adapter.feature_extractor.to_dict()
        settings = {"backbone_config": self.sousa.config.backbone_config.to_dict(), "adapter": self.adapter.name,
                    "extractor": {k: v for k, v in extractor.items() if not isinstance(v, (np.ndarray, list))
                                  or len(v) < 64},
                    "length": self.adapter.length.to_dict(), "max_seconds": self.adapter.max_seconds,
                    "code": preprocessing_code_digest(),
                    "modeling": _modeling_digest()}
        if self.kind == "stroke_statistics":
            settings.update(stroke_threshold=self.sousa.config.stroke_threshold, use_tempo=self.sousa.config.use_tempo,
                            rhythm_patterns=self.sousa.config.rhythm_patterns,
                            pattern_evidence=self.sousa.config.pattern_evidence,
                            pattern_matches=self.sousa.config.pattern_matches)
        digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
        return digest.hexdigest()


@lru_cache(maxsize=1)
def _modeling_digest() -> str:
    """A digest of the modelling code (how the backbone runs, how strokes become statistics), read once: the code
    this process runs."""
    from . import modeling_sousa, stroke_statistics, stroke_transcription

    digest = hashlib.sha256()
    for module in (modeling_sousa, stroke_statistics, stroke_transcription):
        with open(module.__file__, "rb") as file:
            digest.update(file.read())
    return digest.hexdigest()[:16]


def pad_cached_inputs(features: list[dict]) -> dict[str, torch.Tensor]:
    """Collate cached backbone outputs: layer means stacked; frames padded, with `cached_mask`."""
    for name in ("cached_layer_stats", "cached_stroke_statistics"):
        if name in features[0]:
            return {name: torch.stack([torch.as_tensor(np.asarray(f[name])) for f in features]).float()}
    frames = [torch.as_tensor(np.asarray(f["cached_hidden_states"])) for f in features]
    longest = max(f.shape[0] for f in frames)
    batch = torch.zeros(len(frames), longest, *frames[0].shape[1:], dtype=torch.float32)
    mask = torch.zeros(len(frames), longest, dtype=torch.long)
    for i, values in enumerate(frames):
        batch[i, : len(values)] = values.float()
        mask[i, : len(values)] = 1
    return {"cached_hidden_states": batch, "cached_mask": mask}


__all__ = ["CACHED_INPUTS", "cache_backbone_outputs", "cache_kind", "pad_cached_inputs"]
