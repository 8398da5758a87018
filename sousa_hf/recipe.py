"""Recipes: a YAML file of flat keys, overridden from the command line, checked against known keys.

A recipe's keys are the fields of `Recipe` (data, task, backbone, ...) and of `TrainingArguments`
(`output_dir`, `max_steps`, `learning_rate`, ...). `--set key=value` overrides a key (values are
YAML: `--set max_steps=5`, `--set backbone_config={num_hidden_layers: 2}`); a dotted key sets one
entry of a dict-valued key (`--set length.max_seconds=6`). An unknown key is an error naming it.

A recipe file may hold `per_task`: for each task, the values that are best for it (chosen on validation), e.g.
`per_task: {rudiment40: {pattern_matches: true}}`. They apply on top of the file's values when the recipe runs
that task (`--set task=rudiment40`), and a `--set` of the same key still wins.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from transformers import TrainingArguments

from .data.errors import SousaDataError
from .recipe_checks import check_recipe, check_training_values


@dataclass
class Recipe:
    """What to train on what.

    Args:
        task: `skill4`, `skill_binary`, `overall_score`, `multitask` or `rudiment40`.
        data: any `load_sousa` source (Hub id, folder, Parquet files); `None` writes and uses the built-in
            synthetic SOUSA (`synthetic_samples` clips, seed `synthetic_seed`).
        backbone: Hub checkpoint, local folder, or `<family>:random` / `<family>:tiny`.
        backbone_config: overrides of the backbone config's fields.
        feature_extractor: a folder (or Hub id) whose feature extractor replaces the backbone's, e.g. the
            one `sousa-hf adapters stats` saves with SOUSA's spectrogram statistics; same family as `backbone`.
        feature_extractor_config: settings of a `<family>:random/tiny` backbone's default extractor, e.g.
            `{hop_length: 220, feature_size: 64}` for the CNN's 5 ms frames.
        temporal_blocks: residual dilated convolutions over the backbone's frames before pooling (`SousaConfig`).
        temporal_gru: bidirectional GRU layers over the frames after the temporal blocks (`SousaConfig`).
        aux_strokes: weight of a stroke-transcription loss added to a clip task's (0: none); needs the data's
            `auxiliary/strokes.parquet`. The `strokes` task trains transcription alone.
        use_tempo: the model takes the clip's `tempo_bpm` as an input (then required to predict).
        stroke_onset_weight: the stroke loss's weight of onset targets against frames without a stroke (`SousaConfig`).
        stroke_cluster_ms: strokes closer than this to the one before are decoded as one peak's cluster, its size
            and spacing predicted (a flat flam; `SousaConfig`). 0: off.
        strokes_from: with `pooling: stroke_statistics`, the trained stroke model (a `recipes/strokes_cnn.yaml`
            run's folder or a Hub id) whose backbone, temporal blocks and stroke head the clip model takes, frozen.
        statistics_head: with `pooling: stroke_statistics`, `mlp` (trained by the Trainer) or `boosted_trees`
            (gradient-boosted trees fitted on the training split's cached statistics, their iterations chosen on
            `eval_split`; no gradient steps); see `SousaConfig`.
        boosted_trees: `BoostedTreesSettings` (`max_iter`, `learning_rate`, `max_leaf_nodes`, `min_samples_leaf`,
            `l2_regularization`, `random_state`) for `statistics_head: boosted_trees`.
        rhythm_patterns: with `pooling: stroke_statistics` and `use_tempo`, learn the rudiments' notated rhythms from
            the training split's stroke labels (`auxiliary/strokes.parquet`) and add the statistics of each take's
            strokes against the rhythm it plays best (`sousa_hf.data.rhythm_patterns`); saved with the model.
        pattern_evidence: with `rhythm_patterns`, add the statistics of the stroke model's onset probability and
            velocity at each notated position of that rhythm (`sousa_hf.stroke_statistics.EVIDENCE_STATISTICS`).
        pattern_matches: with `rhythm_patterns`, add how much worse than the best each rhythm matches the take.
        length: the adapter's `LengthPolicy` (`max_seconds`, `train_crop`, `eval_crop`).
        augmentation: `WaveformAugmentation` (`speed`, `eq_db`, `eq_bands`, `noise_snr_db`, `gain_db`): random
            changes to each training clip (stroke times follow `speed`); empty: none.
        pooling, classifier_dropout, regression_loss, huber_delta, target_weights: see `SousaConfig`.
        training_mode: `full`, `freeze_feature_encoder`, `freeze_backbone` or `lora`.
        lora: `LoraSettings` (`rank`, `alpha`, `dropout`, `target_modules`).
        class_weights: weight classification losses by inverse class frequency in the training split.
        filters: `filter_sousa` arguments applied to every split (`presets`, `families`, `rudiments`,
            `tiers`, `min_tier_confidence`, `exclude_sample_ids`), on top of the task's default filter.
        bad_audio: what to do with a clip whose audio cannot be decoded, found when the data is prepared
            (before training): `error` (default: stop, naming its sample id) or `skip` (leave it out; the
            skipped ids are logged and counted in `results.json`).
        apply_default_filter: apply the task's own filter (`tier_confidence > 0.5` for skill4).
        cache: `None` (decode on the fly), `features` or `waveform` (cached Arrow, reused by fingerprint), or
            `backbone` (with `training_mode: freeze_backbone`: the frozen backbone's outputs, computed once; see
            `sousa_hf.backbone_cache`).
        num_proc: processes for caching.
        max_train_samples, max_eval_samples: use the first N rows of a split (quick checks).
        eval_split, test_split: the split chosen on (best checkpoint, early stopping) and the one reported.
        early_stopping_patience: evaluations without improvement before stopping (`None`: never).
        resume: continue from the last checkpoint in `output_dir` when there is one (refused when
            that run's recipe differs in a `RUN_IDENTITY_KEYS` key); `False` refuses an `output_dir`
            that holds checkpoints.
        hub_exist_ok: with `push_to_hub`, replace the files of a Hub repository that already holds some.
    """

    task: str = "skill_binary"
    data: str | list[str] | None = None
    synthetic_samples: int = 400
    synthetic_seed: int = 0
    backbone: str = "cnn:random"
    backbone_config: dict[str, Any] = field(default_factory=dict)
    feature_extractor: str | None = None
    feature_extractor_config: dict[str, Any] = field(default_factory=dict)
    length: dict[str, Any] = field(default_factory=dict)
    augmentation: dict[str, Any] = field(default_factory=dict)
    pooling: str = "mean"
    classifier_dropout: float = 0.1
    regression_loss: str = "mse"
    huber_delta: float = 1.0
    target_weights: dict[str, float] | list[float] | None = None
    temporal_blocks: int = 0
    temporal_gru: int = 0
    aux_strokes: float = 0.0
    use_tempo: bool = False
    strokes_from: str | None = None
    statistics_head: str = "mlp"
    boosted_trees: dict[str, Any] = field(default_factory=dict)
    rhythm_patterns: bool = False
    pattern_evidence: bool = False
    pattern_matches: bool = False
    stroke_onset_weight: float = 1.0
    stroke_cluster_ms: float = 0.0
    training_mode: str = "full"
    lora: dict[str, Any] = field(default_factory=dict)
    class_weights: bool = True
    filters: dict[str, Any] = field(default_factory=dict)
    apply_default_filter: bool = True
    bad_audio: str = "error"
    cache: str | None = None
    num_proc: int | None = None
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    eval_split: str = "validation"
    test_split: str = "test"
    early_stopping_patience: int | None = None
    resume: bool = True
    hub_exist_ok: bool = False


RECIPE_KEYS = {f.name for f in dataclasses.fields(Recipe)}
TRAINING_KEYS = {f.name for f in dataclasses.fields(TrainingArguments) if f.init}
_DICT_KEYS = {name for name in RECIPE_KEYS if isinstance(getattr(Recipe(), name), dict)}
# The keys that make a run's model and data: a checkpoint resumes only under a recipe that agrees on them.
RUN_IDENTITY_KEYS = ("task", "data", "synthetic_samples", "synthetic_seed", "backbone", "backbone_config",
                     "feature_extractor", "feature_extractor_config", "length", "augmentation", "pooling",
                     "classifier_dropout",
                     "regression_loss", "huber_delta", "target_weights", "temporal_blocks", "temporal_gru",
                     "aux_strokes", "use_tempo", "strokes_from", "statistics_head", "boosted_trees",
                     "rhythm_patterns", "pattern_evidence", "pattern_matches", "stroke_onset_weight",
                     "stroke_cluster_ms",
                     "training_mode", "lora", "class_weights", "filters", "apply_default_filter", "bad_audio",
                     "max_train_samples")
_SCIENTIFIC = re.compile(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+")
# Never written to a run's recipe.yaml, which is uploaded with the model.
SECRET_KEYS = ("hub_token",)
# Keys that change where or how fast a run goes, or what it does after training, not the model it makes:
# a finished run folder is taken as this recipe's when everything else agrees.
RUN_ENVIRONMENT_KEYS = ("output_dir", "logging_steps", "logging_dir", "report_to", "push_to_hub", "hub_model_id",
                        "hub_private_repo", "hub_strategy", "hub_exist_ok", "dataloader_num_workers",
                        "dataloader_pin_memory", "per_device_eval_batch_size", "num_proc", "disable_tqdm", "resume",
                        "use_cpu", "save_total_limit")


def load_recipe(path: str | Path | None, overrides: list[str] | None = None) -> tuple[Recipe, dict[str, Any]]:
    """Read a recipe file (or none: all defaults), apply its `per_task` values for the task it runs, then the
    `key=value` overrides.

    Returns:
        `(recipe, training_arguments)`: the `Recipe` and the `TrainingArguments` keys it sets.
    """
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise SousaDataError(f"recipe {str(path)!r} not found")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise SousaDataError(f"recipe {str(path)!r} must hold a mapping of keys to values")
        values.update(_scientific_as_float(loaded))
    parsed = [(override, *parse_override(override)) for override in overrides or []]
    set_here = {key: value for _, key, value in parsed}  # the last --set of each key
    per_task = set_here.get("per_task", values.pop("per_task", None))
    where = "--set per_task" if "per_task" in set_here else f"recipe {str(path)!r}"
    task = set_here.get("task", values.get("task", Recipe.task))
    task_values = task_recipe_values(per_task, task, where)
    for key, value in task_values.items():  # a mapping merges into the file's (one level), as a dotted --set does
        both_maps = isinstance(value, dict) and isinstance(values.get(key), dict)
        values[key] = {**values[key], **value} if both_maps else value
    parsed = [(override, key, value) for override, key, value in parsed if key != "per_task"]
    for override, key, value in parsed:
        head, _, entry = key.partition(".")
        if entry:
            if head not in _DICT_KEYS:
                raise SousaDataError(f"--set {override!r}: only {', '.join(sorted(_DICT_KEYS))} take dotted keys")
            values[head] = {**(values.get(head) or {}), entry: value}
        else:
            values[key] = value
    unknown = [key for key in values if key not in RECIPE_KEYS | TRAINING_KEYS]
    if unknown:
        hints = [f"{key!r}" + (f" (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(
            key, RECIPE_KEYS | TRAINING_KEYS, n=1)) else "") for key in unknown]
        raise SousaDataError(f"unknown recipe key(s) {', '.join(hints)}; recipe keys are the fields of "
                             "sousa_hf.recipe.Recipe and of transformers.TrainingArguments")
    # `backbone_config: null` (or length, lora, filters) means no entries, as an empty mapping does.
    values.update({key: {} for key in _DICT_KEYS if key in values and values[key] is None})
    recipe = Recipe(**{k: v for k, v in values.items() if k in RECIPE_KEYS})
    training = {k: v for k, v in values.items() if k in TRAINING_KEYS and k not in RECIPE_KEYS}
    try:
        check_recipe(recipe)
        check_training_values(training)
    except SousaDataError as err:
        set_keys = {key.partition(".")[0] for key in set_here}
        chosen = {key: values[key] for key in task_values if key not in set_keys and key in str(err)}
        if not chosen:
            raise
        shown = yaml.safe_dump(chosen, default_flow_style=True).strip()
        raise SousaDataError(f"{err} ({shown} from the recipe's per_task values for {task}; a --set overrides "
                             "them)") from err
    return recipe, training


def task_recipe_values(per_task: Any, task: str, where: str) -> dict[str, Any]:
    """A recipe's `per_task` values for `task` (none when it has none for it); the task names and keys of every
    entry are checked here, the values of `task`'s with the rest of the recipe. `where` names where `per_task` came
    from, for the errors."""
    if per_task is None:
        return {}
    if not isinstance(per_task, dict) or not all(isinstance(v, dict) for v in per_task.values()):
        raise SousaDataError(f"{where}: per_task must map task names to mappings of recipe keys, e.g. "
                             f"'per_task: {{rudiment40: {{pattern_matches: true}}}}'; got {per_task!r}")
    from .data.tasks import TASKS

    unknown_tasks = sorted(set(per_task) - set(TASKS))
    if unknown_tasks:
        raise SousaDataError(f"{where}: per_task names unknown task(s) {', '.join(map(repr, unknown_tasks))}; the "
                             f"tasks are {', '.join(TASKS)}")
    for name, entries in per_task.items():
        bad = [key for key in entries if key in ("task", "per_task") or key not in RECIPE_KEYS | TRAINING_KEYS]
        if bad:
            raise SousaDataError(f"{where}: per_task.{name} sets {', '.join(map(repr, bad))}; it takes recipe keys "
                                 "other than task and per_task (the fields of sousa_hf.recipe.Recipe and of "
                                 "transformers.TrainingArguments)")
    return dict(per_task.get(task) or {}) if isinstance(task, str) else {}  # a task that is not a name is refused later


def parse_override(override: str) -> tuple[str, Any]:
    key, sep, raw = override.partition("=")
    if not sep or not key.strip():
        raise SousaDataError(f"--set expects key=value, got {override!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        raise SousaDataError(f"--set {override!r}: the value is not valid YAML ({err})") from err
    return key.strip(), _scientific_as_float(value)


def _scientific_as_float(value: Any) -> Any:
    """YAML 1.1 (PyYAML) reads `1e-4`, without a dot, as text; in a recipe it is always a number."""
    if isinstance(value, str) and _SCIENTIFIC.fullmatch(value.strip()):
        return float(value)
    if isinstance(value, dict):
        return {key: _scientific_as_float(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_scientific_as_float(item) for item in value]
    return value


def dump_recipe(recipe: Recipe, training: dict[str, Any], path: str | Path) -> None:
    """Write the resolved recipe (every key but secrets, overrides applied) next to a run's outputs."""
    public = {key: value for key, value in training.items() if key not in SECRET_KEYS}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.partial-{os.getpid()}")
    partial.write_text(yaml.safe_dump({**dataclasses.asdict(recipe), **public}, sort_keys=False))
    os.replace(partial, path)  # other processes of the run may be reading it


def read_saved_recipe(model_dir_or_id: str | Path) -> dict[str, Any]:
    """The `recipe.yaml` a run saved (in its output folder, or with its model on the Hub), or `{}`."""
    from transformers.utils import cached_file

    path = cached_file(str(model_dir_or_id), "recipe.yaml", _raise_exceptions_for_missing_entries=False,
                       _raise_exceptions_for_connection_errors=False)
    return (yaml.safe_load(Path(path).read_text()) or {}) if path else {}


def changed_identity_keys(recipe: Recipe, earlier: dict[str, Any]) -> list[str]:
    """The `RUN_IDENTITY_KEYS` on which `recipe` differs from an earlier run's `recipe.yaml` values."""
    now, then = _comparable(dataclasses.asdict(recipe)), _comparable(earlier)
    return [key for key in RUN_IDENTITY_KEYS if now[key] != then[key]]


def changed_keys(recipe: Recipe, training: dict[str, Any], earlier: dict[str, Any]) -> list[str]:
    """Every key (but `RUN_ENVIRONMENT_KEYS` and secrets) on which a run differs from an earlier `recipe.yaml`,
    as `key: then -> now`."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainingArguments)
                if f.init and f.default is not dataclasses.MISSING}
    now = _comparable({**defaults, **dataclasses.asdict(recipe), **training})
    then = _comparable({**defaults, **earlier})
    ignored = set(RUN_ENVIRONMENT_KEYS) | set(SECRET_KEYS)
    return [f"{key}: {then.get(key)!r} -> {now.get(key)!r}" for key in sorted(set(now) | set(then))
            if key not in ignored and now.get(key) != then.get(key)]


def _comparable(values: dict[str, Any]) -> dict[str, Any]:
    """Recipe values as written to recipe.yaml (tuples become lists), with defaults (`length`/`lora` too) filled in."""
    from .adapters import LengthPolicy
    from .adapters.augmentation import WaveformAugmentation
    from .boosted_trees import BoostedTreesSettings
    from .training_modes import LoraSettings

    values = yaml.safe_load(yaml.safe_dump({**dataclasses.asdict(Recipe()), **values}))
    values["length"] = LengthPolicy(**values["length"] or {}).to_dict()
    values["lora"] = yaml.safe_load(yaml.safe_dump(dataclasses.asdict(LoraSettings(**values["lora"] or {}))))
    values["boosted_trees"] = BoostedTreesSettings(**values.get("boosted_trees") or {}).to_dict()
    values["augmentation"] = WaveformAugmentation(**values.get("augmentation") or {}).to_dict()
    return values
