"""`SousaConfig` (a head on a pretrained audio backbone) and `SousaCNNConfig` (the suite's own CNN).

Imports only transformers, so it travels as remote code with a pushed model (`trust_remote_code=True`).
"""

from __future__ import annotations

from transformers import AutoConfig, PretrainedConfig
from transformers.configuration_utils import SubConfigSpec
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

TASK_KINDS = ("classification", "regression", "multitask", "strokes")
STROKE_OUTPUTS = ("onset", "velocity", "grace")  # per frame: onset logit, velocity (0-1) logit, grace-note logit
# With `stroke_cluster_ms`, per frame also: the log of how many strokes follow a cluster's first one, and their spacing.
STROKE_CLUSTER_OUTPUTS = ("followers", "follower_spacing")
POOLINGS = ("mean", "attentive_stats", "weighted_layers", "layer_stats", "stroke_statistics")
STATISTICS_HEADS = ("mlp", "boosted_trees")
REGRESSION_LOSSES = ("mse", "huber")


class SousaCNNConfig(PretrainedConfig):
    r"""The suite's CNN over log-mel frames: small enough to train from scratch on a CPU.

    Args:
        num_mel_bins: mel bins of the input (`SousaMelFeatureExtractor.feature_size`).
        channels: output channels of each conv block; every block halves frequency and time.
        kernel_size: square kernel of every convolution.
        hidden_size: width of the frame vectors the model returns (a linear map of the last block).
        dropout: dropout on those frame vectors.
        norm_groups: groups of the per-clip norm in each block (reduced to a divisor of its channels).
        time_pooling: every block halves time as well as frequency (a 16x slower frame rate after four);
            `False` pools frequency only, keeping the extractor's frame rate (stroke timing needs 5 ms frames).
    """

    model_type = "sousa_cnn"

    def __init__(self, num_mel_bins: int = 128, channels: list[int] | tuple[int, ...] = (32, 64, 128, 256),
                 kernel_size: int = 3, hidden_size: int = 256, dropout: float = 0.1, norm_groups: int = 8,
                 initializer_range: float = 0.02, time_pooling: bool = True, **kwargs):
        self.time_pooling = time_pooling
        self.num_mel_bins = num_mel_bins
        self.channels = list(channels)
        self.kernel_size = kernel_size
        self.hidden_size = hidden_size
        self.dropout = dropout
        self.norm_groups = norm_groups
        self.initializer_range = initializer_range
        super().__init__(**kwargs)


