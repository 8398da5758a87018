"""Plain-text summaries of a loaded SOUSA dataset: counts per split, tier, rudiment and preset."""

from __future__ import annotations

from collections import Counter

import numpy as np
from datasets import Dataset, DatasetDict

from .rudiments import RUDIMENT_FAMILIES, RUDIMENT_FAMILY, RUDIMENTS
from .tier_confidence import SKILL_TIERS


def count_table(values_by_split: dict[str, list], header: str, order: tuple[str, ...] = ()) -> str:
    """Row counts: one line per value (`order` first, then any others), one column per split."""
    counts = {name: Counter(values) for name, values in values_by_split.items()}
    seen = {v for c in counts.values() for v in c}
    values = list(order) + sorted(seen - set(order), key=str)
    names = list(counts)
    width = max(len(header), 5, *(len(str(v)) for v in values))
    lines = [f"{header:<{width}}  " + "  ".join(f"{n:>10}" for n in names) + f"  {'total':>7}"]
    for value in values + ["total"]:
        row = [sum(c.values()) if value == "total" else c[value] for c in counts.values()]
        lines.append(f"{str(value):<{width}}  " + "  ".join(f"{c:>10}" for c in row) + f"  {sum(row):>7}")
    return "\n".join(lines)


def summarize(splits: DatasetDict) -> str:
    """Counts per split by skill tier, rudiment family, augmentation preset and rudiment."""

    def column(name: str) -> dict[str, list]:
        return {split_name: _column(split, name) for split_name, split in splits.items()}

    rudiments = column("rudiment_slug")
    families = {name: [RUDIMENT_FAMILY.get(s, "unknown") for s in slugs] for name, slugs in rudiments.items()}
    profiles = {name: sorted(set(ids)) for name, ids in column("profile_id").items()}
    tables = [
        count_table(column("skill_tier"), "skill_tier", SKILL_TIERS),
        count_table(families, "rudiment_family", RUDIMENT_FAMILIES),
        count_table(column("augmentation_preset"), "augmentation_preset"),
        count_table(rudiments, "rudiment_slug", RUDIMENTS),
        "player profiles: " + ", ".join(f"{name} {len(ids)}" for name, ids in profiles.items()),
    ]
    return "\n\n".join(tables)


def describe_batch(split: Dataset, size: int) -> str:
    """Decode the first `size` rows of a split and describe each clip and the padded batch."""
    rows = split.select(range(min(size, len(split))))
    lines = [f"{'sample_id':<58} {'tier':<13} {'samples':>8} {'rate':>6} {'sec':>6} {'rms':>7} {'peak':>6}"]
    arrays, rates = [], []
    for row in rows:
        array, rate = np.asarray(row["audio"]["array"], dtype=np.float32), row["audio"]["sampling_rate"]
        arrays.append(array)
        rates.append(int(rate))
        rms = float(np.sqrt(np.mean(array**2))) if array.size else 0.0
        peak = float(np.abs(array).max()) if array.size else 0.0
        lines.append(f"{row['sample_id'][:58]:<58} {row['skill_tier']:<13} {array.size:>8} {rate:>6} "
                     f"{array.size / rate:>6.2f} {rms:>7.4f} {peak:>6.3f}")
    if arrays:
        batch = np.zeros((len(arrays), max(a.size for a in arrays)), dtype=np.float32)
        for i, array in enumerate(arrays):
            batch[i, : array.size] = array
        if len(set(rates)) == 1:
            rate_text = f"{rates[0]} Hz"
        else:
            rate_text = (f"mixed rates {', '.join(f'{r} Hz' for r in sorted(set(rates)))} (padded as decoded; the "
                         "adapters resample each clip to its backbone's rate)")
        lines.append(f"padded batch: shape {batch.shape}, dtype {batch.dtype}, mono, {rate_text}")
    return "\n".join(lines)


def _column(split: Dataset, column: str) -> list:
    return split.select_columns([column]).with_format("arrow")[:].column(0).to_pylist()
