"""`load_sousa`: every SOUSA layout in, checked and decodable `datasets` objects out."""

from __future__ import annotations

import glob
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datasets import Audio, Dataset, DatasetDict, Features, IterableDataset, IterableDatasetDict, Value

from .audio import decode_audio
from .derived import add_columns
from .errors import SousaDataError
from .schema import CONFIGS, SPLITS, SYNTHETIC_GENERATOR, check_features
from .tier_confidence import tier_confidence

SousaSource = (str | os.PathLike | Sequence[str] | Mapping[str, Any] | Dataset | DatasetDict | IterableDataset
               | IterableDatasetDict)
AnyDataset = Dataset | IterableDataset

logger = logging.getLogger(__name__)

HUB_ID = "zkeown/sousa"
LEAKAGE_COLUMNS = ("profile_id", "augmentation_group_id")
_HUB_ID_PATTERN = re.compile(r"^[\w.-]+/[\w.-]+$")


def load_sousa(
    source: SousaSource = HUB_ID,
    config: str = "audio",
    split: str | None = None,
    streaming: bool = False,
    *,
    decode: bool = True,
    check_leakage: bool = True,
    cache_dir: str | None = None,
    strokes: bool = False,
) -> DatasetDict | Dataset | IterableDatasetDict | IterableDataset:
    """Load SOUSA from the Hub, a local folder in the Hub layout, Parquet files or a loaded dataset.

    Every split is checked against the config's schema, gets a derived `tier_confidence` column when
    the data has none, and the splits are checked for leaked player profiles and augmentation
    groups. With `decode=True`, reading a row gives `row["audio"]` as
    `{"array": mono float32, "sampling_rate": int, "path": str}`, decoded lazily from the stored
    FLAC bytes with soundfile (no FFmpeg needed).

    Args:
        source: a Hub dataset id (default `zkeown/sousa`); a folder laid out like the Hub repo
            (`<folder>/<config>/<split>-*.parquet`, e.g. one written by `sousa-hf data synth`);
            a Parquet file, glob or list of them (split taken from a `train-`/`validation-`/`test-`
            file-name prefix, else `train`); a `{split: files}` mapping; or an already loaded
            `Dataset`/`DatasetDict` (decoded `Audio` columns included).
        config: `audio`, `midi_only` or `labels_only`.
        split: one split to return (`train`, `validation`, `test`); `None` returns all of them.
        streaming: return `IterableDataset(Dict)` read lazily (the full audio config is ~96 GB).
        decode: decode audio on access; `False` keeps the stored `{"bytes", "path"}` cells.
        check_leakage: fail when a `profile_id` or `augmentation_group_id` is in two splits.
        cache_dir: passed to `datasets.load_dataset`.
        strokes: add each clip's per-stroke labels from `auxiliary/strokes.parquet` as a `strokes` column
            (see `sousa_hf.data.strokes`); a source without that file is an error.

    Returns:
        A `DatasetDict` (`IterableDatasetDict` when streaming), or one split's dataset when `split`
        is given.
    """
    if config not in CONFIGS:
        raise SousaDataError(f"unknown SOUSA config {config!r}; expected one of {', '.join(CONFIGS)}")
    where = _describe(source)
    splits, reload_ids = _load_splits(source, config, streaming, cache_dir)
    if split is not None and split not in splits:
        raise SousaDataError(f"{where} has no split {split!r}; it has {', '.join(splits)}")

    prepared = {}
    for name, dataset in splits.items():
        dataset = _stored_audio(dataset)
        check_features(_features(dataset), config, f"{where} (split {name!r})")
        if isinstance(dataset, Dataset):
            _warn_duplicate_ids(dataset, name, where)
        prepared[name] = _with_tier_confidence(dataset)

    if check_leakage:
        ids = reload_ids() if streaming else {name: _column_sets(ds) for name, ds in prepared.items()}
        check_split_leakage(ids, where)

    if strokes:
        from .strokes import AUDIO_OFFSET_MS, stroke_table, strokes_by_sample, with_strokes

        offset = AUDIO_OFFSET_MS.get(data_origin(source), AUDIO_OFFSET_MS["sousa"])
        by_sample = strokes_by_sample(stroke_table(source, cache_dir=cache_dir), offset)
        prepared = {name: with_strokes(ds, by_sample) for name, ds in prepared.items()}
    if decode:
        prepared = {name: with_decoded_audio(ds) for name, ds in prepared.items()}
    if split is not None:
        return prepared[split]
    return IterableDatasetDict(prepared) if streaming else DatasetDict(prepared)


