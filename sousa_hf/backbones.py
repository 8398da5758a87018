"""Naming a backbone and building a SOUSA model on it, sized to the adapter that feeds it.

A backbone is named by a Hub checkpoint (`facebook/hubert-base-ls960`), a local folder, or a family
with a variant: `<family>:random` (random init from the family's default config: the from-scratch
ablation that shows what pretraining buys) or `<family>:tiny` (a random config of a few hundred KB
for smoke tests). Families are the adapter names: wav2vec2, hubert, whisper, ast, clap, cnn.
`backbone_config` overrides apply on top of whichever config that gives.
"""

from __future__ import annotations

import copy
import json
import math
import os

import torch
from safetensors.torch import load_file
from torch import nn
from transformers import (
    ASTConfig,
    ASTModel,
    AutoConfig,
    ClapAudioConfig,
    ClapModel,
    FeatureExtractionMixin,
    HubertConfig,
    HubertModel,
    PretrainedConfig,
    Wav2Vec2Config,
    Wav2Vec2Model,
    WhisperConfig,
    WhisperModel,
)

from .adapters import ADAPTERS, MODEL_TYPE_ADAPTERS, AudioAdapter, LengthPolicy, get_adapter
from .configuration_sousa import SousaCNNConfig, SousaConfig
from .data.errors import SousaDataError
from .data.tasks import get_task
from .modeling_sousa import (
    SousaForAudioClassification,
    SousaForMultiTask,
    SousaForScoreRegression,
    SousaForStrokes,
    SousaPreTrainedModel,
    SousaStrokeHead,
)

VARIANTS = ("random", "tiny")
DEFAULT_CONFIGS: dict[str, type[PretrainedConfig]] = {
    "wav2vec2": Wav2Vec2Config,
    "hubert": HubertConfig,
    "whisper": WhisperConfig,
    "ast": ASTConfig,
    "clap": ClapAudioConfig,
    "cnn": SousaCNNConfig,
}
# Hidden size 32 and two layers, as in Transformers' own model tests: a whole recipe runs in seconds.
_TINY_WAVEFORM = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                      conv_dim=(32, 32, 32), conv_stride=(4, 4, 4), conv_kernel=(8, 8, 8),
                      num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, layerdrop=0.0)
TINY_CONFIGS: dict[str, dict] = {
    "wav2vec2": _TINY_WAVEFORM,
    "hubert": _TINY_WAVEFORM,
    "whisper": dict(d_model=32, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=37, decoder_layers=1,
                    decoder_attention_heads=2, decoder_ffn_dim=37),
    "ast": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37),
    "clap": dict(hidden_size=32, patch_embeds_hidden_size=16, depths=[1, 1], num_attention_heads=[2, 2],
                 projection_dim=16),
    "cnn": dict(channels=(16, 32), hidden_size=32),
}
_CLASSES = {"classification": SousaForAudioClassification, "regression": SousaForScoreRegression,
            "multitask": SousaForMultiTask, "strokes": SousaForStrokes}


