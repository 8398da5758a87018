"""load_sousa on the real sample, on synthetic data and on bad input."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile
from datasets import Dataset, DatasetDict, IterableDatasetDict

from sousa_hf import SousaDataError, load_sousa
from sousa_hf.data.schema import CONFIGS, config_columns

SAMPLE_ROWS = {"train": 69, "validation": 12, "test": 29}
TIER_STATS = {"beginner": (34.3, 6.6), "intermediate": (45.7, 10.1), "advanced": (61.0, 10.8),
              "professional": (73.5, 10.7)}


@pytest.mark.parametrize("config", CONFIGS)
def test_sample_loads_in_every_config(sample_dir, config):
    splits = load_sousa(sample_dir, config)
    assert isinstance(splits, DatasetDict)
    assert {name: len(split) for name, split in splits.items()} == SAMPLE_ROWS
    for column in config_columns(config):
        assert column in splits["train"].column_names
    assert ("audio" in splits["train"].column_names) == (config == "audio")
    assert ("midi" in splits["train"].column_names) == (config != "labels_only")


def test_sample_audio_is_mono_float32_downmix_of_the_stereo_flac(sample_dir):
    raw = load_sousa(sample_dir, "audio", split="validation", decode=False)[0]["audio"]
    stereo, rate = soundfile.read(io.BytesIO(raw["bytes"]), dtype="float32")
    assert stereo.ndim == 2 and stereo.shape[1] == 2, "the sample is stereo; this test checks the downmix"

    row = load_sousa(sample_dir, "audio", split="validation")[0]
    audio = row["audio"]
    assert audio["array"].dtype == np.float32 and audio["array"].ndim == 1
    assert audio["sampling_rate"] == rate == 44100
    np.testing.assert_allclose(audio["array"], stereo.mean(axis=1), atol=1e-7)
    assert audio["array"].size / rate >= row["duration_sec"]


def test_tier_confidence_is_derived_with_the_upstream_formula(sample_dir):
    train = load_sousa(sample_dir, "labels_only", split="train")
    assert "tier_confidence" not in pq.read_schema(sample_dir / "labels_only" / "train-00000-of-00001.parquet").names
    for row in train:
        mean, std = TIER_STATS[row["skill_tier"]]
        assert row["tier_confidence"] == pytest.approx(np.exp(-0.5 * ((row["overall_score"] - mean) / std) ** 2))


def test_tier_confidence_is_kept_when_present(tmp_path, sample_dir):
    table = pq.read_table(sample_dir / "labels_only" / "train-00000-of-00001.parquet")
    table = table.append_column("tier_confidence", pa.array(np.full(table.num_rows, 0.25)))
    pq.write_table(table, tmp_path / "train-00000-of-00001.parquet")
    train = load_sousa(str(tmp_path / "train-00000-of-00001.parquet"), "labels_only", split="train")
    assert set(train["tier_confidence"]) == {0.25}


@pytest.mark.parametrize("config", CONFIGS)
def test_synthetic_and_real_share_one_schema(sample_dir, synthetic_dir, config):
    real = load_sousa(sample_dir, config, split="train", decode=False)
    synthetic = load_sousa(synthetic_dir, config, split="train", decode=False)
    assert synthetic.features == real.features
    assert pq.read_schema(synthetic_dir / config / "train-00000-of-00001.parquet").remove_metadata() == \
        pq.read_schema(sample_dir / config / "train-00000-of-00001.parquet").remove_metadata()


def test_parquet_files_and_mapping_sources(sample_dir):
    files = sorted(str(p) for p in (sample_dir / "labels_only").glob("*.parquet"))
    by_prefix = load_sousa(files, "labels_only")
    assert {name: len(split) for name, split in by_prefix.items()} == SAMPLE_ROWS
    one = load_sousa({"test": files[0]}, "labels_only", split="test")
    assert len(one) == SAMPLE_ROWS["test"]
    globbed = load_sousa(str(sample_dir / "labels_only" / "*.parquet"), "labels_only", split="validation")
    assert len(globbed) == SAMPLE_ROWS["validation"]


def test_an_already_decoded_dataset_can_be_handed_in(sample_dir):
    rows = load_sousa(sample_dir, "audio", split="validation", decode=False).select(range(2)).to_list()
    stereo = []
    for row in rows:
        array, rate = soundfile.read(io.BytesIO(row["audio"]["bytes"]), dtype="float32")
        stereo.append(array.T)  # (channels, samples), as datasets' decoders give it
        row["audio"] = {"array": array.T.tolist(), "sampling_rate": rate}
    decoded = Dataset.from_list(rows)
    loaded = load_sousa(decoded, "audio", check_leakage=False)["train"]
    for row, original in zip(loaded, stereo):
        np.testing.assert_allclose(row["audio"]["array"], original.mean(axis=0), atol=1e-6)
        assert row["audio"]["sampling_rate"] == 44100
    assert "tier_confidence" in loaded.column_names


def test_streaming_gives_the_same_first_rows(sample_dir):
    eager = load_sousa(sample_dir, "audio", split="train")
    streamed = load_sousa(sample_dir, "audio", streaming=True)
    assert isinstance(streamed, IterableDatasetDict)
    for i, row in zip(range(3), streamed["train"]):
        expected = eager[i]
        assert row["sample_id"] == expected["sample_id"]
        assert row["tier_confidence"] == pytest.approx(expected["tier_confidence"])
        np.testing.assert_array_equal(row["audio"]["array"], expected["audio"]["array"])
        assert row["audio"]["sampling_rate"] == expected["audio"]["sampling_rate"]


def test_streaming_checks_leakage_too(tmp_path, sample_dir):
    _leaky_copy(sample_dir, tmp_path, "profile_id")
    with pytest.raises(SousaDataError, match="profile_id"):
        load_sousa(tmp_path, "labels_only", streaming=True)


@pytest.mark.parametrize("column", ["profile_id", "augmentation_group_id"])
def test_leakage_between_splits_fails_loudly(tmp_path, sample_dir, column):
    _leaky_copy(sample_dir, tmp_path, column)
    with pytest.raises(SousaDataError, match=f"split leakage.*{column}.*'train' and 'test'"):
        load_sousa(tmp_path, "labels_only")
    assert len(load_sousa(tmp_path, "labels_only", check_leakage=False)["train"]) == SAMPLE_ROWS["train"]


def _leaky_copy(sample_dir, destination, column):
    """A copy of the labels_only config where one test row shares `column` with the training split."""
    shutil.copytree(sample_dir / "labels_only", destination / "labels_only")
    train = pq.read_table(destination / "labels_only" / "train-00000-of-00001.parquet")
    test_path = destination / "labels_only" / "test-00000-of-00001.parquet"
    test = pq.read_table(test_path)
    values = test.column(column).to_pylist()
    values[0] = train.column(column)[0].as_py()
    test = test.set_column(test.schema.get_field_index(column), column, pa.array(values, pa.string()))
    pq.write_table(test, test_path)


# Bad input: each a SousaDataError that names the problem.

def test_a_folder_that_is_not_sousa(tmp_path):
    (tmp_path / "notes.txt").write_text("not a dataset")
    with pytest.raises(SousaDataError, match=r"is not a SOUSA folder.*audio/\{train,validation,test\}-\*\.parquet"):
        load_sousa(tmp_path)


def test_a_folder_with_other_configs_says_which(tmp_path, sample_dir):
    shutil.copytree(sample_dir / "labels_only", tmp_path / "labels_only")
    with pytest.raises(SousaDataError, match="It has the configs labels_only"):
        load_sousa(tmp_path, "audio")


def test_a_parquet_file_missing_a_score_column(tmp_path, sample_dir):
    table = pq.read_table(sample_dir / "labels_only" / "train-00000-of-00001.parquet").drop_columns(["hand_balance"])
    path = tmp_path / "train-00000-of-00001.parquet"
    pq.write_table(table, path)
    with pytest.raises(SousaDataError, match=r"missing column 'hand_balance'.*'labels_only' layout|"
                                             r"'labels_only' layout: missing column 'hand_balance'"):
        load_sousa(str(path), "labels_only")


def test_a_mistyped_column(tmp_path, sample_dir):
    table = pq.read_table(sample_dir / "labels_only" / "train-00000-of-00001.parquet")
    index = table.schema.get_field_index("overall_score")
    table = table.set_column(index, "overall_score", pa.array([str(v) for v in table.column(index).to_pylist()]))
    pq.write_table(table, tmp_path / "train-00000-of-00001.parquet")
    with pytest.raises(SousaDataError, match="'overall_score' is string, expected float"):
        load_sousa(str(tmp_path / "train-00000-of-00001.parquet"), "labels_only")


def test_labels_only_data_read_as_the_audio_config(sample_dir):
    with pytest.raises(SousaDataError, match="missing columns 'midi', 'audio'.*pass config="):
        load_sousa(str(sample_dir / "labels_only" / "train-00000-of-00001.parquet"), "audio")


def test_a_file_that_is_not_parquet(tmp_path):
    path = tmp_path / "train-00000-of-00001.parquet"
    path.write_bytes(b"definitely not parquet")
    with pytest.raises(SousaDataError, match="could not read the Parquet files"):
        load_sousa(str(path), "labels_only")


def test_corrupt_flac_bytes_name_the_sample(tmp_path, sample_dir):
    table = pq.read_table(sample_dir / "audio" / "validation-00000-of-00001.parquet")
    audio = table.column("audio").to_pylist()
    audio[1] = {"bytes": b"fLaC" + b"\x00" * 64, "path": "broken.flac"}
    index = table.schema.get_field_index("audio")
    table = table.set_column(index, table.schema.field(index), pa.array(audio, table.schema.field(index).type))
    path = tmp_path / "validation-00000-of-00001.parquet"
    pq.write_table(table, path)
    validation = load_sousa(str(path), "audio", split="validation")
    validation[0]  # the intact clip still decodes
    sample_id = table.column("sample_id")[1].as_py()
    with pytest.raises(SousaDataError, match=f"could not decode the audio of sample '{sample_id}'.*broken.flac"):
        validation[1]


def test_unknown_config_split_and_source(sample_dir, tmp_path):
    with pytest.raises(SousaDataError, match="unknown SOUSA config 'audios'; expected one of audio, midi_only"):
        load_sousa(sample_dir, "audios")
    with pytest.raises(SousaDataError, match="has no split 'val'; it has train, validation, test"):
        load_sousa(sample_dir, "labels_only", split="val")
    with pytest.raises(SousaDataError, match="does not exist and is not a Hub dataset id"):
        load_sousa(str(tmp_path / "missing" / "folder"))
    with pytest.raises(SousaDataError, match="no Parquet files match"):
        load_sousa(str(tmp_path / "*.parquet"))


def test_hub_ids_go_to_the_hub(monkeypatch):
    # Offline, the Hub path must fail with our message rather than treat the id as a folder.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SousaDataError, match="could not load 'zkeown/sousa-does-not-exist'.*from the Hugging Face Hub"):
        load_sousa("zkeown/sousa-does-not-exist", "labels_only")


@pytest.mark.parametrize("streaming", [False, True])
def test_hub_path_reads_the_hub_layout_through_its_dataset_card(monkeypatch, sample_dir, streaming):
    # The Hub cannot be reached here, so the id is redirected to the sample, which is the Hub repo's
    # exact layout and card: everything after the download (configs, Audio feature, projection of
    # the leakage columns when streaming) runs as it does against zkeown/sousa.
    import datasets

    real_load = datasets.load_dataset
    calls = []

    def from_local_copy(path, *args, **kwargs):
        calls.append((path, args, kwargs))
        return real_load(str(sample_dir) if path == "zkeown/sousa" else path, *args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", from_local_copy)
    splits = load_sousa("zkeown/sousa", "audio", streaming=streaming)
    assert calls[0][0] == "zkeown/sousa" and calls[0][1] == ("audio",)
    assert calls[0][2]["streaming"] is streaming
    row = next(iter(splits["validation"]))
    assert row["audio"]["array"].ndim == 1 and row["audio"]["sampling_rate"] == 44100
    if streaming:
        assert calls[-1][2]["columns"] == ["profile_id", "augmentation_group_id"]
