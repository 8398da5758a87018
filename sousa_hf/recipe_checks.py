"""Checking every value of a recipe before any data is loaded or a model is built.

`TrainingArguments` stores whatever it is given (`max_steps="abc"`, `learning_rate=-0.01`) and fails
deep inside the training loop, after the data has been cached. Here each value is checked against the
type its field declares (the fields of `Recipe` and of `TrainingArguments`), the choices of an enum
field, and the range that makes sense for it; every error names the key, the value and the fix.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import inspect
import math
import types
import typing
from functools import cache
from pathlib import Path
from typing import Any

from transformers import TrainingArguments

from .data.errors import SousaDataError

# (lower bound, whether the bound itself is allowed, upper bound or None, whether it is allowed).
_POSITIVE, _NON_NEGATIVE, _UNIT, _PROBABILITY = (0, False, None, False), (0, True, None, False), (0, True, 1, False), \
    (0, True, 1, True)
TRAINING_RANGES: dict[str, tuple] = {
    "learning_rate": _NON_NEGATIVE, "per_device_train_batch_size": _POSITIVE, "per_device_eval_batch_size": _POSITIVE,
    "gradient_accumulation_steps": _POSITIVE, "eval_steps": _POSITIVE, "save_steps": _POSITIVE,
    "logging_steps": _POSITIVE, "eval_accumulation_steps": _POSITIVE, "adam_epsilon": _POSITIVE,
    "save_total_limit": _POSITIVE, "weight_decay": _NON_NEGATIVE, "warmup_steps": _NON_NEGATIVE,
    "num_train_epochs": _NON_NEGATIVE, "max_grad_norm": _NON_NEGATIVE, "dataloader_num_workers": _NON_NEGATIVE,
    "eval_delay": _NON_NEGATIVE, "seed": _NON_NEGATIVE, "adam_beta1": _UNIT, "adam_beta2": _UNIT,
    "label_smoothing_factor": _UNIT,
}
RECIPE_RANGES: dict[str, tuple] = {
    "classifier_dropout": _UNIT, "huber_delta": _POSITIVE, "synthetic_samples": _POSITIVE,
    "synthetic_seed": _NON_NEGATIVE, "max_train_samples": _POSITIVE, "max_eval_samples": _POSITIVE,
    "early_stopping_patience": _POSITIVE, "num_proc": _POSITIVE, "temporal_blocks": _NON_NEGATIVE,
    "temporal_gru": _NON_NEGATIVE, "aux_strokes": _NON_NEGATIVE, "stroke_onset_weight": _POSITIVE,
    "stroke_cluster_ms": _NON_NEGATIVE,
}


def check_recipe(recipe) -> None:
    """Refuse a `Recipe` value that would only fail later (after the data is loaded): each error names the key."""
    from .adapters import LengthPolicy
    from .adapters.augmentation import WaveformAugmentation
    from .adapters.preprocessing import CACHES
    from .backbones import parse_backbone
    from .boosted_trees import BoostedTreesSettings
    from .configuration_sousa import POOLINGS, REGRESSION_LOSSES, STATISTICS_HEADS
    from .data.audio_check import BAD_AUDIO_POLICIES
    from .data.filters import filter_criteria, filter_sousa
    from .data.tasks import get_task
    from .recipe import Recipe
    from .training_modes import TRAINING_MODES, LoraSettings

    hints = _type_hints(Recipe)
    for field in dataclasses.fields(Recipe):
        _check_value(field.name, getattr(recipe, field.name), hints[field.name], RECIPE_RANGES.get(field.name))
    get_task(recipe.task)
    choices = {"pooling": POOLINGS, "regression_loss": REGRESSION_LOSSES, "training_mode": TRAINING_MODES,
               "cache": (None, *CACHES, "backbone"), "bad_audio": BAD_AUDIO_POLICIES,
               "statistics_head": STATISTICS_HEADS}
    for key, allowed in choices.items():
        if getattr(recipe, key) not in allowed:
            raise SousaDataError(f"recipe key {key}: {getattr(recipe, key)!r} is not one of "
                                 f"{', '.join(map(str, allowed))}")
    if recipe.aux_strokes and get_task(recipe.task).kind == "strokes":
        raise SousaDataError("recipe key aux_strokes: the strokes task is stroke transcription itself; aux_strokes "
                             "adds it to a clip task (skill4, skill_binary, overall_score, multitask, rudiment40)")
    if (recipe.pooling == "stroke_statistics") != (recipe.strokes_from is not None):
        raise SousaDataError("recipe keys pooling and strokes_from: pooling 'stroke_statistics' scores a clip from the "
                             "strokes a trained stroke model finds, named by strokes_from (a recipes/strokes_cnn.yaml "
                             f"run's folder); got pooling={recipe.pooling!r}, strokes_from={recipe.strokes_from!r}")
    if recipe.pooling == "stroke_statistics" and recipe.aux_strokes:
        raise SousaDataError("recipe key aux_strokes: with pooling 'stroke_statistics' the stroke head is the trained "
                             "model of strokes_from, frozen; set aux_strokes: 0")
    if recipe.cache == "backbone" and recipe.training_mode != "freeze_backbone":
        raise SousaDataError(f"recipe key cache: 'backbone' caches a frozen backbone's outputs, but training_mode is "
                             f"{recipe.training_mode!r}, which trains the backbone; set training_mode: "
                             "freeze_backbone, or cache: waveform")
    if recipe.statistics_head == "boosted_trees" and (recipe.pooling != "stroke_statistics"
                                                      or recipe.cache != "backbone"):
        raise SousaDataError("recipe key statistics_head: 'boosted_trees' is fitted on the cached stroke statistics; "
                             "it needs pooling: stroke_statistics and cache: backbone, got "
                             f"pooling={recipe.pooling!r}, cache={recipe.cache!r}")
    if recipe.rhythm_patterns and not (recipe.pooling == "stroke_statistics" and recipe.use_tempo):
        raise SousaDataError("recipe key rhythm_patterns: the rhythms are laid at the tempo under the strokes a stroke "
                             "model finds; they need pooling: stroke_statistics and use_tempo: true, got "
                             f"pooling={recipe.pooling!r}, use_tempo={recipe.use_tempo}")
    if recipe.pattern_evidence and not recipe.rhythm_patterns:
        raise SousaDataError("recipe key pattern_evidence: the stroke model is read at the notated positions of the "
                             "rhythm a take plays; it needs rhythm_patterns: true (or set pattern_evidence: false)")
    if recipe.pattern_matches and not recipe.rhythm_patterns:
        raise SousaDataError("recipe key pattern_matches: it compares how well each rhythm pattern matches a take; it "
                             "needs rhythm_patterns: true (or set pattern_matches: false)")
    if recipe.boosted_trees and recipe.statistics_head != "boosted_trees":
        raise SousaDataError("recipe key boosted_trees: its settings are for statistics_head: boosted_trees, but "
                             f"statistics_head is {recipe.statistics_head!r}")
    if recipe.augmentation and recipe.cache in ("features", "backbone"):
        raise SousaDataError(f"recipe key augmentation: it changes each training clip on access, and cache "
                             f"{recipe.cache!r} stores fixed inputs made once; use cache: waveform (or none), or "
                             "leave augmentation out")
    entries = {"length": LengthPolicy, "lora": LoraSettings, "filters": filter_sousa,
               "boosted_trees": BoostedTreesSettings, "augmentation": WaveformAugmentation}
    for key, owner in entries.items():
        value = getattr(recipe, key)
        allowed = ({f.name for f in dataclasses.fields(owner)} if dataclasses.is_dataclass(owner)
                   else set(inspect.signature(owner).parameters) - {"dataset"})
        for entry in value:
            if entry not in allowed:
                close = difflib.get_close_matches(str(entry), allowed, n=1)
                raise SousaDataError(f"recipe key {key}: unknown entry {entry!r}"
                                     + (f" (did you mean {close[0]!r}?)" if close else "")
                                     + f"; it takes {', '.join(sorted(allowed))}")
        if dataclasses.is_dataclass(owner):
            owner_hints = _type_hints(owner)
            for entry, item in value.items():
                _check_value(f"{key}.{entry}", item, owner_hints[entry], None)
    if recipe.length.get("max_seconds") is not None:
        _check_range("length.max_seconds", recipe.length["max_seconds"], _POSITIVE)
    for key, owner in (("length", LengthPolicy), ("boosted_trees", BoostedTreesSettings),
                       ("augmentation", WaveformAugmentation)):
        try:
            owner(**getattr(recipe, key))
        except ValueError as err:
            raise SousaDataError(f"recipe key {key}: {err}") from err
    filter_criteria(**recipe.filters)  # an unknown preset, rudiment or tier is named now, not after loading
    if ":" in recipe.backbone and not Path(recipe.backbone).exists():  # <family>:<variant>; checkpoints load later
        try:
            parse_backbone(recipe.backbone)
        except ValueError as err:
            raise SousaDataError(f"recipe key backbone: {err}") from err


def check_training_values(values: dict[str, Any]) -> None:
    """Refuse `TrainingArguments` values of the wrong type, outside their choices or range, or that train nothing."""
    hints = _type_hints(TrainingArguments)
    for key, value in values.items():
        if key in hints:
            _check_value(key, value, hints[key], TRAINING_RANGES.get(key))
    max_steps = values.get("max_steps", -1)
    epochs = values.get("num_train_epochs", 3.0)
    if max_steps <= 0 and epochs == 0:
        raise SousaDataError(f"recipe keys max_steps ({max_steps}) and num_train_epochs (0) train nothing: the run "
                             "would save an untrained model with a results table; set num_train_epochs or max_steps "
                             "above 0 (to evaluate a saved model, use `sousa-hf evaluate`)")


@cache
def _type_hints(owner) -> dict[str, Any]:
    return typing.get_type_hints(owner)


def _check_value(key: str, value: Any, annotation: Any, bounds: tuple | None) -> None:
    problem = _misfit(value, annotation)
    if problem:
        hint = (f" (YAML reads an unquoted no/yes/off/on as a boolean: quote it, {key}: 'no')"
                if isinstance(value, bool) and "text" in problem else "")
        raise SousaDataError(f"recipe key {key}: {problem}, got {value!r}{hint}")
    if bounds is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
        _check_range(key, value, bounds)


def _check_range(key: str, value: float, bounds: tuple) -> None:
    low, low_ok, high, high_ok = bounds
    if math.isnan(value) or value < low or (value == low and not low_ok) or (
            high is not None and (value > high or (value == high and not high_ok))):
        lower = f">= {low}" if low_ok else f"> {low}"
        upper = "" if high is None else f" and {'<=' if high_ok else '<'} {high}"
        raise SousaDataError(f"recipe key {key}: must be {lower}{upper}, got {value!r}")


def _misfit(value: Any, annotation: Any) -> str | None:
    """Why `value` does not fit the annotation (`None` when it does)."""
    if annotation is Any:
        return None
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = typing.get_args(annotation)
        enums = [m for m in members if isinstance(m, type) and issubclass(m, enum.Enum)]
        if enums and isinstance(value, str):  # `IntervalStrategy | str`: the string must be one of the enum's
            allowed = [member.value for member in enums[0]]
            if value in allowed:
                return None
            close = difflib.get_close_matches(value, [str(a) for a in allowed], n=1)
            listed = ", ".join(map(str, allowed[:12])) + (", ..." if len(allowed) > 12 else "")
            return f"expected one of {listed}" + (f" (did you mean {close[0]!r}?)" if close else "")
        reasons = [_misfit(value, member) for member in members]
        if any(reason is None for reason in reasons):
            return None
        for member, reason in zip(members, reasons):  # a mapping or list of the right kind with a bad entry
            container = typing.get_origin(member) or member
            if container in (dict, list, tuple) and isinstance(value, dict if container is dict else (list, tuple)):
                return reason
        return "expected " + " or ".join(_describe(member) for member in members)
    if annotation is type(None):
        return None if value is None else "expected null"
    if annotation is bool:
        return None if isinstance(value, bool) else "expected true or false"
    if annotation is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else "expected an integer"
    if annotation is float:
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else "expected a number"
    if annotation is str:
        return None if isinstance(value, str) else "expected text"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        allowed = [member.value for member in annotation]
        return None if value in allowed or isinstance(value, annotation) else f"expected one of {allowed}"
    if origin in (list, tuple) or annotation in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return "expected a list"
        (item,) = typing.get_args(annotation)[:1] or (Any,)
        return next((f"an entry: {reason}" for entry in value if (reason := _misfit(entry, item))), None)
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            return "expected a mapping"
        _, item = typing.get_args(annotation) or (Any, Any)
        return next((f"entry {name!r}: {reason}" for name, entry in value.items()
                     if (reason := _misfit(entry, item))), None)
    return None  # a type this check does not know (a callable, a config object): TrainingArguments checks it


def _describe(annotation: Any) -> str:
    names = {bool: "true/false", int: "an integer", float: "a number", str: "text", type(None): "null"}
    if annotation in names:
        return names[annotation]
    origin = typing.get_origin(annotation) or annotation
    return {list: "a list", tuple: "a list", dict: "a mapping"}.get(origin, getattr(annotation, "__name__",
                                                                                    str(annotation)))