def build_model(task: str, backbone: str = "cnn:tiny", *, backbone_config: dict | None = None,
                length: LengthPolicy | None = None, pooling: str = "mean", classifier_dropout: float = 0.1,
                regression_loss: str = "mse", huber_delta: float = 1.0,
                target_weights: list[float] | dict[str, float] | None = None, feature_extractor: str | None = None,
                feature_extractor_config: dict | None = None, temporal_blocks: int = 0, temporal_gru: int = 0,
                aux_strokes: float = 0.0,
                use_tempo: bool = False, stroke_onset_weight: float = 1.0, stroke_cluster_ms: float = 0.0,
                statistics_head: str = "mlp", boosted_trees: dict | None = None, rhythm_patterns: dict | None = None,
                pattern_evidence: bool = False, pattern_matches: bool = False
                ) -> tuple[SousaPreTrainedModel, AudioAdapter]:
    """A SOUSA model for `task` on `backbone`, and the adapter that makes its inputs.

    Args:
        task: `skill4`, `skill_binary`, `overall_score`, `multitask`, `rudiment40` or `strokes`.
        backbone: a checkpoint (Hub id or folder), or `<family>:random` / `<family>:tiny`.
        backbone_config: overrides of the backbone config's fields, e.g. `{"num_hidden_layers": 4}`.
        length: the adapter's length policy; the model's fixed windows (Whisper's positions, AST's
            `max_length`) are sized to it.
        pooling: `mean`, `attentive_stats`, `weighted_layers`, `layer_stats` or `stroke_statistics` (see `SousaConfig`;
            `stroke_statistics` then takes a trained stroke model's weights: `load_stroke_front_end`).
        classifier_dropout, regression_loss, huber_delta: see `SousaConfig`.
        target_weights: multi-task loss weight per target (a list in target order or a dict by name).
        feature_extractor: a folder or Hub id whose feature extractor to use instead of the backbone's
            (e.g. one `sousa-hf adapters stats` saved with SOUSA's statistics); same family as `backbone`.
        feature_extractor_config: settings of the family's default feature extractor, e.g. `{"hop_length": 220}`
            for the CNN's 5 ms frames (a `<family>:random/tiny` backbone only: a checkpoint brings its own).
        temporal_blocks, temporal_gru, aux_strokes, use_tempo, stroke_onset_weight, stroke_cluster_ms: see
            `SousaConfig`; the `strokes` task and `aux_strokes` need a backbone with frames in time (not AST or CLAP).
        statistics_head, boosted_trees: with `pooling="stroke_statistics"`, an MLP or gradient-boosted trees and
            their settings (see `SousaConfig`).
        rhythm_patterns: with `pooling="stroke_statistics"` and `use_tempo`, the rhythms to measure takes against
            (`sousa_hf.data.rhythm_patterns.fit_rhythm_patterns`; see `SousaConfig`).
        pattern_evidence: with `rhythm_patterns`, read the stroke head at each notated position too (see `SousaConfig`).
        pattern_matches: with `rhythm_patterns`, add how much worse than the best each rhythm matches (`SousaConfig`).

    Returns:
        `(model, adapter)`; a checkpoint's weights are loaded into the backbone, the head is new.
    """
    task = get_task(task)
    family, variant, checkpoint = parse_backbone(backbone)
    if feature_extractor_config and (checkpoint or feature_extractor):
        raise SousaDataError("feature_extractor_config sets the default extractor of a <family>:random/tiny backbone; "
                             f"{checkpoint or feature_extractor!r} brings its own (use feature_extractor for another)")
    if feature_extractor is None:
        adapter = get_adapter(checkpoint or family, length, **(feature_extractor_config or {}))
    else:
        adapter = _adapter_with_extractor(family, feature_extractor, length)
    pretrained = None
    if checkpoint is None:
        config = DEFAULT_CONFIGS[family](**(TINY_CONFIGS[family] if variant == "tiny" else {}))
        _apply_overrides(config, backbone_config, backbone)
        _size_to_adapter(family, config, adapter)
    else:
        pretrained = load_pretrained_backbone(family, checkpoint, backbone_config, adapter)
        config = pretrained.config

    kind_kwargs = {}
    if task.kind == "classification":
        kind_kwargs = dict(id2label=task.id2label, label2id=task.label2id)
    elif task.kind != "strokes":
        kind_kwargs = dict(target_names=list(task.targets), target_scale=task.target_scale,
                           target_weights=_target_weights(task.targets, target_weights))
    frame_seconds = output_frame_seconds(family, config, adapter)
    if (task.kind == "strokes" or aux_strokes or pooling == "stroke_statistics") and frame_seconds is None:
        raise SousaDataError(f"stroke outputs need a backbone whose frames follow time; {family} ({backbone!r}) has "
                             "none: use cnn, whisper, wav2vec2 or hubert")
    sousa_config = SousaConfig(
        backbone_config=config, backbone=backbone, task=task.name, task_kind=task.kind, pooling=pooling,
        classifier_dropout=classifier_dropout, regression_loss=regression_loss, huber_delta=huber_delta,
        adapter=adapter.name, sampling_rate=adapter.sampling_rate, max_seconds=adapter.max_seconds,
        frame_seconds=frame_seconds, temporal_blocks=temporal_blocks, temporal_gru=temporal_gru,
        aux_strokes=aux_strokes, use_tempo=use_tempo,
        stroke_onset_weight=stroke_onset_weight, stroke_cluster_ms=stroke_cluster_ms, statistics_head=statistics_head,
        boosted_trees=boosted_trees, rhythm_patterns=rhythm_patterns, pattern_evidence=pattern_evidence,
        pattern_matches=pattern_matches, **kind_kwargs)
    model = _CLASSES[task.kind](sousa_config)
    if pretrained is not None:
        model.sousa.backbone.load_state_dict(pretrained.state_dict())
    return model, adapter


