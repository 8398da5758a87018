"""Finding the clips whose audio cannot be used, once, when the data is prepared.

A corrupt FLAC row would otherwise stop training at the step that first reads it, losing everything
since the last checkpoint. `check_audio` decodes every clip of a split once (the result is cached by
`datasets` under the split's fingerprint, so a second run pays nothing) and either stops with an
error that names the clips and both ways around them, or leaves them out and says which.
"""

from __future__ import annotations

import logging

import numpy as np
from datasets import Dataset, Features, IterableDataset, Value

from .audio import decode_audio
from .errors import SousaDataError

logger = logging.getLogger(__name__)

BAD_AUDIO_POLICIES = ("error", "skip")
_SHOWN = 5  # sample ids named in a message


def audio_problem(cell, sample_id: str | None = None) -> str | None:
    """Why a clip's audio cannot be used (undecodable, empty, NaN samples), or `None` when it can."""
    try:
        array, _ = decode_audio(cell, sample_id)
    except SousaDataError as err:
        return str(err)
    if array.size == 0:
        return "it holds no samples"
    if not np.isfinite(array).all():
        return "it holds NaN or infinite samples"
    return None


def check_audio(dataset: Dataset | IterableDataset, policy: str = "error", split: str = "train",
                num_proc: int | None = None) -> tuple[Dataset | IterableDataset, list[str]]:
    """Decode every clip once; `error` stops at bad clips, `skip` leaves them out.

    Args:
        dataset: a split with an `audio` column (as `load_sousa` gives it, filtered or not).
        policy: `error` or `skip` (a recipe's `bad_audio`).
        split: named in messages.
        num_proc: processes that decode.

    Returns:
        `(dataset without the bad clips, their sample ids)`. A streamed dataset cannot be checked ahead:
        with `skip` bad clips are dropped as they stream past (their ids are not known in advance); with
        `error` the first one stops the run where it is read.
    """
    if policy not in BAD_AUDIO_POLICIES:
        raise SousaDataError(f"bad_audio must be one of {', '.join(BAD_AUDIO_POLICIES)}, not {policy!r}")
    if "audio" not in (dataset.column_names or ()):
        return dataset, []
    if isinstance(dataset, IterableDataset):
        if policy == "skip":
            return dataset.filter(lambda row: audio_problem(row["audio"], row.get("sample_id")) is None), []
        return dataset, []
    columns = [c for c in ("audio", "sample_id") if c in dataset.column_names]
    # The stored cells (FLAC bytes), not the decoding transform's arrays: decoding is what is checked.
    checked = dataset.select_columns(columns).with_format(None).map(
        _problems, batched=True, batch_size=32, num_proc=num_proc, remove_columns=columns,
        features=Features({"audio_problem": Value("string"), "sample_id": Value("string")}),
        desc=f"Checking the audio of {split}")
    problems = checked["audio_problem"]
    bad = [i for i, problem in enumerate(problems) if problem is not None]
    if not bad:
        return dataset, []
    ids = [checked[i]["sample_id"] or f"row {i}" for i in bad]
    shown = ", ".join(ids[:_SHOWN]) + (f" and {len(ids) - _SHOWN} more" if len(ids) > _SHOWN else "")
    if policy == "error":
        exclude = "[" + ",".join(ids[:_SHOWN]) + (",..." if len(ids) > _SHOWN else "") + "]"
        raise SousaDataError(
            f"{len(bad)} clip(s) of split {split!r} cannot be used: {shown} ({problems[bad[0]]}); leave them out "
            f"with --set filters.exclude_sample_ids={exclude}, or every such clip with --set bad_audio=skip")
    logger.warning("bad_audio=skip: leaving out %d clip(s) of split %r whose audio cannot be used: %s", len(bad),
                   split, shown)
    keep = sorted(set(range(len(dataset))) - set(bad))
    return dataset.select(keep), ids


def _problems(batch: dict) -> dict:
    ids = batch.get("sample_id") or [None] * len(batch["audio"])
    return {"audio_problem": [audio_problem(cell, sample_id) for cell, sample_id in zip(batch["audio"], ids)],
            "sample_id": ids}