class SousaConfig(PretrainedConfig):
    r"""A SOUSA model: a backbone's config nested inside, the task's labels or targets, pooling and loss,
    and the adapter (name and sampling rate) that makes the model's inputs.

    Args:
        backbone_config: the backbone's own config (`Wav2Vec2Config`, `HubertConfig`, `WhisperConfig` (encoder
            used), `ASTConfig`, `ClapAudioConfig` or `SousaCNNConfig`), or its dict.
        backbone: where the backbone came from (a Hub id, a folder, `hubert:random`, `cnn:tiny`), for the record.
        task: the SOUSA task name (`skill4`, `skill_binary`, `overall_score`, `multitask`, `rudiment40`).
        task_kind: `classification` (labels in `id2label`), `regression` or `multitask` (targets in `target_names`).
        target_names: the regression targets, in the order of the model's `predictions`.
        target_weights: the multi-task loss weight of each target (default 1 each).
        target_scale: predictions are on 0-1; `scores` are `predictions * target_scale` (SOUSA's 0-100).
        pooling: over time, respecting padding: `mean` (masked mean), `attentive_stats` (attention-weighted
            mean and standard deviation), `weighted_layers` (a learned softmax-weighted sum of all hidden
            layers, then the masked mean; SUPERB-style, for frozen backbones) or `layer_stats` (every hidden
            layer's mean and standard deviation over time, side by side: the head weighs layers and statistics
            itself; the best frozen probe measured on SOUSA) or `stroke_statistics` (statistics of the strokes
            the model's own stroke head finds: intervals, grid deviations, velocities, grace notes; see
            `sousa_hf.stroke_statistics`), through a small MLP of `statistics_hidden_size`.
        classifier_dropout: dropout before the head.
        regression_loss: `mse` or `huber` (with `huber_delta`, on the 0-1 scale).
        adapter: the `sousa_hf` adapter that makes this model's inputs.
        sampling_rate: the rate the adapter resamples to.
        max_seconds: the adapter's window (`None`: the whole clip).
        frame_seconds: the time between two of the backbone's output frames (set by `build_model`); stroke
            outputs are per frame.
        temporal_blocks: residual dilated 1-D convolutions over the backbone's frames (dilations 1, 2, 4, ...)
            before pooling and the stroke head: context of a beat or more at the frame rate kept.
        temporal_gru: bidirectional GRU layers over the frames after the temporal blocks (residual, of the
            backbone's width): every frame sees the whole window (the tempo, the room, the pattern so far).
        aux_strokes: weight of the stroke-transcription loss added to a clip task's loss (0: no stroke head);
            `task_kind="strokes"` trains the stroke head alone.
        stroke_target_frames: the width (a Gaussian's standard deviation, in frames) of each stroke's onset target.
        stroke_onset_weight: the weight of the onset targets against the frames without a stroke in the onset loss
            (binary cross-entropy's `pos_weight`: above 1, a missed stroke costs more than a false one).
        stroke_cluster_ms: strokes closer than this (ms) to the one before are a cluster (a flat flam, a fast
            diddle; a buzz's bounces are not onset targets at all): too close for two peaks of the onset curve, so
            the onset output marks a cluster's first stroke and two more outputs per frame
            (`STROKE_CLUSTER_OUTPUTS`) say how many strokes follow it and how far apart. 0: every stroke is its own
            peak (a head of three outputs).
        stroke_threshold: the onset probability a peak must reach to be a stroke (after training: the one that
            gave the best onset F1 on the validation split).
        use_tempo: the model takes `tempo_bpm` (the metronome's tempo, which a drummer knows) as an input (with
            `pooling="stroke_statistics"`: for the statistics against the metronome grid).
        statistics_hidden_size: the width of the MLP over the stroke statistics.
        stroke_statistics: with `pooling="stroke_statistics"`, the names of the statistics the MLP reads, in
            order (`sousa_hf.stroke_statistics.statistic_names`); recorded when the model is built, so that code
            computing other statistics refuses the model by name rather than by a weight's shape.
        statistics_head: with `pooling="stroke_statistics"`, what scores the statistics: `mlp` (the MLP of
            `statistics_hidden_size`, trained by gradient descent) or `boosted_trees` (gradient-boosted trees fitted
            by scikit-learn on the training split, evaluated as tensors: `sousa_hf.boosted_trees`).
        boosted_trees: with `statistics_head="boosted_trees"`, the fitting settings
            (`sousa_hf.boosted_trees.BoostedTreesSettings`); `max_iter` and `max_leaf_nodes` size the trees' arrays.
        rhythm_patterns: with `pooling="stroke_statistics"` and `use_tempo`, the notated rhythms a take is matched to
            for the statistics of its strokes' distances from their notated positions: `{"origin_ms" (where the
            first beat is heard in a take), "cycle_beats", "positions_beats"}`, learned from the training split's
            stroke labels (`sousa_hf.data.rhythm_patterns`). Takes are then assumed to start on the first beat.
        pattern_evidence: with `rhythm_patterns`, the statistics also read the stroke head's onset probability and
            velocity at each notated position of the matched rhythm (`sousa_hf.stroke_statistics.EVIDENCE_STATISTICS`):
            strokes the model heard below its threshold still tell their timing and velocity.
        pattern_matches: with `rhythm_patterns`, the statistics end with how much worse than the best each pattern
            matches the take (one a pattern: which rudiment's rhythm it is, and which others it could be).
    """

    model_type = "sousa"
    sub_configs_defaults = {"backbone_config": SubConfigSpec(config_class=AutoConfig, model_type="sousa_cnn")}

    def __init__(self, backbone_config: PretrainedConfig | dict | None = None, backbone: str | None = None,
                 task: str | None = None, task_kind: str = "classification", target_names: list[str] | None = None,
                 target_weights: list[float] | None = None, target_scale: float = 100.0, pooling: str = "mean",
                 classifier_dropout: float = 0.1, regression_loss: str = "mse", huber_delta: float = 1.0,
                 adapter: str | None = None, sampling_rate: int | None = None, max_seconds: float | None = None,
                 frame_seconds: float | None = None, temporal_blocks: int = 0, temporal_gru: int = 0,
                 aux_strokes: float = 0.0, stroke_target_frames: float = 1.0, use_tempo: bool = False,
                 stroke_threshold: float = 0.5, statistics_hidden_size: int = 256, stroke_onset_weight: float = 1.0,
                 stroke_cluster_ms: float = 0.0, stroke_statistics: list[str] | None = None,
                 statistics_head: str = "mlp", boosted_trees: dict | None = None,
                 rhythm_patterns: dict | None = None, pattern_evidence: bool = False, pattern_matches: bool = False,
                 **kwargs):
        if task_kind not in TASK_KINDS:
            raise ValueError(f"unknown task_kind {task_kind!r}; expected one of {', '.join(TASK_KINDS)}")
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; expected one of {', '.join(POOLINGS)}")
        if regression_loss not in REGRESSION_LOSSES:
            raise ValueError(f"unknown regression_loss {regression_loss!r}; expected mse or huber")
        if pooling == "stroke_statistics" and task_kind == "strokes":
            raise ValueError("pooling='stroke_statistics' scores a clip from its strokes; the strokes task has no "
                             "clip head to pool for")
        if statistics_head not in STATISTICS_HEADS:
            raise ValueError(f"unknown statistics_head {statistics_head!r}; expected one of "
                             f"{', '.join(STATISTICS_HEADS)}")
        if statistics_head == "boosted_trees" and pooling != "stroke_statistics":
            raise ValueError("statistics_head='boosted_trees' scores stroke statistics: it needs "
                             f"pooling='stroke_statistics', not {pooling!r}")
        if rhythm_patterns is not None and not (pooling == "stroke_statistics" and use_tempo):
            raise ValueError("rhythm_patterns are laid at the tempo under the strokes a model finds: they need "
                             f"pooling='stroke_statistics' and use_tempo, not pooling={pooling!r}, "
                             f"use_tempo={use_tempo}")
        if pattern_evidence and rhythm_patterns is None:
            raise ValueError("pattern_evidence reads the stroke head at the notated positions of the rhythm a take "
                             "plays: it needs rhythm_patterns")
        if pattern_matches and rhythm_patterns is None:
            raise ValueError("pattern_matches compares how well each rhythm pattern matches a take: it needs "
                             "rhythm_patterns")
        if (task_kind == "strokes" or aux_strokes or pooling == "stroke_statistics") and not frame_seconds:
            raise ValueError("stroke outputs need frame_seconds, the time between the backbone's output frames")
        if task_kind == "classification":
            _check_label_map(kwargs)
        elif task_kind == "strokes":
            target_names = list(STROKE_OUTPUTS) + (list(STROKE_CLUSTER_OUTPUTS) if stroke_cluster_ms else [])
            kwargs.setdefault("id2label", dict(enumerate(target_names)))
            kwargs.setdefault("label2id", {name: i for i, name in enumerate(target_names)})
        else:
            target_names = list(target_names or [])
            if not target_names:
                raise ValueError(f"a {task_kind} config needs target_names (e.g. ['overall_score'])")
            if task_kind == "regression" and len(target_names) != 1:
                raise ValueError(f"a regression config predicts one target, got target_names={target_names}; "
                                 "use task_kind='multitask' for several")
            target_weights = list(target_weights) if target_weights is not None else [1.0] * len(target_names)
            if len(target_weights) != len(target_names):
                raise ValueError(f"target_weights has {len(target_weights)} entries for {len(target_names)} "
                                 f"targets {target_names}")
            kwargs.setdefault("id2label", dict(enumerate(target_names)))
            kwargs.setdefault("label2id", {name: i for i, name in enumerate(target_names)})
        self.backbone_config = _backbone_config(backbone_config)
        self.backbone = backbone
        self.task = task
        self.task_kind = task_kind
        self.target_names = target_names
        self.target_weights = target_weights
        self.target_scale = target_scale
        self.pooling = pooling
        self.classifier_dropout = classifier_dropout
        self.regression_loss = regression_loss
        self.huber_delta = huber_delta
        self.adapter = adapter
        self.sampling_rate = sampling_rate
        self.max_seconds = max_seconds
        self.frame_seconds = frame_seconds
        self.temporal_blocks = temporal_blocks
        self.temporal_gru = temporal_gru
        self.aux_strokes = aux_strokes
        self.stroke_target_frames = stroke_target_frames
        self.stroke_onset_weight = stroke_onset_weight
        self.stroke_cluster_ms = stroke_cluster_ms
        self.stroke_threshold = stroke_threshold
        self.use_tempo = use_tempo
        self.statistics_hidden_size = statistics_hidden_size
        self.stroke_statistics = list(stroke_statistics) if stroke_statistics is not None else None
        self.statistics_head = statistics_head
        self.boosted_trees = (dict(boosted_trees or {}) if statistics_head == "boosted_trees" else None)
        self.rhythm_patterns = dict(rhythm_patterns) if rhythm_patterns is not None else None
        self.pattern_evidence = bool(pattern_evidence)
        self.pattern_matches = bool(pattern_matches)
        super().__init__(**kwargs)
        # What Trainer leaves out of evaluation predictions: a clip head's per-frame stroke outputs are large.
        self.keys_to_ignore_at_inference = (["stroke_loss"] if task_kind == "strokes"
                                            else ["stroke_logits", "stroke_loss", "frame_mask"])
        if task_kind == "regression":
            self.problem_type = "regression"

    @property
    def num_outputs(self) -> int:
        """What a clip head predicts: one logit per class, or one score per target."""
        return self.num_labels if self.task_kind == "classification" else len(self.target_names)

    @property
    def stroke_head_outputs(self) -> int:
        """How many outputs per frame the stroke head has: onset, velocity, grace (and the cluster outputs)."""
        return len(STROKE_OUTPUTS) + (len(STROKE_CLUSTER_OUTPUTS) if self.stroke_cluster_ms else 0)

    @property
    def evidence_frame_ms(self) -> float | None:
        """The frame spacing the pattern evidence reads the stroke head's outputs at (`None`: no pattern evidence)."""
        return self.frame_seconds * 1000.0 if self.pattern_evidence else None

    @property
    def pattern_match_count(self) -> int:
        """How many match statistics end the stroke statistics: one per rhythm pattern with `pattern_matches`."""
        return len(self.rhythm_patterns["cycle_beats"]) if self.pattern_matches else 0