# What a clip model takes from a trained stroke model (`strokes_from`): every weight that finds the strokes.
STROKE_FRONT_END = ("sousa.backbone.", "sousa.temporal.", "strokes.")


def load_stroke_front_end(model: SousaPreTrainedModel, source: str, feature_extractor: FeatureExtractionMixin) -> None:
    """Give `model` (with `pooling="stroke_statistics"`) the backbone, temporal blocks, stroke head and onset
    threshold of the trained stroke model at `source` (a `recipes/strokes_cnn.yaml` run's folder or a Hub id),
    frozen: the clip head then learns from the strokes that model finds. `feature_extractor` (the clip model's)
    must make the stroke model's features: its settings are compared with the stroke model's saved ones."""

    if model.config.pooling != "stroke_statistics":
        raise SousaDataError(f"strokes_from gives a stroke front end to pooling='stroke_statistics', not "
                             f"{model.config.pooling!r}")
    if os.path.isdir(source) and not os.path.isfile(os.path.join(source, "config.json")):
        raise SousaDataError(f"strokes_from={source!r} holds no model; train one first: sousa-hf train "
                             "recipes/strokes_cnn.yaml (its output_dir), or name a stroke model on the Hub")
    try:
        config = SousaConfig.from_pretrained(source)
    except OSError as err:
        raise SousaDataError(f"strokes_from={source!r}: {err}; train one with sousa-hf train "
                             "recipes/strokes_cnn.yaml, or name a stroke model on the Hub") from err
    if not (config.task_kind == "strokes" or config.aux_strokes):
        raise SousaDataError(f"strokes_from={source!r} is a {config.task} model without a stroke head")
    ours = model.config
    mismatched = [name for name, a, b in (
        ("backbone_config", config.backbone_config.to_diff_dict(), ours.backbone_config.to_diff_dict()),
        ("frame_seconds", config.frame_seconds, ours.frame_seconds),
        ("temporal_blocks", config.temporal_blocks, ours.temporal_blocks),
        ("temporal_gru", config.temporal_gru, ours.temporal_gru),
        ("sampling_rate", config.sampling_rate, ours.sampling_rate)) if _as_json(a) != _as_json(b)]
    try:
        theirs, _ = FeatureExtractionMixin.get_feature_extractor_dict(source)
    except OSError as err:
        raise SousaDataError(f"strokes_from={source!r} has no feature extractor (preprocessor_config.json): "
                             f"{err}") from err
    mismatched += [f"feature_extractor_config.{key} ({theirs.get(key)!r} there, {value!r} here)"
                   for key, value in _feature_settings(feature_extractor.to_dict()).items()
                   if _as_json(theirs.get(key)) != _as_json(value)]
    if mismatched:
        raise SousaDataError(f"strokes_from={source!r} differs from this recipe in {', '.join(mismatched)}: set the "
                             "recipe's backbone_config, feature_extractor_config, temporal_blocks and temporal_gru "
                             "to the stroke model's (recipes/strokes_cnn.yaml)")
    if os.path.isdir(source):
        path = os.path.join(source, "model.safetensors")
    else:
        from huggingface_hub import hf_hub_download

        path = hf_hub_download(source, "model.safetensors")
    weights = {name: tensor for name, tensor in load_file(path).items() if name.startswith(STROKE_FRONT_END)}
    missing = [name for name in model.state_dict() if name.startswith(STROKE_FRONT_END) and name not in weights]
    if missing:
        raise SousaDataError(f"strokes_from={source!r} lacks {len(missing)} weight(s) of the stroke front end, e.g. "
                             f"{missing[0]}")
    # The stroke model decodes its clusters (or not) as it was trained to: its head's outputs come with it.
    ours.stroke_cluster_ms = config.stroke_cluster_ms
    model.strokes = SousaStrokeHead(model.sousa.hidden_size, ours.stroke_head_outputs)
    model.load_state_dict(weights, strict=False)
    ours.stroke_threshold = config.stroke_threshold
    model.sousa.requires_grad_(False)
    model.strokes.requires_grad_(False)


