"""SOUSA models: a pretrained audio backbone (or the suite's CNN), pooling over time, and a task head.

Backbones: Wav2Vec2, HuBERT, the Whisper encoder, AST, the CLAP audio tower and `SousaCNNModel`, built
from the config nested in `SousaConfig.backbone_config`. Heads: `SousaForAudioClassification`
(single-label: skill tiers, binary skill, rudiments), `SousaForScoreRegression` (a 0-100 score as 0-1)
and `SousaForMultiTask` (a regression head per target, the loss masked where a target is null).

Imports only torch, transformers, the configuration file, `stroke_statistics.py` and `boosted_trees.py`, so it travels
as remote code (Transformers copies a module's relative imports with it).
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass

import torch
from torch import nn
from transformers import (
    ASTConfig,
    ASTModel,
    ClapAudioModel,
    HubertModel,
    PreTrainedModel,
    Wav2Vec2Model,
)
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput
from transformers.models.whisper.modeling_whisper import WhisperEncoder
from transformers.utils import ModelOutput

from .boosted_trees import BoostedTrees, BoostedTreesSettings, FittedTrees, trees_per_iteration
from .configuration_sousa import SousaCNNConfig, SousaConfig
from .stroke_statistics import StrokeStatisticsEncoder, batch_statistics, statistic_names

# A backbone config's `model_type` -> its family (the name of the `sousa_hf` adapter that feeds it).
BACKBONE_FAMILIES = {
    "wav2vec2": "wav2vec2",
    "hubert": "hubert",
    "whisper": "whisper",
    "audio-spectrogram-transformer": "ast",
    "clap_audio_model": "clap",
    "sousa_cnn": "cnn",
}
# Family -> (the input it takes, that input's number of dimensions with the batch).
FAMILY_INPUTS = {
    "wav2vec2": ("input_values", 2),
    "hubert": ("input_values", 2),
    "whisper": ("input_features", 3),
    "ast": ("input_values", 3),
    "clap": ("input_features", 4),
    "cnn": ("input_features", 3),
}


def backbone_family(config: SousaConfig) -> str:
    model_type = config.backbone_config.model_type
    if model_type not in BACKBONE_FAMILIES:
        raise ValueError(f"unknown backbone model_type {model_type!r}; expected one of {', '.join(BACKBONE_FAMILIES)}")
    return BACKBONE_FAMILIES[model_type]


# --------------------------------------------------------------------------- the suite's CNN


@dataclass
class SousaCNNOutput(BaseModelOutput):
    """`BaseModelOutput` plus `frame_mask` (batch, frames): 1 where an output frame holds audio."""

    frame_mask: torch.Tensor | None = None


class SousaCNNBlock(GradientCheckpointingLayer):
    """Convolution, a norm over each clip's real frames, GELU, then 2x2 max pooling (halves frequency and time).

    The norm's statistics come from one clip and only its real frames (a group norm with the padding
    masked out), and padded frames are zeroed before every convolution and pooling: a clip gives the
    same vector alone or padded in any batch, and one large batch the same gradients as the same
    rows split over gradient accumulation or processes (which batch norm would not). A batch with no
    padding takes torch's fused group norm instead: the same numbers, at less than half the cost.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, norm_groups: int, pool_time: bool = True):
        super().__init__()
        self.pool_time = pool_time
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.groups = math.gcd(norm_groups, out_channels)
        self.norm_weight = nn.Parameter(torch.ones(out_channels))
        self.norm_bias = nn.Parameter(torch.zeros(out_channels))
        self.activation = nn.GELU()

    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor, padded: bool = True
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """`hidden_states` (batch, channels, mels, frames), `mask` (batch, frames) -> both pooled.
        `padded=False` promises that every frame is real (the mask is all ones)."""
        if padded:
            frames = mask[:, None, None, :].to(hidden_states.dtype)
            hidden = self.activation(self._masked_group_norm(self.conv(hidden_states * frames) * frames, mask)) * frames
        else:
            hidden = self.activation(nn.functional.group_norm(self.conv(hidden_states), self.groups, self.norm_weight,
                                                              self.norm_bias, 1e-5))
        if not self.pool_time:  # frequency only: the frame rate stays the input's (for stroke timing)
            return nn.functional.max_pool2d(hidden, (2, 1)), mask
        hidden = nn.functional.max_pool2d(hidden, 2)
        # An output frame is real only if both of its input frames are: a clip's odd last frame is then
        # dropped whether or not padding follows it, as floor pooling drops it when nothing does.
        pooled_mask = -nn.functional.max_pool1d(-mask[:, None].to(hidden.dtype), 2)[:, 0]
        return hidden, pooled_mask

    def _masked_group_norm(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Group norm of `hidden` (padded frames zeroed) with statistics from each clip's real frames.

        From the sum and the sum of squares, with the affine folded into one multiply-add: half the
        passes over the activations of the two-pass form, which the CNN's step time is made of.
        """
        batch, channels, mels, _ = hidden.shape
        per_group = channels // self.groups
        grouped = hidden.reshape(batch, self.groups, -1)
        count = (mask.sum(dim=1) * (per_group * mels)).clamp(min=1.0)[:, None]
        mean = grouped.sum(dim=-1) / count
        variance = (torch.linalg.vector_norm(grouped, dim=-1).pow(2) / count - mean.pow(2)).clamp(min=0.0)
        scale = torch.rsqrt(variance + 1e-5).repeat_interleave(per_group, dim=1) * self.norm_weight
        shift = self.norm_bias - mean.repeat_interleave(per_group, dim=1) * scale
        return torch.addcmul(shift[:, :, None, None], hidden, scale[:, :, None, None])


class SousaCNNModel(PreTrainedModel):
    """Log-mel frames `(batch, frames, num_mel_bins)` -> frame vectors `(batch, frames / 2**blocks, hidden_size)`."""

    config_class = SousaCNNConfig
    base_model_prefix = "cnn"
    main_input_name = "input_features"
    supports_gradient_checkpointing = True

    def __init__(self, config: SousaCNNConfig):
        super().__init__(config)
        if config.num_mel_bins < 2 ** len(config.channels):
            raise ValueError(f"num_mel_bins={config.num_mel_bins} is too few for {len(config.channels)} blocks that "
                             f"each halve frequency; use at least {2 ** len(config.channels)} or fewer channels")
        widths = [1, *config.channels]
        self.blocks = nn.ModuleList(SousaCNNBlock(a, b, config.kernel_size, config.norm_groups, config.time_pooling)
                                    for a, b in zip(widths, widths[1:]))
        self.projection = nn.Linear(config.channels[-1], config.hidden_size)
        self.dropout = nn.Dropout(config.dropout)
        self.post_init()

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, SousaCNNBlock):
            init.ones_(module.norm_weight)
            init.zeros_(module.norm_bias)

    @property
    def min_frames(self) -> int:
        return 2 ** len(self.blocks) if self.config.time_pooling else 1

    def forward(self, input_features: torch.Tensor, attention_mask: torch.Tensor | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None, **kwargs
                ) -> SousaCNNOutput:
        if input_features.ndim != 3 or input_features.shape[-1] != self.config.num_mel_bins:
            raise ValueError(f"SousaCNNModel expects input_features of shape (batch, frames, "
                             f"{self.config.num_mel_bins}), got {tuple(input_features.shape)}")
        batch, frames = input_features.shape[:2]
        lengths = (torch.full((batch,), frames, device=input_features.device) if attention_mask is None
                   else attention_mask.to(input_features.device).sum(dim=1))
        if frames < self.min_frames:
            input_features = nn.functional.pad(input_features, (0, 0, 0, self.min_frames - frames))
        # A clip shorter than the pooling stack counts the silence after it as real, alone or in a batch.
        lengths = lengths.clamp(min=self.min_frames)
        mask = (torch.arange(input_features.shape[1], device=input_features.device)[None] < lengths[:, None]).float()
        hidden = input_features.transpose(1, 2)[:, None]  # (batch, 1, mels, frames)
        padded = bool((mask < 1).any())  # pooling an all-real mask keeps it all real
        states = []
        for block in self.blocks:
            hidden, mask = block(hidden, mask, padded)
            states.append(hidden.mean(dim=2).transpose(1, 2))
        last = self.dropout(self.projection(states[-1]))
        return SousaCNNOutput(last_hidden_state=last, hidden_states=(*states, last) if output_hidden_states else None,
                              frame_mask=mask.to(torch.long))


# --------------------------------------------------------------------------- backbones


def build_backbone(config: SousaConfig) -> nn.Module:
    family, backbone_config = backbone_family(config), config.backbone_config
    if family == "wav2vec2":
        return Wav2Vec2Model(backbone_config)
    if family == "hubert":
        return HubertModel(backbone_config)
    if family == "whisper":
        return WhisperEncoder(backbone_config)
    if family == "ast":
        return ASTModel(backbone_config)
    if family == "clap":
        return ClapAudioModel(backbone_config)
    return SousaCNNModel(backbone_config)


def num_hidden_layers(config: SousaConfig) -> int | None:
    """How many same-width hidden states the backbone returns (embeddings + layers); None if widths differ."""
    family, backbone_config = backbone_family(config), config.backbone_config
    if family in ("wav2vec2", "hubert", "ast"):
        return backbone_config.num_hidden_layers + 1
    if family == "whisper":
        return backbone_config.encoder_layers + 1
    return None


def _check_inputs(config: SousaConfig, family: str, inputs: dict) -> torch.Tensor:
    name, ndim = FAMILY_INPUTS[family]
    given = {k: tuple(v.shape) for k, v in inputs.items() if isinstance(v, torch.Tensor)}
    hint = (f"a {family} backbone takes {name} of {ndim} dimensions from the {family!r} adapter "
            f"(sousa_hf.get_adapter({config.backbone or family!r})); got {given}")
    values = inputs.get(name)
    if values is None or values.ndim != ndim:
        raise ValueError(hint)
    backbone_config = config.backbone_config
    if family == "whisper":
        frames = 2 * backbone_config.max_source_positions
        if values.shape[1:] != (backbone_config.num_mel_bins, frames):
            raise ValueError(f"{hint}; this Whisper encoder is sized for ({backbone_config.num_mel_bins} mels, "
                             f"{frames} frames), the adapter's window must match (LengthPolicy max_seconds="
                             f"{frames // 100})")
    elif family == "ast" and values.shape[1:] != (backbone_config.max_length, backbone_config.num_mel_bins):
        raise ValueError(f"{hint}; this AST is sized for ({backbone_config.max_length} frames, "
                         f"{backbone_config.num_mel_bins} mels)")
    elif family == "cnn" and values.shape[-1] != backbone_config.num_mel_bins:
        raise ValueError(f"{hint}; this CNN takes {backbone_config.num_mel_bins} mel bins last")
    elif family == "clap":
        channels = 4 if backbone_config.enable_fusion else 1
        if values.shape[1] != channels:
            raise ValueError(f"{hint}; this CLAP tower has enable_fusion={backbone_config.enable_fusion} and takes "
                             f"{channels} channel(s): build the adapter with truncation="
                             f"{'fusion' if channels == 4 else 'rand_trunc'}")
    return values


def encode(backbone: nn.Module, config: SousaConfig, inputs: dict, output_hidden_states: bool
           ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None, torch.Tensor | None]:
    """Run the backbone: `(last hidden state (batch, time, width), all hidden states or None, time mask or None)`.

    The time mask is 1 for frames (AST: tokens) that hold audio; None when every frame counts (CLAP
    sees a fixed window its extractor has filled by repeating the clip).
    """
    family = backbone_family(config)
    values = _check_inputs(config, family, inputs)
    attention_mask = inputs.get("attention_mask")
    mask = None
    if family in ("wav2vec2", "hubert"):
        # wav2vec2-base-style checkpoints (group-norm front end) must see padding as zeros, not a mask;
        # the mask then only tells the pooling which frames are real.
        to_model = attention_mask if config.backbone_config.feat_extract_norm == "layer" else None
        outputs = backbone(values, attention_mask=to_model, output_hidden_states=output_hidden_states)
        if attention_mask is not None:
            mask = backbone._get_feature_vector_attention_mask(outputs.last_hidden_state.shape[1], attention_mask)
    elif family == "whisper":
        outputs = backbone(values, output_hidden_states=output_hidden_states)
        if attention_mask is not None:
            mask = attention_mask[:, ::2]  # conv2 has stride 2
    elif family == "ast":
        # Attention still sees the padded patches, as the pretrained AST did; the mask keeps them out of pooling.
        outputs = backbone(values, output_hidden_states=output_hidden_states)
        if attention_mask is not None:
            mask = ast_token_mask(config.backbone_config, attention_mask)
    elif family == "clap":
        outputs = backbone(values, is_longer=inputs.get("is_longer"), output_hidden_states=output_hidden_states)
        # HTSAT returns (batch, width, frequency, time) feature maps: pool over all of their tokens.
        last = outputs.last_hidden_state.flatten(2).transpose(1, 2)
        return last, None, None
    else:
        outputs = backbone(values, attention_mask=attention_mask, output_hidden_states=output_hidden_states)
        mask = outputs.frame_mask
    return outputs.last_hidden_state, outputs.hidden_states, mask


def ast_token_mask(config: ASTConfig, frame_mask: torch.Tensor) -> torch.Tensor:
    """AST's frame mask `(batch, max_length)` -> a mask over its output tokens `(batch, 2 + patches)`.

    `ASTPatchEmbeddings` is a `Conv2d` with kernel `(patch_size, patch_size)` and stride `(frequency_stride,
    time_stride)` over (mels, frames), flattened frequency-major: patch `(f, t)` is token `2 + f * time_patches
    + t`, after the [CLS] and distillation tokens. A patch holds audio if any of its frames does, so a clip
    shorter than a patch keeps one column. The two leading tokens count: they hold no padding and summarise
    the clip (AST's own pooler averages them), and counting them leaves a clip that fills the window pooled
    as before.
    """
    if frame_mask.shape[-1] != config.max_length:
        raise ValueError(f"AST attention_mask has {frame_mask.shape[-1]} frames; this AST takes {config.max_length} "
                         "(the ast adapter's frame mask)")
    frequency_patches = (config.num_mel_bins - config.patch_size) // config.frequency_stride + 1
    time_patches = nn.functional.max_pool1d(frame_mask[:, None].float(), config.patch_size, config.time_stride)[:, 0]
    patches = time_patches[:, None, :].expand(-1, frequency_patches, -1).flatten(1)
    return torch.cat([patches.new_ones(patches.shape[0], 2), patches], dim=1).long()


# --------------------------------------------------------------------------- pooling


def masked_mean(hidden_states: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over time of `(batch, time, width)`, counting only frames where `mask` is 1."""
    if mask is None:
        return hidden_states.mean(dim=1)
    weights = mask.to(hidden_states.dtype)[..., None]
    return (hidden_states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def masked_statistics(hidden_states: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean and standard deviation over time of `(batch, time, width)`, real frames only: `(batch, 2 * width)`."""
    mean = masked_mean(hidden_states, mask)
    variance = masked_mean((hidden_states - mean[:, None]).pow(2), mask)
    return torch.cat([mean, variance.clamp(min=1e-6).sqrt()], dim=-1)


class WeightedLayerSum(nn.Module):
    """A learned softmax-weighted sum of all hidden layers (SUPERB): lets a frozen backbone's middle
    layers, often the more useful ones for a new task, count."""

    def __init__(self, num_layers: int):
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(num_layers))

    def forward(self, hidden_states: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Layers of any one shape: frames `(batch, time, width)` or their means over time `(batch, width)`."""
        stacked = torch.stack(hidden_states, dim=0)
        weights = self.weights.softmax(dim=0).to(stacked.dtype)
        return (weights.view(-1, *[1] * (stacked.ndim - 1)) * stacked).sum(dim=0)


class AttentiveStatisticsPooling(nn.Module):
    """Attention-weighted mean and standard deviation over time (Okabe et al., 2018), padding masked out."""

    def __init__(self, hidden_size: int, attention_size: int = 128):
        super().__init__()
        self.attention = nn.Sequential(nn.Linear(hidden_size, attention_size), nn.Tanh(),
                                       nn.Linear(attention_size, 1))

    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        scores = self.attention(hidden_states).squeeze(-1)
        if mask is not None:
            scores = scores.masked_fill(mask == 0, torch.finfo(scores.dtype).min)
        weights = scores.softmax(dim=1)[..., None]
        mean = (weights * hidden_states).sum(dim=1)
        variance = (weights * hidden_states.pow(2)).sum(dim=1) - mean.pow(2)
        return torch.cat([mean, variance.clamp(min=1e-6).sqrt()], dim=-1)


# --------------------------------------------------------------------------- time: context and strokes


class SousaTemporalBlock(nn.Module):
    """A residual dilated 1-D convolution over frames `(batch, time, width)`: context without losing the frame rate.

    Normalised per frame (no statistics across frames) and with padded frames zeroed before the convolution,
    so a clip's real frames come out the same alone or padded in a batch.
    """

    def __init__(self, width: int, dilation: int, kernel_size: int = 3):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.conv = nn.Conv1d(width, width, kernel_size, padding=dilation * (kernel_size // 2), dilation=dilation)
        self.activation = nn.GELU()

    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        hidden = self.norm(hidden_states)
        if mask is not None:
            hidden = hidden * mask[..., None].to(hidden.dtype)
        return hidden_states + self.activation(self.conv(hidden.transpose(1, 2))).transpose(1, 2)


class SousaTemporalGRU(nn.Module):
    """Bidirectional GRU layers over frames `(batch, time, width)`, added to their input: each frame sees the
    whole window. A clip's padded frames are left out of the recurrence (packed), so its real frames come out
    the same alone or padded in a batch."""

    def __init__(self, width: int, num_layers: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.gru = nn.GRU(width, (width + 1) // 2, num_layers=num_layers, batch_first=True, bidirectional=True)
        self.projection = nn.Linear(2 * ((width + 1) // 2), width)

    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        hidden = self.norm(hidden_states)
        if mask is None or bool(mask.all()):
            recurrent = self.gru(hidden)[0]
        else:
            lengths = mask.sum(dim=1).clamp(min=1).cpu()
            packed = nn.utils.rnn.pack_padded_sequence(hidden, lengths, batch_first=True, enforce_sorted=False)
            recurrent = nn.utils.rnn.pad_packed_sequence(self.gru(packed)[0], batch_first=True,
                                                         total_length=hidden.shape[1])[0]
        return hidden_states + self.projection(recurrent)


class SousaStrokeHead(nn.Linear):
    """Per frame: an onset logit, a velocity logit (sigmoid: 0-1, MIDI velocity / 127) and a grace-note logit; with
    five outputs (`stroke_cluster_ms`) also the log of how many strokes follow a cluster's first one and their
    spacing in frames (through softplus)."""

    def __init__(self, width: int, outputs: int = 3):
        super().__init__(width, outputs)


def stroke_clusters(position: torch.Tensor, present: torch.Tensor, cluster_frames: float
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Strokes `(batch, strokes)` in time order (positions in frames; `present` false for padding, which comes last)
    grouped into clusters: runs of strokes each closer than `cluster_frames` to the one before. Returns `first`
    (the stroke starts a cluster) and `(batch, strokes, 2)`: where `first`, how many strokes follow it in its
    cluster and their mean spacing in frames (zeros elsewhere)."""
    follows = torch.zeros_like(present)
    follows[:, 1:] = present[:, 1:] & present[:, :-1] & (position[:, 1:] - position[:, :-1] < cluster_frames)
    first = present & ~follows
    cluster = (first.long().cumsum(dim=1) - 1).clamp(min=0)  # the cluster of each stroke, numbered from 0
    followers = torch.zeros_like(position).scatter_add_(1, cluster, follows.to(position.dtype))
    last = torch.zeros_like(position).scatter_reduce_(1, cluster, torch.where(present, position, 0.0), "amax")
    followers, last = followers.gather(1, cluster), last.gather(1, cluster)
    spacing = torch.where(followers > 0, (last - position) / followers.clamp(min=1.0), torch.zeros_like(position))
    return first, torch.stack([followers, spacing], dim=-1) * first[..., None]


def stroke_loss(stroke_logits: torch.Tensor, frame_mask: torch.Tensor | None, stroke_onsets: torch.Tensor,
                stroke_velocities: torch.Tensor, stroke_is_grace: torch.Tensor, frame_seconds: float,
                target_frames: float = 1.0, onset_weight: float = 1.0, cluster_ms: float = 0.0) -> torch.Tensor:
    """Stroke transcription loss, the mean over clips of each clip's:

    - onset: binary cross-entropy over its real frames against soft targets (a Gaussian of `target_frames`
      frames around every stroke, the largest where two overlap: a tolerance of about a frame either way), the
      targets weighted by `onset_weight` against the frames without a stroke;
    - velocity: squared error of the sigmoid at each stroke's nearest frame;
    - grace: binary cross-entropy of the grace-note flag at each stroke's nearest frame;
    - with `cluster_ms` (a head of five outputs, `stroke_clusters`): the onset targets mark only each cluster's
      first stroke, and at its nearest frame and the frames either side (where a peak may land) a Poisson loss
      of how many strokes follow it and, where some do, the squared error of their spacing in frames.

    `stroke_onsets` `(batch, strokes)` in ms, -1 (any negative value) where a clip has fewer strokes.
    """
    batch, frames, _ = stroke_logits.shape
    logits = stroke_logits.float()
    device = logits.device
    onsets = stroke_onsets.to(device, torch.float32)
    present = onsets >= 0
    position = onsets / 1000.0 / frame_seconds  # in frames
    peaked = present
    if cluster_ms:
        order = torch.where(present, position, torch.full_like(position, float("inf"))).argsort(dim=1, stable=True)
        position, present = position.gather(1, order), present.gather(1, order)
        stroke_velocities = stroke_velocities.to(device).gather(1, order)
        stroke_is_grace = stroke_is_grace.to(device).gather(1, order)
        peaked, clusters = stroke_clusters(position, present, cluster_ms / 1000.0 / frame_seconds)
    times = torch.arange(frames, device=device, dtype=torch.float32)
    distance = times[None, None, :] - position[:, :, None]  # (batch, strokes, frames)
    bumps = torch.exp(-0.5 * (distance / target_frames) ** 2) * peaked[..., None]
    target = bumps.amax(dim=1) if bumps.shape[1] else torch.zeros(batch, frames, device=device)
    real = (torch.ones(batch, frames, device=device) if frame_mask is None
            else frame_mask.to(device, torch.float32))
    onset = nn.functional.binary_cross_entropy_with_logits(
        logits[..., 0], target, reduction="none", pos_weight=torch.tensor(float(onset_weight), device=device))
    onset = (onset * real).sum(dim=1) / real.sum(dim=1).clamp(min=1.0)
    nearest = position.round().clamp(0, frames - 1).long()
    at_strokes = torch.gather(logits, 1, nearest[..., None].expand(-1, -1, 3))  # (batch, strokes, 3)
    counted = present.float()
    count = counted.sum(dim=1).clamp(min=1.0)
    velocity = ((at_strokes[..., 1].sigmoid() - stroke_velocities.to(device, torch.float32)) ** 2 * counted)
    grace = nn.functional.binary_cross_entropy_with_logits(
        at_strokes[..., 2], stroke_is_grace.to(device, torch.float32), reduction="none") * counted
    loss = onset + velocity.sum(dim=1) / count + grace.sum(dim=1) / count
    if cluster_ms:
        loss = loss + _cluster_loss(logits, nearest, peaked, clusters)
    return loss.mean()


def _cluster_loss(logits: torch.Tensor, nearest: torch.Tensor, first: torch.Tensor, clusters: torch.Tensor
                  ) -> torch.Tensor:
    """Each clip's loss of the cluster outputs (`stroke_loss`) at the frames of its clusters' first strokes."""
    frames = logits.shape[1]
    followers, spacing = clusters[..., 0], clusters[..., 1]
    count_loss, spacing_loss = 0.0, 0.0
    for step in (-1, 0, 1):
        at = torch.gather(logits, 1, (nearest + step).clamp(0, frames - 1)[..., None].expand(-1, -1, 5))
        count_loss = count_loss + nn.functional.poisson_nll_loss(at[..., 3], followers, log_input=True,
                                                                 full=False, reduction="none")
        spacing_loss = spacing_loss + (nn.functional.softplus(at[..., 4]) - spacing) ** 2
    first = first.float()
    spaced = first * (followers > 0)
    return ((count_loss * first).sum(dim=1) / first.sum(dim=1).clamp(min=1.0)
            + (spacing_loss * spaced).sum(dim=1) / spaced.sum(dim=1).clamp(min=1.0)) / 3


# --------------------------------------------------------------------------- models


@dataclass
class SousaModelOutput(ModelOutput):
    """`pooled_output` (batch, width): the clip's vector; `last_hidden_state` (batch, frames, width) the frames it
    pools (after the temporal blocks), `frame_mask` which of them hold audio, `hidden_states` from the backbone."""

    pooled_output: torch.Tensor | None = None
    last_hidden_state: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    frame_mask: torch.Tensor | None = None


@dataclass
class SousaClassifierOutput(ModelOutput):
    """`logits` (batch, num_labels); `loss` is the (unweighted) cross-entropy when `labels` are given.
    With a stroke head (`aux_strokes`): `stroke_logits` (batch, frames, 3) and, given stroke labels, `stroke_loss`."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    stroke_logits: torch.Tensor | None = None
    stroke_loss: torch.Tensor | None = None
    frame_mask: torch.Tensor | None = None


@dataclass
class SousaStrokeOutput(ModelOutput):
    """`stroke_logits` (batch, frames, 3): per frame the onset, velocity and grace-note logits (`SousaStrokeHead`);
    `frame_mask` (batch, frames) which frames hold audio; `loss` the stroke loss when stroke labels are given."""

    loss: torch.Tensor | None = None
    stroke_logits: torch.Tensor | None = None
    frame_mask: torch.Tensor | None = None


@dataclass
class SousaRegressionOutput(ModelOutput):
    """`predictions` (batch, num_targets) on 0-1, `scores` the same on the report scale (0-100).

    `loss`: MSE or Huber against `labels` (on 0-1); for multi-task the weighted sum over targets of each
    target's loss averaged over the rows where it is not null (`labels_mask`).
    """

    loss: torch.Tensor | None = None
    predictions: torch.Tensor | None = None
    scores: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    stroke_logits: torch.Tensor | None = None
    stroke_loss: torch.Tensor | None = None
    frame_mask: torch.Tensor | None = None


# Shipped next to this file and copied into every saved classifier (remote code for `pipeline`).
PIPELINE_FILE = "pipeline_sousa.py"


class SousaPreTrainedModel(PreTrainedModel):
    config_class = SousaConfig
    base_model_prefix = "sousa"
    main_input_name = "input_values"
    supports_gradient_checkpointing = True

    def save_pretrained(self, save_directory, *args, **kwargs):
        if self._auto_class is not None:
            # Every head also loads with AutoModel; Transformers itself writes only its own `_auto_class`.
            self.config.auto_map = {**(getattr(self.config, "auto_map", None) or {}),
                                    "AutoModel": f"{__name__.split('.')[-1]}.{type(self).__name__}"}
        super().save_pretrained(save_directory, *args, **kwargs)

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, WeightedLayerSum):
            init.zeros_(module.weights)  # equal weights for every layer to start


class SousaModel(SousaPreTrainedModel):
    """Backbone + pooling: a clip's vector (`pooled_output`), for embeddings or a head."""

    def __init__(self, config: SousaConfig):
        super().__init__(config)
        self.family = backbone_family(config)
        self.main_input_name = FAMILY_INPUTS[self.family][0]
        self.backbone = build_backbone(config)
        hidden_size = _backbone_width(config)
        self.hidden_size = hidden_size
        self.layer_sum = None
        self.attentive = None
        self.num_layers = num_hidden_layers(config)
        if config.pooling in ("weighted_layers", "layer_stats") and self.num_layers is None:
            raise ValueError(f"pooling={config.pooling!r} needs hidden layers of one width; the {self.family} "
                             "backbone's differ: use pooling='mean' or 'attentive_stats'")
        if config.pooling == "weighted_layers":
            self.layer_sum = WeightedLayerSum(self.num_layers)
        elif config.pooling == "attentive_stats":
            self.attentive = AttentiveStatisticsPooling(hidden_size)
        self.pooled_size = {"attentive_stats": 2 * hidden_size, "layer_stats": 2 * hidden_size * (self.num_layers or 1),
                            "stroke_statistics": _statistics_width(config)}.get(config.pooling, hidden_size)
        if config.temporal_blocks and config.pooling == "layer_stats":
            raise ValueError("temporal_blocks work on the frames one pooling sees; pooling='layer_stats' pools every "
                             "layer's frames: use pooling='mean', 'weighted_layers' or 'attentive_stats' with them")
        # A drummer knows the metronome: the tempo, as log2(bpm / 120), shifts every frame's features (with stroke
        # statistics it places the strokes on the grid instead, and the frames stay the stroke model's).
        self.tempo = nn.Linear(1, hidden_size) if config.use_tempo and config.pooling != "stroke_statistics" else None
        self.temporal = nn.ModuleList(SousaTemporalBlock(hidden_size, dilation=2 ** (i % 6))
                                      for i in range(config.temporal_blocks))
        self.temporal_gru = (SousaTemporalGRU(hidden_size, config.temporal_gru)
                             if config.temporal_gru else None)
        if config.pooling == "layer_stats":
            # Layers' statistics differ in scale by orders of magnitude (a residual stream grows with depth), and
            # a linear probe on thousands of them wants each standardised. The training split's mean and spread
            # (`fit_statistics_norm`) are buffers saved with the model; 0 and 1 (no change) until fitted.
            self.register_buffer("statistics_mean", torch.zeros(self.pooled_size))
            self.register_buffer("statistics_std", torch.ones(self.pooled_size))
        self.post_init()

    def statistics_norm(self, pooled: torch.Tensor) -> torch.Tensor:
        return (pooled - self.statistics_mean) / self.statistics_std

    @torch.no_grad()
    def fit_statistics_norm(self, batches) -> None:
        """Set `layer_stats` pooling's standardisation from batches of model inputs (the training split's)."""
        if self.config.pooling != "layer_stats":
            raise ValueError(f"only pooling='layer_stats' standardises its statistics, not {self.config.pooling!r}")
        self.statistics_mean.zero_()
        self.statistics_std.fill_(1.0)
        count, total, squares = 0, 0.0, 0.0
        for batch in batches:
            pooled = self(**batch).pooled_output.double()
            count, total, squares = count + len(pooled), total + pooled.sum(0), squares + pooled.pow(2).sum(0)
        if count < 2:
            raise ValueError("fit_statistics_norm needs at least two clips")
        mean = total / count
        std = (squares / count - mean.pow(2)).clamp(min=0).sqrt()
        self.statistics_mean.copy_(mean.float())
        # A statistic that never varies (a layer's padding-free constant) is left at its scale.
        self.statistics_std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)).float())

    @property
    def uses_all_layers(self) -> bool:
        return self.config.pooling in ("weighted_layers", "layer_stats")

    def freeze_feature_encoder(self):
        """Stop gradients into the convolutional front end (Wav2Vec2 and HuBERT)."""
        if self.family not in ("wav2vec2", "hubert"):
            raise ValueError(f"only wav2vec2 and hubert backbones have a feature encoder to freeze, not {self.family}")
        self.backbone.feature_extractor._freeze_parameters()

    def freeze_backbone(self):
        """Train only the pooling and the head (a linear probe)."""
        self.backbone.requires_grad_(False)

    def forward(self, input_values: torch.Tensor | None = None, input_features: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, is_longer: torch.Tensor | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None,
                cached_layer_stats: torch.Tensor | None = None, cached_hidden_states: torch.Tensor | None = None,
                cached_mask: torch.Tensor | None = None, tempo_bpm: torch.Tensor | None = None,
                **kwargs) -> SousaModelOutput:
        r"""
        cached_layer_stats (`(batch, layers, 2 * width)`: each layer's mean and standard deviation over time),
        cached_hidden_states (`(batch, frames, layers, width)`) and cached_mask (`(batch, frames)`): a frozen
        backbone's outputs computed earlier (`sousa_hf.backbone_cache`), which take the place of the audio
        inputs; the backbone is not run. Layer statistics serve the poolings that are statistics over time
        (`mean`, `weighted_layers`, `layer_stats`), the frames any pooling.
        tempo_bpm (`(batch,)`): the performance's metronome tempo, for a model with `use_tempo` (required then).
        """
        if self.tempo is not None and tempo_bpm is None:
            raise ValueError("this model takes the performance's tempo: pass tempo_bpm (beats per minute, one a clip)")
        if cached_layer_stats is not None:
            if self.tempo is not None or self.temporal or self.temporal_gru is not None:
                raise ValueError("a model with use_tempo, temporal_blocks or temporal_gru works on frames: cache "
                                 "the frames (cached_hidden_states), not cached_layer_stats")
            return SousaModelOutput(pooled_output=self._pool_statistics(cached_layer_stats))
        if cached_hidden_states is not None:
            hidden_states = cached_hidden_states.unbind(dim=2)
            last, mask = hidden_states[-1], cached_mask
        else:
            inputs = {k: v for k, v in (("input_values", input_values), ("input_features", input_features),
                                        ("attention_mask", attention_mask), ("is_longer", is_longer)) if v is not None}
            inputs.update({k: v for k, v in kwargs.items() if isinstance(v, torch.Tensor)})
            output_hidden_states = bool(output_hidden_states or self.uses_all_layers)
            last, hidden_states, mask = encode(self.backbone, self.config, inputs, output_hidden_states)
        if self.config.pooling == "layer_stats":
            pooled = torch.stack([masked_statistics(layer, mask) for layer in hidden_states], dim=1).flatten(1)
            return SousaModelOutput(pooled_output=self.statistics_norm(pooled), last_hidden_state=last,
                                    hidden_states=hidden_states, frame_mask=mask)
        if self.layer_sum is not None:
            last = self.layer_sum(hidden_states)
        if self.tempo is not None:
            beats = torch.log2(tempo_bpm.to(last.device, last.dtype).reshape(-1, 1) / 120.0)
            last = last + self.tempo(beats)[:, None, :]
        for block in self.temporal:
            last = block(last, mask)
        if self.temporal_gru is not None:
            last = self.temporal_gru(last, mask)
        if self.config.pooling == "stroke_statistics":  # pooled by the head model, from its stroke head's peaks
            pooled = None
        else:
            pooled = self.attentive(last, mask) if self.attentive is not None else masked_mean(last, mask)
        return SousaModelOutput(pooled_output=pooled, last_hidden_state=last, hidden_states=hidden_states,
                                frame_mask=mask)

    def _pool_statistics(self, statistics: torch.Tensor) -> torch.Tensor:
        """Pooling from each layer's cached mean and standard deviation `(batch, layers, 2 * width)`: exact for
        the poolings that are such statistics (a weighted sum of layer means is the mean of the weighted sum)."""
        if self.attentive is not None:
            raise ValueError("pooling='attentive_stats' weighs frames, so it needs cached_hidden_states (frames), "
                             "not cached_layer_stats")
        width = statistics.shape[-1] // 2
        if self.config.pooling == "layer_stats":
            return self.statistics_norm(statistics.flatten(1))
        if self.layer_sum is not None:
            return self.layer_sum(statistics[..., :width].unbind(dim=1))
        return statistics[:, -1, :width]


def _statistics_width(config: SousaConfig) -> int:
    """The width of the clip vector that `pooling="stroke_statistics"` gives the head: the MLP's, or one leaf value
    per boosted tree."""
    if config.statistics_head != "boosted_trees":
        return config.statistics_hidden_size
    return (BoostedTreesSettings(**config.boosted_trees).max_iter
            * trees_per_iteration(config.task_kind, config.num_outputs))


def _backbone_width(config: SousaConfig) -> int:
    backbone_config = config.backbone_config
    if backbone_family(config) == "whisper":
        return backbone_config.d_model
    return backbone_config.hidden_size


# What stroke labels a model takes (padded per batch; onsets in ms, negative where a clip has fewer strokes).
STROKE_LABELS = ("stroke_onsets", "stroke_velocities", "stroke_is_grace")


def _check_stroke_statistics(config: SousaConfig) -> list[str]:
    """The statistics this code computes for `config`, recorded in it; a config that names others (a model trained
    with another version of `stroke_statistics.py`) is refused, naming what differs and how to load or retrain it."""
    names = list(statistic_names(config.use_tempo, config.rhythm_patterns is not None, config.pattern_evidence,
                                 config.pattern_match_count))
    recorded = config.stroke_statistics
    if recorded is None:
        config.stroke_statistics = names
    elif list(recorded) != names:
        missing = [name for name in recorded if name not in names]
        new = [name for name in names if name not in recorded]
        difference = "; ".join([f"not computed here: {', '.join(missing)}"] * bool(missing)
                               + [f"new here: {', '.join(new)}"] * bool(new)) or "the same names in another order"
        raise ValueError(
            f"this model reads {len(recorded)} stroke statistics and this version of sousa_hf computes {len(names)} "
            f"({difference}). Retrain it with this version (sousa-hf train recipes/stroke_statistics.yaml --set "
            "strokes_from=STROKE_MODEL --set task=TASK), or load it with the code saved beside it, in a Python that "
            "has not imported sousa_hf: transformers.AutoModel.from_pretrained(PATH, trust_remote_code=True)")
    return names


class _SousaHeadModel(SousaPreTrainedModel):
    def __init__(self, config: SousaConfig):
        super().__init__(config)
        self.sousa = SousaModel(config)
        self.main_input_name = self.sousa.main_input_name
        self.dropout = nn.Dropout(config.classifier_dropout)
        # A stroke head on the frames: the task itself (`strokes`) or a second loss beside a clip task.
        with_strokes = (config.task_kind == "strokes" or bool(config.aux_strokes)
                        or config.pooling == "stroke_statistics")
        self.strokes = SousaStrokeHead(self.sousa.hidden_size, config.stroke_head_outputs) if with_strokes else None
        self.stroke_statistics = None
        if config.pooling == "stroke_statistics":
            names = _check_stroke_statistics(config)
            if config.statistics_head == "boosted_trees":
                self.stroke_statistics = BoostedTrees(len(names), _statistics_width(config),
                                                      BoostedTreesSettings(**config.boosted_trees).max_leaf_nodes)
            else:
                self.stroke_statistics = StrokeStatisticsEncoder(len(names), config.statistics_hidden_size,
                                                                 config.classifier_dropout)

    def freeze_feature_encoder(self):
        self.sousa.freeze_feature_encoder()

    def freeze_backbone(self):
        self.sousa.freeze_backbone()

    def _init_weights(self, module):
        super()._init_weights(module)
        if self.config.pooling == "layer_stats" and (isinstance(module, SousaScoreHead)
                                                     or module is getattr(self, "classifier", None)):
            # Thousands of standardised statistics: random weights would start the probe far from any score
            # (an output spread of ~1.7 on 0-1); at zero it starts from the prior and moves by the gradient.
            init.zeros_(module.weight)

    def _pooled(self, inputs: dict, output_hidden_states: bool | None) -> tuple[torch.Tensor, tuple | None, dict]:
        """`(pooled clip vector, hidden states or None, stroke outputs)`; the stroke outputs (`stroke_logits`,
        `frame_mask`, and `stroke_loss` when `inputs` hold the stroke labels) are empty without a stroke head."""
        labels = [inputs.pop(name, None) for name in STROKE_LABELS]
        cached_statistics = inputs.pop("cached_stroke_statistics", None)
        if self.stroke_statistics is not None:
            if cached_statistics is None:
                cached_statistics, strokes = self.clip_stroke_statistics(inputs, output_hidden_states)
            else:
                strokes = {}
            return self.dropout(self.stroke_statistics(cached_statistics)), None, strokes
        outputs = self.sousa(**inputs, output_hidden_states=output_hidden_states)
        strokes = {}
        if self.strokes is not None and outputs.last_hidden_state is not None:
            logits = self.strokes(outputs.last_hidden_state)
            strokes = {"stroke_logits": logits, "frame_mask": outputs.frame_mask}
            if all(label is not None for label in labels):
                strokes["stroke_loss"] = stroke_loss(logits, outputs.frame_mask, *labels, self.config.frame_seconds,
                                                     self.config.stroke_target_frames, self.config.stroke_onset_weight,
                                                     self.config.stroke_cluster_ms)
        pooled = None if outputs.pooled_output is None else self.dropout(outputs.pooled_output)
        return pooled, outputs.hidden_states if output_hidden_states else None, strokes

    def clip_stroke_statistics(self, inputs: dict, output_hidden_states: bool | None = None
                               ) -> tuple[torch.Tensor, dict]:
        """`(each clip's stroke statistics (batch, statistics), stroke outputs)` from model inputs: the stroke head's
        peaks at `config.stroke_threshold`, placed on the metronome grid of `tempo_bpm` when `use_tempo`."""
        tempo = inputs.get("tempo_bpm")
        if self.config.use_tempo and tempo is None:
            raise ValueError("this model takes the performance's tempo: pass tempo_bpm (beats per minute, one a clip)")
        outputs = self.sousa(**inputs, output_hidden_states=output_hidden_states)
        logits = self.strokes(outputs.last_hidden_state)
        statistics = batch_statistics(logits, outputs.frame_mask, self.config.frame_seconds,
                                      self.config.stroke_threshold, tempo if self.config.use_tempo else None,
                                      self.config.rhythm_patterns, self.config.pattern_evidence,
                                      self.config.pattern_matches)
        return statistics, {"stroke_logits": logits, "frame_mask": outputs.frame_mask}

    @torch.no_grad()
    def fit_stroke_statistics_norm(self, batches) -> None:
        """Set `stroke_statistics` pooling's standardisation from batches of model inputs (the training split's):
        their cached statistics, or the frozen stroke front end's on their audio."""
        rows = [batch["cached_stroke_statistics"] if "cached_stroke_statistics" in batch
                else self.clip_stroke_statistics(dict(batch))[0] for batch in batches]
        self.stroke_statistics.fit(torch.cat(rows))

    @torch.no_grad()
    def set_boosted_trees(self, fitted: FittedTrees) -> None:
        """Take a fitted ensemble (`tree_fitting.fit_boosted_trees`): its trees, and the head's linear layers that
        sum their leaf values into each output (in the order of the logits or `target_names`)."""
        if self.config.statistics_head != "boosted_trees":
            raise ValueError(f"this model scores its statistics with {self.config.statistics_head!r}, not trees")
        self.stroke_statistics.load_predictors(fitted.predictors)
        layers = ([self.heads[name] for name in self.config.target_names] if hasattr(self, "heads")
                  else [self.classifier if hasattr(self, "classifier") else self.regressor])
        first = 0
        for layer in layers:
            layer.weight.copy_(fitted.weight[first : first + layer.out_features])
            layer.bias.copy_(fitted.bias[first : first + layer.out_features])
            first += layer.out_features

    def _with_aux_strokes(self, loss: torch.Tensor | None, strokes: dict) -> torch.Tensor | None:
        """The clip task's own loss plus `aux_strokes` times the stroke loss (what a plain Trainer would use)."""
        if loss is None or "stroke_loss" not in strokes:
            return loss
        return loss + self.config.aux_strokes * strokes["stroke_loss"]


class SousaForAudioClassification(_SousaHeadModel):
    """Single-label classification: skill tier (4 classes), binary skill, or rudiment (40 classes)."""

    def __init__(self, config: SousaConfig):
        if config.task_kind != "classification":
            raise ValueError(f"SousaForAudioClassification needs task_kind='classification', not {config.task_kind!r}")
        super().__init__(config)
        self.classifier = nn.Linear(self.sousa.pooled_size, config.num_labels)
        self.post_init()

    def forward(self, input_values=None, input_features=None, attention_mask=None, is_longer=None,
                labels: torch.Tensor | None = None, output_hidden_states: bool | None = None,
                return_dict: bool | None = None, **kwargs) -> SousaClassifierOutput:
        inputs = dict(input_values=input_values, input_features=input_features, attention_mask=attention_mask,
                      is_longer=is_longer, **kwargs)
        pooled, hidden_states, strokes = self._pooled(inputs, output_hidden_states)
        logits = self.classifier(pooled)
        loss = None if labels is None else self.task_loss(logits, labels)
        return SousaClassifierOutput(loss=self._with_aux_strokes(loss, strokes), logits=logits,
                                     hidden_states=hidden_states, **strokes)

    def save_pretrained(self, save_directory, *args, **kwargs):
        # `pipeline("audio-classification", trust_remote_code=True)` then preprocesses as the adapter does.
        pipeline_file = os.path.join(os.path.dirname(os.path.abspath(__file__)), PIPELINE_FILE)
        if os.path.isfile(pipeline_file):
            self.config.custom_pipelines = {"audio-classification": {
                "impl": f"{PIPELINE_FILE[:-3]}.SousaAudioClassificationPipeline",
                "pt": ["AutoModelForAudioClassification"], "tf": [], "type": "audio"}}
        super().save_pretrained(save_directory, *args, **kwargs)
        if os.path.isfile(pipeline_file) and kwargs.get("is_main_process", True):
            shutil.copy(pipeline_file, os.path.join(save_directory, PIPELINE_FILE))

    def task_loss(self, logits: torch.Tensor, labels: torch.Tensor, labels_mask: torch.Tensor | None = None,
                  class_weights: torch.Tensor | None = None, num_items: torch.Tensor | int | None = None
                  ) -> torch.Tensor:
        """Cross-entropy, each row weighted by its class's weight, summed and divided by `num_items`.

        `num_items` defaults to the batch size (the plain mean). The Trainer passes the rows of the whole
        accumulated (and, across processes, gathered) batch, so that splitting a batch over gradient
        accumulation steps or processes gives the same gradient as one big batch.
        """
        losses = nn.functional.cross_entropy(logits.float(), labels.long().to(logits.device), reduction="none")
        if class_weights is not None:
            losses = losses * class_weights.to(losses.device, losses.dtype)[labels.long().to(logits.device)]
        return losses.sum() / (labels.shape[0] if num_items is None else num_items)


class _SousaRegressionModel(_SousaHeadModel):
    def _target_loss(self, predictions: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Element-wise loss on 0-1, unreduced."""
        if self.config.regression_loss == "huber":
            return nn.functional.huber_loss(predictions, labels, reduction="none", delta=self.config.huber_delta)
        return nn.functional.mse_loss(predictions, labels, reduction="none")

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, SousaScoreHead):
            init.constant_(module.bias, 0.5)  # start in the middle of the 0-1 range


class SousaScoreHead(nn.Linear):
    """A linear map to one score on 0-1."""

    def __init__(self, width: int):
        super().__init__(width, 1)


class SousaForScoreRegression(_SousaRegressionModel):
    """One score (e.g. `overall_score`): predicts it on 0-1, reports it on 0-100 (`scores`)."""

    def __init__(self, config: SousaConfig):
        if config.task_kind != "regression":
            raise ValueError(f"SousaForScoreRegression needs task_kind='regression', not {config.task_kind!r}")
        super().__init__(config)
        self.regressor = SousaScoreHead(self.sousa.pooled_size)
        self.post_init()

    def forward(self, input_values=None, input_features=None, attention_mask=None, is_longer=None,
                labels: torch.Tensor | None = None, output_hidden_states: bool | None = None,
                return_dict: bool | None = None, **kwargs) -> SousaRegressionOutput:
        inputs = dict(input_values=input_values, input_features=input_features, attention_mask=attention_mask,
                      is_longer=is_longer, **kwargs)
        pooled, hidden_states, strokes = self._pooled(inputs, output_hidden_states)
        predictions = self.regressor(pooled)
        loss = None if labels is None else self.task_loss(predictions, labels)
        return SousaRegressionOutput(loss=self._with_aux_strokes(loss, strokes), predictions=predictions,
                                     scores=predictions.detach() * self.config.target_scale,
                                     hidden_states=hidden_states, **strokes)


    def task_loss(self, predictions: torch.Tensor, labels: torch.Tensor, labels_mask: torch.Tensor | None = None,
                  class_weights: torch.Tensor | None = None, num_items: torch.Tensor | int | None = None
                  ) -> torch.Tensor:
        """MSE or Huber on 0-1, summed and divided by `num_items` (default: the batch size)."""
        labels = labels.to(predictions.device, torch.float32).reshape(predictions.shape)
        losses = self._target_loss(predictions.float(), labels)
        return losses.sum() / (labels.shape[0] if num_items is None else num_items)


class SousaForMultiTask(_SousaRegressionModel):
    """A regression head per target (`target_names`); a null target (`labels_mask` False) adds no loss."""

    def __init__(self, config: SousaConfig):
        if config.task_kind != "multitask":
            raise ValueError(f"SousaForMultiTask needs task_kind='multitask', not {config.task_kind!r}")
        super().__init__(config)
        self.heads = nn.ModuleDict({name: SousaScoreHead(self.sousa.pooled_size) for name in config.target_names})
        self.post_init()

    def forward(self, input_values=None, input_features=None, attention_mask=None, is_longer=None,
                labels: torch.Tensor | None = None, labels_mask: torch.Tensor | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None, **kwargs
                ) -> SousaRegressionOutput:
        inputs = dict(input_values=input_values, input_features=input_features, attention_mask=attention_mask,
                      is_longer=is_longer, **kwargs)
        pooled, hidden_states, strokes = self._pooled(inputs, output_hidden_states)
        predictions = torch.cat([self.heads[name](pooled) for name in self.config.target_names], dim=-1)
        loss = None if labels is None else self.task_loss(predictions, labels, labels_mask)
        return SousaRegressionOutput(loss=self._with_aux_strokes(loss, strokes), predictions=predictions,
                                     scores=predictions.detach() * self.config.target_scale,
                                     hidden_states=hidden_states, **strokes)

    def task_loss(self, predictions: torch.Tensor, labels: torch.Tensor, labels_mask: torch.Tensor | None = None,
                  class_weights: torch.Tensor | None = None, num_items: torch.Tensor | None = None) -> torch.Tensor:
        """Sum over targets of `weight * (summed loss over the rows where the target is not null) / count`.

        `num_items` holds each target's count of non-null rows (default: counted in this batch, so
        each target's loss is its mean over the rows that have it). The Trainer passes the counts of
        the whole accumulated, gathered batch.
        """
        labels = labels.to(predictions.device, torch.float32)
        if labels.shape != predictions.shape:
            raise ValueError(f"multi-task labels have shape {tuple(labels.shape)}; expected {tuple(predictions.shape)}"
                             f" (batch, one column per target in {self.config.target_names})")
        mask = (torch.ones_like(labels, dtype=torch.bool) if labels_mask is None
                else labels_mask.to(predictions.device, torch.bool))
        counts = mask.sum(dim=0) if num_items is None else torch.as_tensor(num_items, device=predictions.device)
        losses = self._target_loss(predictions.float(), labels) * mask
        per_target = losses.sum(dim=0) / counts.to(losses.dtype).clamp(min=1)
        weights = torch.tensor(self.config.target_weights, dtype=per_target.dtype, device=per_target.device)
        # Summing only the targets present makes a batch's loss exactly what a model without the
        # absent targets' heads would compute.
        present = mask.any(dim=0)
        return (weights * per_target)[present].sum()


def is_task_model(model) -> bool:
    """Whether `model` is a SOUSA head that predicts something (a clip task's head, or a stroke head), by what it
    has rather than its class: a model loaded as remote code is of a copy of these classes."""
    return hasattr(model, "task_loss") or getattr(model, "strokes", None) is not None


class SousaForStrokes(_SousaHeadModel):
    """Stroke transcription: per frame, whether a stroke starts there, how hard it is and whether it is a grace note.

    `stroke_logits` `(batch, frames, 3)`; frames are `config.frame_seconds` apart. Given the stroke labels
    (`stroke_onsets` in ms, `stroke_velocities` 0-1, `stroke_is_grace`, padded with a negative onset), `loss`
    is `stroke_loss`. `sousa_hf.stroke_transcription.decode_strokes` turns the logits into strokes.
    """

    def __init__(self, config: SousaConfig):
        if config.task_kind != "strokes":
            raise ValueError(f"SousaForStrokes needs task_kind='strokes', not {config.task_kind!r}")
        super().__init__(config)
        self.post_init()

    def forward(self, input_values=None, input_features=None, attention_mask=None, is_longer=None,
                stroke_onsets: torch.Tensor | None = None, stroke_velocities: torch.Tensor | None = None,
                stroke_is_grace: torch.Tensor | None = None, output_hidden_states: bool | None = None,
                return_dict: bool | None = None, **kwargs) -> SousaStrokeOutput:
        inputs = dict(input_values=input_values, input_features=input_features, attention_mask=attention_mask,
                      is_longer=is_longer, stroke_onsets=stroke_onsets, stroke_velocities=stroke_velocities,
                      stroke_is_grace=stroke_is_grace, **kwargs)
        _, _, strokes = self._pooled(inputs, output_hidden_states)
        if not strokes:
            raise ValueError("SousaForStrokes needs frames: audio inputs or cached_hidden_states, not layer statistics")
        return SousaStrokeOutput(loss=strokes.get("stroke_loss"), stroke_logits=strokes["stroke_logits"],
                                 frame_mask=strokes["frame_mask"])


__all__ = [
    "SousaCNNModel",
    "SousaForAudioClassification",
    "SousaForMultiTask",
    "SousaForScoreRegression",
    "SousaForStrokes",
    "SousaModel",
    "SousaPreTrainedModel",
]
