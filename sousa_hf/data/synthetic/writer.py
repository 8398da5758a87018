"""`make_synthetic_sousa`: a small SOUSA in exactly the Hub layout, made offline in seconds."""

from __future__ import annotations

import json
import math
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import SousaDataError
from ..rudiments import RUDIMENTS, sticking_pattern
from ..schema import CONFIGS, SPLITS, SYNTHETIC_GENERATOR, config_columns, config_features
from ..tier_confidence import SKILL_TIERS
from .midi import performance_midi
from .performance import Performance, PlayerProfile, perform
from .render import PRESETS, SAMPLING_RATE, apply_preset, flac_bytes, render_performance
from .scores import exercise_scores

NUM_CYCLES = 4
SOUNDFONT = "sousa_hf_synth"
MIN_SAMPLES = 12  # three profiles per tier: one each for train, validation and test
_WRITTEN = ("audio", "midi_only", "labels_only", "auxiliary", "splits.json", "README.md")
# Split shares of the real dataset's 100 profiles (68 / 13 / 19).
_SPLIT_SHARES = {"validation": 0.13, "test": 0.19}


@dataclass(frozen=True)
class _Group:
    """One simulated performance and the augmentation presets it is rendered through."""

    profile: PlayerProfile
    split: str
    rudiment: str
    presets: tuple[str, ...]
    seed: np.random.SeedSequence


def make_synthetic_sousa(out_dir: str | os.PathLike, num_samples: int = 200, seed: int = 0, *,
                         overwrite: bool = False, num_proc: int | None = None) -> str:
    """Write a synthetic SOUSA with the real one's configs, columns, dtypes and profile splits.

    Stroke timing and velocity errors come from per-tier player profiles, the labels are computed
    from those errors, and the audio is rendered from the same strokes, so every label is learnable
    from the clip. The same `seed` writes the same data whatever `num_proc` is.

    Args:
        out_dir: folder to write; `load_sousa(out_dir)` reads it back.
        num_samples: number of clips (at least 12).
        seed: random seed.
        overwrite: replace what an earlier run wrote into `out_dir`.
        num_proc: processes rendering audio (default: every core).

    Returns:
        The folder written.
    """
    if num_samples < MIN_SAMPLES:
        raise SousaDataError(f"--samples must be at least {MIN_SAMPLES} (three player profiles per tier), "
                             f"got {num_samples}")
    out_dir = os.fspath(out_dir)
    _prepare_folder(out_dir, overwrite)
    root = np.random.SeedSequence(seed)
    plan_seed, *_ = root.spawn(1)
    groups = _plan(num_samples, np.random.default_rng(plan_seed))

    workers = max(1, min(num_proc or os.cpu_count() or 1, len(groups)))
    if workers == 1:
        rendered = [_render_group(group) for group in groups]
    else:
        with ProcessPoolExecutor(workers) as pool:
            rendered = list(pool.map(_render_group, groups, chunksize=4))

    rows: dict[str, list[dict]] = {split: [] for split in SPLITS}
    strokes: list[dict] = []
    measures: list[dict] = []
    for group, (group_rows, group_strokes, group_measures) in zip(groups, rendered):
        rows[group.split].extend(group_rows)
        strokes.extend(group_strokes)
        measures.extend(group_measures)

    for config in CONFIGS:
        os.makedirs(os.path.join(out_dir, config), exist_ok=True)
        for split, split_rows in rows.items():
            path = os.path.join(out_dir, config, f"{split}-00000-of-00001.parquet")
            pq.write_table(_table(split_rows, config), path)
    os.makedirs(os.path.join(out_dir, "auxiliary"), exist_ok=True)
    pq.write_table(pa.Table.from_pylist(strokes), os.path.join(out_dir, "auxiliary", "strokes.parquet"))
    pq.write_table(pa.Table.from_pylist(measures), os.path.join(out_dir, "auxiliary", "measures.parquet"))
    _write_splits_json(out_dir, groups, num_samples, seed)
    _write_card(out_dir, num_samples, seed)
    return out_dir


def _prepare_folder(out_dir: str, overwrite: bool) -> None:
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise SousaDataError(f"{out_dir!r} exists and is not a folder")
    present = [name for name in _WRITTEN if os.path.exists(os.path.join(out_dir, name))]
    if present and not overwrite:
        raise SousaDataError(f"{out_dir!r} already holds a dataset ({', '.join(present)}); pass --overwrite "
                             "(overwrite=True) to replace it, or choose another folder")
    for name in present:  # only what this function writes; anything else in the folder is kept
        path = os.path.join(out_dir, name)
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    os.makedirs(out_dir, exist_ok=True)