def _feature_settings(extractor_dict: dict) -> dict:
    """What shapes a feature extractor's features: its saved settings less the suite's length policy and the
    auto-class bookkeeping (a clip model reads whole takes where its stroke model trained on crops)."""
    return {key: value for key, value in extractor_dict.items()
            if not key.startswith("sousa_") and key not in ("auto_map", "processor_class")}


def _as_json(value):
    """Config values as JSON would have them (tuples and lists alike); `transformers_version` aside."""
    if isinstance(value, dict):
        value = {k: v for k, v in value.items() if k != "transformers_version"}
    return json.loads(json.dumps(value, default=str))


def output_frame_seconds(family: str, config: PretrainedConfig, adapter: AudioAdapter) -> float | None:
    """Seconds between two of the backbone's output frames; None where its outputs are not a time axis."""
    extractor = adapter.feature_extractor
    if family == "cnn":
        pooling = 2 ** len(config.channels) if config.time_pooling else 1
        return extractor.hop_length * pooling / extractor.sampling_rate
    if family == "whisper":
        return 2 * extractor.hop_length / extractor.sampling_rate  # conv2 has stride 2
    if family in ("wav2vec2", "hubert"):
        return math.prod(config.conv_stride) / extractor.sampling_rate
    return None


def _adapter_with_extractor(family: str, source: str, length: LengthPolicy | None) -> AudioAdapter:
    adapter_class = ADAPTERS[family]
    extractor = get_adapter(source, length).feature_extractor
    if not isinstance(extractor, adapter_class.feature_extractor_class):
        raise SousaDataError(f"feature_extractor {source!r} holds a {type(extractor).__name__}; the {family} backbone "
                             f"takes a {adapter_class.feature_extractor_class.__name__}")
    return adapter_class(extractor, length)


def parse_backbone(backbone: str) -> tuple[str, str | None, str | None]:
    """`(family, variant, checkpoint)`: `hubert:tiny` -> `("hubert", "tiny", None)`, a checkpoint ->
    `(its family, None, checkpoint)`."""
    name, _, variant = backbone.partition(":")
    if variant:
        if name not in ADAPTERS or variant not in VARIANTS:
            raise SousaDataError(f"unknown backbone {backbone!r}; expected <family>:<variant> with family one of "
                                 f"{', '.join(ADAPTERS)} and variant random or tiny, or a checkpoint")
        return name, variant, None
    if name in ADAPTERS:
        raise SousaDataError(f"backbone {backbone!r} names a family; say which: {name}:random (its default config, "
                             f"random weights), {name}:tiny (for smoke tests), or a checkpoint")
    try:
        model_type = AutoConfig.from_pretrained(backbone).model_type
    except Exception as err:  # OSError, ValueError or a Hub error, depending on what is missing
        raise SousaDataError(f"unknown backbone {backbone!r}: not <family>:random/tiny (families: "
                             f"{', '.join(ADAPTERS)}) and no loadable checkpoint ({err})") from err
    if model_type not in MODEL_TYPE_ADAPTERS or MODEL_TYPE_ADAPTERS[model_type] not in DEFAULT_CONFIGS:
        raise SousaDataError(f"backbone {backbone!r} is a {model_type!r} model, which the suite has no head for; "
                             f"expected one of {', '.join(sorted(MODEL_TYPE_ADAPTERS))}")
    return MODEL_TYPE_ADAPTERS[model_type], None, backbone


def load_pretrained_backbone(family: str, checkpoint: str, overrides: dict | None, adapter: AudioAdapter
                             ) -> nn.Module:
    """The backbone module with the checkpoint's weights, its config overridden and sized to the adapter."""
    full_config = AutoConfig.from_pretrained(checkpoint)
    config = full_config.audio_config if family == "clap" and hasattr(full_config, "audio_config") else full_config
    _apply_overrides(config, overrides, checkpoint)
    if family == "whisper":
        backbone = WhisperModel.from_pretrained(checkpoint, config=full_config).get_encoder()
    elif family == "clap":
        backbone = ClapModel.from_pretrained(checkpoint, config=full_config).audio_model
    else:
        model_class = {"wav2vec2": Wav2Vec2Model, "hubert": HubertModel, "ast": ASTModel}[family]
        backbone = model_class.from_pretrained(checkpoint, config=config)
    resized = copy.deepcopy(backbone.config)
    _size_to_adapter(family, resized, adapter)
    if family == "whisper" and resized.max_source_positions != backbone.config.max_source_positions:
        _slice_whisper_positions(backbone, resized.max_source_positions)
    if family == "ast" and resized.max_length != backbone.config.max_length:
        _interpolate_ast_positions(backbone, resized.max_length)
    _check_matches_adapter(family, backbone.config, adapter, checkpoint)
    return backbone


