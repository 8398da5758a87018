"""The columns of SOUSA's three Hub configs, and the check that a loaded dataset has them.

The real dataset (`zkeown/sousa`) and the suite's synthetic SOUSA are both written and checked
against the tables here, so one schema serves both.
"""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa
from datasets import Audio, Features, Value

from .errors import SousaDataError

CONFIGS = ("audio", "midi_only", "labels_only")
SPLITS = ("train", "validation", "test")
# `stats.generator` in the splits.json of a folder written by `sousa_hf.make_synthetic_sousa`.
SYNTHETIC_GENERATOR = "sousa_hf.make_synthetic_sousa"

METADATA_COLUMNS: dict[str, pa.DataType] = {
    "sample_id": pa.string(),
    "profile_id": pa.string(),
    "rudiment_slug": pa.string(),
    "tempo_bpm": pa.int64(),
    "duration_sec": pa.float64(),
    "num_cycles": pa.int64(),
    "skill_tier": pa.string(),
    "skill_tier_binary": pa.string(),
    "dominant_hand": pa.string(),
    "num_strokes": pa.int64(),
    "num_measures": pa.int64(),
    "soundfont": pa.string(),
    "augmentation_preset": pa.string(),
    "augmentation_group_id": pa.string(),
}

AUGMENTATION_COLUMNS: dict[str, pa.DataType] = {
    "aug_soundfont": pa.string(),
    "aug_room_type": pa.string(),
    "aug_room_wet_dry": pa.float64(),
    "aug_mic_distance": pa.float64(),
    "aug_mic_type": pa.string(),
    "aug_compression_ratio": pa.float64(),
    "aug_noise_level_db": pa.float64(),
    # Always null in the published data; the card documents them as int.
    "aug_bit_depth": pa.null(),
    "aug_sample_rate": pa.null(),
}

# 13 scores are on 0-100; groove_feel_proxy is on 0-1 although the card lists it with the others.
SCORE_COLUMNS: tuple[str, ...] = (
    "timing_accuracy",
    "timing_consistency",
    "tempo_stability",
    "subdivision_evenness",
    "velocity_control",
    "accent_differentiation",
    "accent_accuracy",
    "hand_balance",
    "weak_hand_index",
    "flam_quality",
    "diddle_quality",
    "roll_sustain",
    "groove_feel_proxy",
    "overall_score",
)
# Null where the rudiment has no such articulation.
NULLABLE_SCORE_COLUMNS = ("flam_quality", "diddle_quality", "roll_sustain")

AUDIO_STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def config_columns(config: str) -> dict[str, pa.DataType]:
    """The Arrow schema, in column order, of one SOUSA Hub config (without derived columns)."""
    if config not in CONFIGS:
        raise SousaDataError(f"unknown SOUSA config {config!r}; expected one of {', '.join(CONFIGS)}")
    columns = {**METADATA_COLUMNS, **AUGMENTATION_COLUMNS, **{name: pa.float64() for name in SCORE_COLUMNS}}
    if config in ("audio", "midi_only"):
        columns["midi"] = pa.binary()
    if config == "audio":
        columns["audio"] = AUDIO_STRUCT
    return columns


def config_features(config: str) -> Features:
    """The `datasets.Features` the Hub stores for a config (audio as an `Audio` feature)."""
    features = Features.from_arrow_schema(pa.schema(config_columns(config)))
    if "audio" in features:
        features["audio"] = Audio()
    return features


def _kind_of_arrow(arrow_type: pa.DataType) -> str:
    if pa.types.is_null(arrow_type):
        return "null"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "string"
    if pa.types.is_integer(arrow_type):
        return "int"
    if pa.types.is_floating(arrow_type):
        return "float"
    if pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
        return "binary"
    if pa.types.is_struct(arrow_type) and {"bytes", "path"} <= {f.name for f in arrow_type}:
        return "audio"
    return str(arrow_type)


def _kind_of_feature(feature) -> str:
    if isinstance(feature, Audio):
        return "audio"
    if isinstance(feature, Value):
        return _kind_of_arrow(feature.pa_type)
    if isinstance(feature, Mapping):
        if "array" in feature and "sampling_rate" in feature:
            return "audio"  # already decoded and stored, e.g. after a user's `map`
        if "bytes" in feature and "path" in feature:
            return "audio"
    return type(feature).__name__


# Which stored kinds each expected kind accepts. Integers pass where floats are expected (a
# lossless widening); the two always-null columns may hold integers if upstream ever fills them.
_ACCEPTED_KINDS = {
    "string": {"string"},
    "int": {"int"},
    "float": {"float", "int"},
    "null": {"null", "int"},
    "binary": {"binary", "null"},
    "audio": {"audio"},
}


def check_features(features: Features | None, config: str, where: str) -> None:
    """Raise a `SousaDataError` naming every missing or mistyped column of a SOUSA config.

    Unknown extra columns pass through. `where` says what was loaded (source and split), for the
    message.
    """
    if features is None:
        return
    expected = config_columns(config)
    missing = [name for name in expected if name not in features]
    mistyped = []
    for name, arrow_type in expected.items():
        if name not in features:
            continue
        want, got = _kind_of_arrow(arrow_type), _kind_of_feature(features[name])
        if got not in _ACCEPTED_KINDS[want]:
            mistyped.append(f"{name!r} is {got}, expected {want}")
    if not missing and not mistyped:
        return
    problems = []
    if missing:
        problems.append("missing column" + ("s " if len(missing) > 1 else " ") + ", ".join(map(repr, missing)))
    if mistyped:
        problems.append("mistyped: " + "; ".join(mistyped))
    hint = ""
    if config != "labels_only" and missing and set(missing) <= {"audio", "midi"}:
        hint = " (is this the 'labels_only' or 'midi_only' config? pass config= to match the data)"
    raise SousaDataError(
        f"{where} does not match the SOUSA {config!r} layout: {'; '.join(problems)}{hint}. "
        f"Expected columns: {', '.join(expected)}."
    )