def data_origin(source: SousaSource) -> str:
    """What a source holds: `sousa` (the published dataset, or a local copy in its layout), `synthetic` (a folder
    written by `make_synthetic_sousa`) or `unknown` (another Hub dataset, or data given as objects)."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if os.path.isdir(path):
            try:
                with open(os.path.join(path, "splits.json")) as file:
                    generator = json.load(file).get("stats", {}).get("generator")
            except (OSError, ValueError):
                generator = None
            return "synthetic" if generator == SYNTHETIC_GENERATOR else "sousa"
        return "sousa" if path == HUB_ID else "unknown"
    return "unknown"


def with_decoded_audio(dataset: AnyDataset) -> AnyDataset:
    """Decode the `audio` column to mono float32 on access (lazily: nothing is rewritten on disk)."""
    if "audio" not in (dataset.column_names or ()):
        return dataset
    if isinstance(dataset, IterableDataset):
        return dataset.map(_decode_batch, batched=True, batch_size=16)
    return dataset.with_transform(_decode_batch)


def check_split_leakage(ids: Mapping[str, Mapping[str, set]], where: str = "SOUSA") -> None:
    """Raise when any `profile_id` or `augmentation_group_id` appears in more than one split.

    Args:
        ids: `{split: {column: set of values}}`.
    """
    names = list(ids)
    for column in LEAKAGE_COLUMNS:
        for i, first in enumerate(names):
            for second in names[i + 1 :]:
                shared = ids[first].get(column, set()) & ids[second].get(column, set())
                if shared:
                    examples = ", ".join(sorted(map(str, shared))[:3])
                    raise SousaDataError(
                        f"split leakage in {where}: {len(shared)} {column} value(s) are in both {first!r} "
                        f"and {second!r} (e.g. {examples}). SOUSA splits by player profile; keep the "
                        "dataset's own splits instead of re-splitting by sample."
                    )


def _load_splits(source, config, streaming, cache_dir):
    """Returns `{split: dataset}` and a function that reads the leakage columns of every split."""
    if isinstance(source, (DatasetDict, IterableDatasetDict)):
        splits = dict(source)
        return splits, lambda: {name: _column_sets(ds) for name, ds in splits.items()}
    if isinstance(source, (Dataset, IterableDataset)):
        name = str(source.split) if source.split is not None else "train"
        return {name: source}, lambda: {name: _column_sets(source)}

    data_files = _local_data_files(source, config)
    if data_files is not None:
        _check_not_empty(data_files, _describe(source))

        def read(columns=None):
            try:
                return datasets.load_dataset("parquet", data_files=data_files, streaming=streaming,
                                             columns=columns, cache_dir=cache_dir)
            except Exception as err:  # pyarrow and datasets raise many types for unreadable files
                raise SousaDataError(f"could not read the Parquet files of {_describe(source)}: {err}") from err
    else:
        def read(columns=None):
            kwargs = {"columns": list(columns)} if columns else {}
            try:
                return datasets.load_dataset(str(source), config, streaming=streaming, cache_dir=cache_dir, **kwargs)
            except Exception as err:
                raise SousaDataError(
                    f"could not load {source!r} (config {config!r}) from the Hugging Face Hub: {err}. "
                    "Check the id and your network, or pass a local folder or Parquet files."
                ) from err

    splits = dict(read())

    def reload_ids():
        projected = read(columns=list(LEAKAGE_COLUMNS))
        return {name: _column_sets(ds) for name, ds in projected.items()}

    return splits, reload_ids


def _local_data_files(source, config) -> dict[str, list[str]] | None:
    """`{split: files}` for local sources; `None` for a Hub dataset id."""
    if isinstance(source, Mapping):
        return {str(k): [str(f) for f in _as_list(v)] for k, v in source.items()}
    if not isinstance(source, (str, os.PathLike)):
        return _by_split_prefix([str(f) for f in source])

    path = os.fspath(source)
    if os.path.isdir(path):
        for root in (os.path.join(path, config), path):
            files = {s: sorted(glob.glob(os.path.join(root, f"{s}-*.parquet"))) for s in SPLITS}
            files = {s: f for s, f in files.items() if f}
            if files:
                return files
        others = [c for c in CONFIGS if glob.glob(os.path.join(path, c, "*.parquet"))]
        found = f" It has the configs {', '.join(others)}: pass config= one of them." if others else ""
        raise SousaDataError(
            f"{path!r} is not a SOUSA folder for config {config!r}: expected Parquet files at "
            f"{os.path.join(path, config, '{train,validation,test}-*.parquet')} (the Hub layout of {HUB_ID}).{found}"
        )
    if path.endswith(".parquet") or glob.has_magic(path):
        files = sorted(glob.glob(path))
        if not files:
            raise SousaDataError(f"no Parquet files match {path!r}")
        return _by_split_prefix(files)
    if os.path.exists(path):
        raise SousaDataError(f"{path!r} is neither a SOUSA folder nor a .parquet file")
    if _HUB_ID_PATTERN.match(path):
        return None
    raise SousaDataError(
        f"source {path!r} does not exist and is not a Hub dataset id like {HUB_ID!r}; pass a Hub id, "
        "a folder in the Hub layout or Parquet files"
    )


def _check_not_empty(data_files: dict[str, list[str]], where: str) -> None:
    """A split whose Parquet files hold no rows is named (datasets would fail with 'could not read' on it)."""
    for split, files in data_files.items():
        try:
            rows = sum(pq.ParquetFile(file).metadata.num_rows for file in files)
        except (OSError, pa.ArrowException) as err:
            raise SousaDataError(f"could not read the Parquet files of split {split!r} of {where}: {err}") from err
        if rows == 0:
            names = ", ".join(os.path.basename(file) for file in files)
            raise SousaDataError(f"split {split!r} of {where} is empty: {names} hold(s) no rows; write its rows or "
                                 f"remove the file(s) so that the other splits load")


def _warn_duplicate_ids(dataset: Dataset, split: str, where: str) -> None:
    if "sample_id" not in dataset.column_names:
        return
    counts = pc.value_counts(dataset.select_columns(["sample_id"]).with_format("arrow")[:].column(0))
    repeated = [item["values"].as_py() for item in counts if item["counts"].as_py() > 1]
    if repeated:
        logger.warning("%s, split %r: %d sample_id(s) occur more than once (e.g. %s); SOUSA's ids are unique in a "
                       "split, so rows may be duplicated or sets merged without profile_id in the key", where, split,
                       len(repeated), ", ".join(map(str, repeated[:3])))


def _by_split_prefix(files: list[str]) -> dict[str, list[str]]:
    by_split: dict[str, list[str]] = {}
    for file in files:
        if not os.path.isfile(file):
            raise SousaDataError(f"Parquet file {file!r} does not exist")
        base = os.path.basename(file)
        split = next((s for s in SPLITS if base.startswith(s)), "train")
        by_split.setdefault(split, []).append(file)
    return by_split


def _as_list(value) -> list:
    return [value] if isinstance(value, (str, os.PathLike)) else list(value)


def _describe(source) -> str:
    if isinstance(source, (Dataset, DatasetDict, IterableDataset, IterableDatasetDict)):
        return f"the given {type(source).__name__}"
    if isinstance(source, (str, os.PathLike)):
        return repr(os.fspath(source))
    return f"Parquet files {source!r}"


def _features(dataset: AnyDataset) -> datasets.Features | None:
    if dataset.features is None and isinstance(dataset, IterableDataset):
        dataset = dataset._resolve_features()
    return dataset.features


def _stored_audio(dataset: AnyDataset) -> AnyDataset:
    """Keep audio as stored bytes so that datasets never hands it to torchcodec/FFmpeg."""
    features = dataset.features
    if features is not None and isinstance(features.get("audio"), Audio) and features["audio"].decode:
        return dataset.cast_column("audio", Audio(decode=False))
    return dataset


def _with_tier_confidence(dataset: AnyDataset) -> AnyDataset:
    if "tier_confidence" in (dataset.column_names or ()):
        return dataset
    return add_columns(dataset, _tier_confidence_batch, ["overall_score", "skill_tier"],
                       Features({"tier_confidence": Value("float64")}))


def _tier_confidence_batch(batch: dict) -> dict:
    return {"tier_confidence": tier_confidence(batch["overall_score"], batch["skill_tier"]).tolist()}


def _column_sets(dataset: AnyDataset) -> dict[str, set]:
    if isinstance(dataset, IterableDataset):
        columns = [c for c in LEAKAGE_COLUMNS if c in (dataset.column_names or LEAKAGE_COLUMNS)]
        sets: dict[str, set] = {c: set() for c in columns}
        for row in dataset.select_columns(columns):
            for column in columns:
                sets[column].add(row[column])
        return sets
    table = dataset.select_columns(list(LEAKAGE_COLUMNS)).with_format("arrow")[:]
    return {c: set(table.column(c).unique().to_pylist()) for c in LEAKAGE_COLUMNS}


def _decode_batch(batch: dict) -> dict:
    if "audio" not in batch:
        return batch
    sample_ids = batch.get("sample_id") or [None] * len(batch["audio"])
    decoded = []
    for cell, sample_id in zip(batch["audio"], sample_ids):
        array, sampling_rate = decode_audio(cell, sample_id)
        path = cell.get("path") if isinstance(cell, Mapping) else None
        decoded.append({"array": array, "sampling_rate": sampling_rate, "path": path})
    batch["audio"] = decoded
    return batch