def _apply_overrides(config: PretrainedConfig, overrides: dict | None, backbone: str) -> None:
    for key, value in (overrides or {}).items():
        if not hasattr(config, key):
            raise SousaDataError(f"backbone_config: {type(config).__name__} of {backbone!r} has no field {key!r}")
        setattr(config, key, list(value) if isinstance(value, tuple) else value)


def _size_to_adapter(family: str, config: PretrainedConfig, adapter: AudioAdapter) -> None:
    """Make a backbone config take exactly the adapter's inputs (mel bins, fixed windows, CLAP fusion)."""
    extractor = adapter.feature_extractor
    if family == "whisper":
        config.num_mel_bins = extractor.feature_size
        config.max_source_positions = adapter.num_frames // 2  # conv2 halves the frames
    elif family == "ast":
        config.num_mel_bins = extractor.num_mel_bins
        config.max_length = extractor.max_length
    elif family == "clap":
        config.num_mel_bins = extractor.feature_size
        config.enable_fusion = extractor.truncation == "fusion"
    elif family == "cnn":
        config.num_mel_bins = extractor.feature_size


def _check_matches_adapter(family: str, config: PretrainedConfig, adapter: AudioAdapter, checkpoint: str) -> None:
    expected = copy.deepcopy(config)
    _size_to_adapter(family, expected, adapter)
    changed = {k: (getattr(config, k), getattr(expected, k)) for k in ("num_mel_bins", "enable_fusion")
               if hasattr(config, k) and getattr(config, k) != getattr(expected, k)}
    if changed:
        raise SousaDataError(f"{checkpoint!r}: its model and its feature extractor disagree on {changed} (model, "
                             "extractor); load a checkpoint whose preprocessor_config.json matches its config.json")


def _slice_whisper_positions(encoder: nn.Module, positions: int) -> None:
    """Keep the first `positions` of Whisper's sinusoidal positions: a shorter window, the same embeddings
    the clip's frames had in the 30 s one (Whisper pads at the end)."""
    old = encoder.embed_positions
    new = nn.Embedding(positions, old.embedding_dim).to(old.weight.device, old.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(old.weight[:positions])
    new.requires_grad_(False)
    encoder.embed_positions = new
    encoder.max_source_positions = positions
    encoder.config.max_source_positions = positions


def _interpolate_ast_positions(model: nn.Module, max_length: int) -> None:
    """Resample AST's (frequency x time) grid of position embeddings to a window of `max_length` frames."""
    embeddings = model.embeddings
    frequency, old_time = embeddings.get_shape(model.config)
    resized = copy.deepcopy(model.config)
    resized.max_length = max_length
    _, new_time = embeddings.get_shape(resized)
    positions = embeddings.position_embeddings.data
    width = positions.shape[-1]
    grid = positions[:, 2:].reshape(1, frequency, old_time, width).permute(0, 3, 1, 2)
    grid = nn.functional.interpolate(grid, size=(frequency, new_time), mode="bilinear", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, frequency * new_time, width)
    embeddings.position_embeddings = nn.Parameter(torch.cat([positions[:, :2], grid], dim=1))
    model.config.max_length = max_length


def _target_weights(targets: tuple[str, ...], weights: list[float] | dict[str, float] | None) -> list[float] | None:
    if weights is None or isinstance(weights, (list, tuple)):
        return None if weights is None else list(weights)
    unknown = sorted(set(weights) - set(targets))
    if unknown:
        raise SousaDataError(f"target_weights names unknown target(s) {unknown}; the targets are {', '.join(targets)}")
    return [float(weights.get(target, 1.0)) for target in targets]
