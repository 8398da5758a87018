"""Synthetic SOUSA: the Hub layout, determinism, profile splits, MIDI, audio that follows the strokes."""

from __future__ import annotations

import io
import json

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile

from sousa_hf import SKILL_TIERS, SousaDataError, class_weights, load_sousa, make_synthetic_sousa
from sousa_hf.data.schema import CONFIGS, SPLITS


def test_written_in_the_hub_layout(synthetic_dir):
    for config in CONFIGS:
        for split in SPLITS:
            assert (synthetic_dir / config / f"{split}-00000-of-00001.parquet").is_file()
    assert (synthetic_dir / "auxiliary" / "strokes.parquet").is_file()
    assert (synthetic_dir / "auxiliary" / "measures.parquet").is_file()
    # The card's `configs:` block lets plain `datasets.load_dataset` read it, as it reads the Hub.
    plain = datasets.load_dataset(str(synthetic_dir), "labels_only")
    ours = load_sousa(synthetic_dir, "labels_only")
    assert {k: len(v) for k, v in plain.items()} == {k: len(v) for k, v in ours.items()}
    assert sum(len(v) for v in ours.values()) == 48


def test_splits_are_by_profile_with_every_tier_in_every_split(synthetic_dir):
    splits = load_sousa(synthetic_dir, "labels_only")  # also runs the leakage check
    recorded = json.loads((synthetic_dir / "splits.json").read_text())
    for split, key in zip(SPLITS, ("train_profile_ids", "val_profile_ids", "test_profile_ids")):
        assert set(splits[split]["profile_id"]) == set(recorded[key])
        assert set(splits[split]["skill_tier"]) == set(SKILL_TIERS)


def test_same_seed_same_bytes_whatever_the_process_count(tmp_path, synthetic_dir):
    make_synthetic_sousa(tmp_path / "again", num_samples=48, seed=7, num_proc=1)
    for config in CONFIGS:
        name = f"{config}/train-00000-of-00001.parquet"
        assert (tmp_path / "again" / name).read_bytes() == (synthetic_dir / name).read_bytes()
    make_synthetic_sousa(tmp_path / "other", num_samples=48, seed=8, num_proc=1)
    name = "labels_only/train-00000-of-00001.parquet"
    assert (tmp_path / "other" / name).read_bytes() != (synthetic_dir / name).read_bytes()


def test_midi_only_on_the_first_variant_of_each_group(synthetic_dir):
    rows = pq.read_table(synthetic_dir / "midi_only" / "train-00000-of-00001.parquet").to_pylist()
    seen = set()
    for row in rows:
        first = row["augmentation_group_id"] not in seen
        seen.add(row["augmentation_group_id"])
        assert (row["midi"] is not None) == first
        if first:
            assert row["midi"].startswith(b"MThd")
            assert _count_note_ons(row["midi"]) == row["num_strokes"]
    assert len(seen) < len(rows), "some groups must have several augmented variants"


def _count_note_ons(midi: bytes) -> int:
    track = midi[midi.index(b"MTrk") + 8 :]
    count, i = 0, 0
    while i < len(track):
        while track[i] & 0x80:  # variable-length delta time
            i += 1
        i += 1
        status = track[i]
        if status == 0xFF:
            length = track[i + 2]
            i += 3 + length
        else:
            count += (status & 0xF0) == 0x90 and track[i + 2] > 0
            i += 3
    return count


def test_audio_is_stereo_24_bit_flac_whose_energy_follows_the_strokes(synthetic_dir):
    table = pq.read_table(synthetic_dir / "audio" / "validation-00000-of-00001.parquet").to_pylist()
    strokes = pq.read_table(synthetic_dir / "auxiliary" / "strokes.parquet").to_pandas()
    row = table[0]
    info = soundfile.info(io.BytesIO(row["audio"]["bytes"]))
    assert (info.channels, info.samplerate, info.subtype) == (2, 44100, "PCM_24")
    assert info.duration == pytest.approx(row["duration_sec"] + 0.5, abs=0.01)

    audio, rate = soundfile.read(io.BytesIO(row["audio"]["bytes"]), dtype="float32")
    envelope = np.abs(audio.mean(axis=1))
    onsets = strokes[(strokes.sample_id == row["sample_id"]) & ~strokes.is_grace_note].actual_time_ms.to_numpy()
    offset = -min(0.0, strokes[strokes.sample_id == row["sample_id"]].actual_time_ms.min())
    at_strokes = [envelope[int((t + offset) / 1000 * rate):][: rate // 50].max() for t in onsets]
    between = np.median(envelope)
    assert np.median(at_strokes) > 5 * between


def test_demo_sized_data_has_learnable_skill_and_every_class_in_training(tmp_path):
    path = make_synthetic_sousa(tmp_path / "s", num_samples=200, seed=0)
    labels = load_sousa(path, "labels_only")
    for task in ("skill4", "skill_binary", "rudiment40"):
        assert np.all(class_weights(labels["train"], task) > 0), f"{task}: a class is missing from training"
    rows = [row for split in labels.values() for row in split]
    strokes = pq.read_table(f"{path}/auxiliary/strokes.parquet").to_pandas()
    error_by_sample = strokes[~strokes.is_grace_note].groupby("sample_id").timing_error_ms.apply(
        lambda e: np.abs(e).mean())
    mean_score = [np.mean([r["overall_score"] for r in rows if r["skill_tier"] == t]) for t in SKILL_TIERS]
    mean_error = [np.mean([error_by_sample[r["sample_id"]] for r in rows if r["skill_tier"] == t]) for t in SKILL_TIERS]
    assert mean_score == sorted(mean_score), f"overall_score must rise with the tier: {mean_score}"
    assert mean_error == sorted(mean_error, reverse=True), f"timing error must shrink with the tier: {mean_error}"


def test_nullable_scores_follow_the_rudiment_family(synthetic_dir):
    from sousa_hf import RUDIMENT_FAMILY

    for row in pq.read_table(synthetic_dir / "labels_only" / "train-00000-of-00001.parquet").to_pylist():
        family = RUDIMENT_FAMILY[row["rudiment_slug"]]
        assert np.isnan(row["flam_quality"]) == (family != "flam")
        assert np.isnan(row["diddle_quality"]) == (family not in ("roll", "diddle"))
        assert np.isnan(row["roll_sustain"]) == (family != "roll")


def test_too_few_samples_and_an_existing_folder(tmp_path):
    with pytest.raises(SousaDataError, match="at least 12"):
        make_synthetic_sousa(tmp_path / "tiny", num_samples=5)
    path = make_synthetic_sousa(tmp_path / "s", num_samples=12, seed=0)
    (tmp_path / "s" / "mine.txt").write_text("keep me")
    with pytest.raises(SousaDataError, match="already holds a dataset.*--overwrite"):
        make_synthetic_sousa(path, num_samples=12)
    make_synthetic_sousa(path, num_samples=12, seed=1, overwrite=True)
    assert (tmp_path / "s" / "mine.txt").read_text() == "keep me"
    assert sum(len(s) for s in load_sousa(path, "labels_only").values()) == 12
