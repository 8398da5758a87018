"""Row filters users need: augmentation preset, rudiment family, rudiment, skill tier, tier confidence.

SOUSA's guide trains on mixed presets and validates on `clean_studio`; the preset names appear both
as `clean_studio` (the data) and `cleanstudio` (the docs and sample ids), so both are accepted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from datasets import Dataset, IterableDataset

from .errors import SousaDataError
from .rudiments import RUDIMENT_FAMILIES, RUDIMENT_FAMILY, RUDIMENTS
from .tier_confidence import SKILL_TIERS

AUGMENTATION_PRESETS: tuple[str, ...] = ("clean_studio", "practice_room", "gym", "garage", "marching_field")
_PRESET_BY_KEY = {re.sub(r"[^a-z0-9]", "", name): name for name in AUGMENTATION_PRESETS}


def normalize_preset(name: str) -> str:
    """The data's spelling of a preset name: `cleanstudio`, `Clean Studio` -> `clean_studio`."""
    key = re.sub(r"[^a-z0-9]", "", str(name).lower())
    if key not in _PRESET_BY_KEY:
        raise SousaDataError(f"unknown augmentation preset {name!r}; expected one of {', '.join(AUGMENTATION_PRESETS)}")
    return _PRESET_BY_KEY[key]


def filter_sousa(
    dataset: Dataset | IterableDataset,
    *,
    presets: Iterable[str] | str | None = None,
    families: Iterable[str] | str | None = None,
    rudiments: Iterable[str] | str | None = None,
    tiers: Iterable[str] | str | None = None,
    min_tier_confidence: float | None = None,
    exclude_sample_ids: Iterable[str] | str | None = None,
) -> Dataset | IterableDataset:
    """Keep the rows that match every given criterion (`None` means no restriction).

    Args:
        presets: augmentation presets, either spelling (`clean_studio` or `cleanstudio`).
        families: rudiment families: `roll`, `diddle`, `flam`, `drag`.
        rudiments: rudiment slugs.
        tiers: skill tiers.
        min_tier_confidence: keep rows whose `tier_confidence` is strictly above this value.
        exclude_sample_ids: leave out the rows with these `sample_id`s (e.g. a clip whose audio is corrupt).
    """
    wanted_presets, wanted_rudiments, wanted_tiers, excluded = filter_criteria(
        presets=presets, families=families, rudiments=rudiments, tiers=tiers,
        min_tier_confidence=min_tier_confidence, exclude_sample_ids=exclude_sample_ids)

    columns = []
    if wanted_presets is not None:
        columns.append("augmentation_preset")
    if wanted_rudiments is not None:
        columns.append("rudiment_slug")
    if wanted_tiers is not None:
        columns.append("skill_tier")
    if min_tier_confidence is not None:
        columns.append("tier_confidence")
    if excluded:
        columns.append("sample_id")
    if not columns:
        return dataset

    def keep(*values) -> list[bool]:
        batch = dict(zip(columns, values))
        n = len(values[0])
        mask = [True] * n
        for i in range(n):
            if wanted_presets is not None:
                mask[i] &= normalize_preset(batch["augmentation_preset"][i]) in wanted_presets
            if wanted_rudiments is not None:
                mask[i] &= batch["rudiment_slug"][i] in wanted_rudiments
            if wanted_tiers is not None:
                mask[i] &= batch["skill_tier"][i] in wanted_tiers
            if min_tier_confidence is not None:
                mask[i] &= batch["tier_confidence"][i] > min_tier_confidence
            if excluded:
                mask[i] &= batch["sample_id"][i] not in excluded
        return mask

    if isinstance(dataset, IterableDataset):
        return dataset.filter(keep, input_columns=columns, batched=True)
    return dataset.filter(keep, input_columns=columns, batched=True, desc="Filtering SOUSA")


def filter_criteria(*, presets=None, families=None, rudiments=None, tiers=None, min_tier_confidence=None,
                    exclude_sample_ids=None) -> tuple[set | None, set | None, set | None, set]:
    """`filter_sousa`'s arguments checked and resolved, without reading any data: `(presets, rudiments, tiers,
    excluded sample ids)`, a family becoming its rudiments. An unknown value is an error naming it."""
    wanted_presets = _checked(presets, "augmentation preset", AUGMENTATION_PRESETS, normalize_preset)
    wanted_families = _checked(families, "rudiment family", RUDIMENT_FAMILIES)
    wanted_rudiments = _checked(rudiments, "rudiment", RUDIMENTS)
    wanted_tiers = _checked(tiers, "skill tier", SKILL_TIERS)
    if wanted_families is not None:
        in_families = {slug for slug in RUDIMENTS if RUDIMENT_FAMILY[slug] in wanted_families}
        wanted_rudiments = in_families if wanted_rudiments is None else wanted_rudiments & in_families
    if min_tier_confidence is not None and (isinstance(min_tier_confidence, bool)
                                            or not isinstance(min_tier_confidence, (int, float))):
        raise SousaDataError(f"min_tier_confidence must be a number, got {min_tier_confidence!r}")
    excluded = {exclude_sample_ids} if isinstance(exclude_sample_ids, str) else set(exclude_sample_ids or ())
    if any(not isinstance(sample_id, str) for sample_id in excluded):
        raise SousaDataError(f"exclude_sample_ids must be sample ids (text), got {sorted(map(repr, excluded))}")
    return wanted_presets, wanted_rudiments, wanted_tiers, excluded


def _checked(values, what: str, known: tuple[str, ...], normalize=None) -> set[str] | None:
    if values is None:
        return None
    values = [values] if isinstance(values, str) else list(values)
    result = set()
    for value in values:
        value = normalize(value) if normalize else value
        if value not in known:
            raise SousaDataError(f"unknown {what} {value!r}; expected one of {', '.join(known)}")
        result.add(value)
    return result