def _backbone_config(config: PretrainedConfig | dict | None) -> PretrainedConfig:
    if config is None:
        return SousaCNNConfig()
    if isinstance(config, PretrainedConfig):
        return config
    model_type = config.get("model_type")
    # The suite's CNN is looked up here, not in CONFIG_MAPPING: remote code runs without `sousa_hf`
    # having registered it.
    if model_type == SousaCNNConfig.model_type:
        return SousaCNNConfig(**config)
    if model_type not in CONFIG_MAPPING:
        raise ValueError(f"unknown backbone model_type {model_type!r} in backbone_config; expected a Transformers "
                         "audio model type (wav2vec2, hubert, whisper, audio-spectrogram-transformer, "
                         "clap_audio_model) or sousa_cnn")
    return CONFIG_MAPPING[model_type](**config)


def _check_label_map(kwargs: dict) -> None:
    id2label, label2id, num_labels = kwargs.get("id2label"), kwargs.get("label2id"), kwargs.get("num_labels")
    if id2label is not None and num_labels is not None and len(id2label) != num_labels:
        raise ValueError(f"id2label has {len(id2label)} labels but num_labels={num_labels}; pass one or make "
                         "them agree")
    if id2label is not None and label2id is not None:
        inverse = {str(label): int(i) for label, i in label2id.items()}
        if inverse != {str(label): int(i) for i, label in id2label.items()}:
            raise ValueError(f"label2id {label2id} is not the inverse of id2label {id2label}")