def _plan(num_samples: int, rng: np.random.Generator) -> list[_Group]:
    """Profiles per tier split by profile, and which rudiment and presets each of their clips gets."""
    profiles_per_tier = int(np.clip(num_samples // 40, 3, 25))
    profile_splits: list[tuple[PlayerProfile, str]] = []
    for tier in SKILL_TIERS:
        counts = {s: max(1, round(profiles_per_tier * share)) for s, share in _SPLIT_SHARES.items()}
        counts["train"] = profiles_per_tier - sum(counts.values())
        index = 0
        for split in SPLITS:
            for _ in range(counts[split]):
                profile_splits.append((PlayerProfile.random(tier, index, rng), split))
                index += 1

    per_profile = np.full(len(profile_splits), num_samples // len(profile_splits))
    per_profile[: num_samples % len(profile_splits)] += 1
    # Each split walks its own shuffled cycle of the 40 rudiments, so the training split covers all
    # of them as soon as it has 40 performances (the 40-class task needs every class in training).
    rudiment_cycles: dict[str, list[str]] = {split: [] for split in SPLITS}
    presets = list(PRESETS)
    groups: list[_Group] = []
    group_seeds = iter(np.random.SeedSequence(int(rng.integers(2**63))).spawn(num_samples))
    for (profile, split), count in zip(profile_splits, per_profile):
        remaining = int(count)
        while remaining:
            if not rudiment_cycles[split]:
                rudiment_cycles[split] = [str(slug) for slug in rng.permutation(RUDIMENTS)]
            size = int(min(remaining, rng.integers(1, 4)))  # 1-3 rendered variants of one performance
            chosen = tuple(str(p) for p in rng.choice(presets, size=size, replace=False))
            groups.append(_Group(profile, split, rudiment_cycles[split].pop(), chosen, next(group_seeds)))
            remaining -= size
    return groups


def _render_group(group: _Group) -> tuple[list[dict], list[dict], list[dict]]:
    rng = np.random.default_rng(group.seed)
    profile = group.profile
    pattern = sticking_pattern(group.rudiment)
    performance = perform(profile, pattern, NUM_CYCLES, rng)
    scores = exercise_scores(performance, pattern.family)
    onsets, velocities = performance.actual_ms, performance.actual_velocity
    dry = render_performance(onsets, velocities, performance.duration_ms / 1000, rng)
    midi = performance_midi(onsets, velocities, profile.tempo_bpm)
    group_id = f"{profile.profile_id[:8]}_{group.rudiment}_{profile.tempo_bpm}"

    rows, strokes, measures = [], [], []
    for i, preset_name in enumerate(group.presets):
        preset = PRESETS[preset_name]
        sample_id = (f"{profile.name}_{group.rudiment}_{profile.tempo_bpm}bpm_synth_"
                     f"{preset_name.replace('_', '')}")
        audio = flac_bytes(apply_preset(dry, preset, rng))
        rows.append({
            "sample_id": sample_id,
            "profile_id": profile.profile_id,
            "rudiment_slug": group.rudiment,
            "tempo_bpm": profile.tempo_bpm,
            "duration_sec": performance.duration_ms / 1000,
            "num_cycles": NUM_CYCLES,
            "skill_tier": profile.tier,
            "skill_tier_binary": "novice" if profile.tier in ("beginner", "intermediate") else "skilled",
            "dominant_hand": profile.dominant_hand,
            "num_strokes": len(onsets),
            "num_measures": NUM_CYCLES,
            "soundfont": SOUNDFONT,
            "augmentation_preset": preset_name,
            "augmentation_group_id": group_id,
            "aug_soundfont": SOUNDFONT,
            "aug_room_type": preset.room_type,
            "aug_room_wet_dry": preset.wet_dry,
            "aug_mic_distance": preset.mic_distance,
            "aug_mic_type": preset.mic_type,
            "aug_compression_ratio": _nan_if_none(preset.compression_ratio),
            "aug_noise_level_db": _nan_if_none(preset.noise_level_db),
            "aug_bit_depth": None,
            "aug_sample_rate": None,
            **{name: _nan_if_none(value) for name, value in scores.items()},
            # As upstream: only the first variant of an augmentation group carries the MIDI.
            "midi": midi if i == 0 else None,
            "audio": {"bytes": audio, "path": f"{sample_id}.flac"},
        })
        strokes.extend(_stroke_rows(performance, sample_id))
        measures.extend(_measure_rows(performance, sample_id))
    return rows, strokes, measures


def _nan_if_none(value: float | None) -> float:
    """The real data stores a missing score or augmentation setting as NaN, not as an Arrow null."""
    return math.nan if value is None else value


def _stroke_rows(perf: Performance, sample_id: str) -> list[dict]:
    error = perf.timing_error_ms
    rows = []
    for i in range(len(perf.hand)):
        parent = int(perf.parent_index[i])
        is_buzz_main = perf.kind[i] == "buzz" and parent < 0
        rows.append({
            "index": i,
            "hand": str(perf.hand[i]),
            "stroke_type": str(perf.kind[i]),
            "intended_time_ms": float(perf.intended_ms[i]),
            "actual_time_ms": float(perf.actual_ms[i]),
            "timing_error_ms": float(error[i]),
            "intended_velocity": int(perf.intended_velocity[i]),
            "actual_velocity": int(perf.actual_velocity[i]),
            "velocity_error": int(perf.actual_velocity[i] - perf.intended_velocity[i]),
            "is_grace_note": bool(parent >= 0),
            "is_accent": bool(perf.kind[i] == "accent"),
            "diddle_position": float(perf.diddle_position[i]) if perf.diddle_position[i] else None,
            "flam_spacing_ms": float(perf.flam_spacing_ms[i]) if parent >= 0 else None,
            "parent_stroke_index": float(parent) if parent >= 0 else None,
            "buzz_count": float((perf.parent_index == i).sum()) if is_buzz_main else None,
            "sample_id": sample_id,
        })
    return rows


def _measure_rows(perf: Performance, sample_id: str) -> list[dict]:
    rows = []
    for measure in np.unique(perf.measure):
        idx = np.flatnonzero(perf.measure == measure)
        error, velocity = perf.timing_error_ms[idx], perf.actual_velocity[idx].astype(np.float64)
        right, left = idx[perf.hand[idx] == "R"], idx[perf.hand[idx] == "L"]
        both_hands = bool(right.size and left.size)
        rows.append({
            "index": int(measure),
            "stroke_start": int(idx[0]),
            "stroke_end": int(idx[-1] + 1),
            "timing_mean_error_ms": float(error.mean()),
            "timing_std_ms": float(error.std()),
            "timing_max_error_ms": float(np.abs(error).max()),
            "velocity_mean": float(velocity.mean()),
            "velocity_std": float(velocity.std()),
            "velocity_consistency": float(max(0.0, 1 - velocity.std() / max(velocity.mean(), 1e-9))),
            # As upstream: left over right mean velocity, left minus right mean timing error.
            "lr_velocity_ratio": float(perf.actual_velocity[left].mean() / perf.actual_velocity[right].mean())
            if both_hands else None,
            "lr_timing_diff_ms": float(perf.timing_error_ms[left].mean() - perf.timing_error_ms[right].mean())
            if both_hands else None,
            "sample_id": sample_id,
        })
    return rows


def _table(rows: list[dict], config: str) -> pa.Table:
    schema = pa.schema(config_columns(config))
    columns = {name: [row[name] for row in rows] for name in schema.names}
    metadata = {"huggingface": json.dumps({"info": {"features": config_features(config).to_dict()}})}
    return pa.Table.from_pydict(columns, schema=schema.with_metadata(metadata))


def _write_splits_json(out_dir: str, groups: list[_Group], num_samples: int, seed: int) -> None:
    ids = {split: sorted({g.profile.profile_id for g in groups if g.split == split}) for split in SPLITS}
    content = {
        "train_profile_ids": ids["train"],
        "val_profile_ids": ids["validation"],
        "test_profile_ids": ids["test"],
        "stats": {
            "total_profiles": sum(len(v) for v in ids.values()),
            "train_profiles": len(ids["train"]),
            "val_profiles": len(ids["validation"]),
            "test_profiles": len(ids["test"]),
            "num_samples": num_samples,
            "seed": seed,
            "generator": SYNTHETIC_GENERATOR,
        },
    }
    with open(os.path.join(out_dir, "splits.json"), "w") as file:
        json.dump(content, file, indent=2)


def _write_card(out_dir: str, num_samples: int, seed: int) -> None:
    configs = "".join(
        f"  - config_name: {config}\n    data_files:\n"
        + "".join(f"      - split: {split}\n        path: {config}/{split}-*.parquet\n" for split in SPLITS)
        + ("    default: true\n" if config == "audio" else "")
        for config in CONFIGS
    )
    card = (
        f"---\nlicense: mit\npretty_name: Synthetic SOUSA (sousa-hf)\nconfigs:\n{configs}---\n\n"
        "# Synthetic SOUSA\n\n"
        f"{num_samples} synthetic snare-drum rudiment clips (seed {seed}) written by "
        "`sousa_hf.make_synthetic_sousa` in the layout and schema of `zkeown/sousa`, for running the "
        "suite offline. Strokes are synthesised (noise burst over a damped body) from one sticking pattern "
        "per PAS rudiment, played by per-tier player profiles; scores follow SOUSA's published formulas. "
        f"Audio: stereo 24-bit FLAC at {SAMPLING_RATE} Hz. Not a benchmark of model quality.\n"
    )
    with open(os.path.join(out_dir, "README.md"), "w") as file:
        file.write(card)
