"""Filters by augmentation preset (both spellings), rudiment family, rudiment, tier, tier confidence."""

from __future__ import annotations

import pytest

from sousa_hf import RUDIMENT_FAMILY, SousaDataError, filter_sousa, load_sousa, normalize_preset


@pytest.fixture(scope="module")
def train(sample_dir):
    return load_sousa(sample_dir, "audio", split="train")


@pytest.mark.parametrize("spelling", ["clean_studio", "cleanstudio", "Clean Studio", "clean-studio"])
def test_preset_spellings(spelling):
    assert normalize_preset(spelling) == "clean_studio"


def test_train_on_mixed_presets_validate_on_clean(sample_dir):
    splits = load_sousa(sample_dir, "labels_only")
    clean = filter_sousa(splits["validation"], presets="cleanstudio")
    expected = [p for p in splits["validation"]["augmentation_preset"] if p == "clean_studio"]
    assert len(clean) == len(expected) > 0
    assert set(clean["augmentation_preset"]) == {"clean_studio"}
    mixed = filter_sousa(splits["train"], presets=["gym", "garage", "marching_field", "practiceroom"])
    assert "clean_studio" not in set(mixed["augmentation_preset"]) and len(mixed) > 0


def test_family_rudiment_and_tier_filters_combine(train):
    rows = filter_sousa(train, families=["flam", "drag"], tiers="professional")
    assert len(rows) > 0
    assert all(RUDIMENT_FAMILY[slug] in ("flam", "drag") for slug in rows["rudiment_slug"])
    assert set(rows["skill_tier"]) == {"professional"}
    expected = sum(1 for slug, tier in zip(train["rudiment_slug"], train["skill_tier"])
                   if RUDIMENT_FAMILY[slug] in ("flam", "drag") and tier == "professional")
    assert len(rows) == expected
    assert rows[0]["audio"]["array"].ndim == 1, "filtering keeps lazy decoding"


def test_tier_confidence_threshold_is_strict(train):
    threshold = sorted(train["tier_confidence"])[10]
    rows = filter_sousa(train, min_tier_confidence=threshold)
    assert len(rows) == sum(c > threshold for c in train["tier_confidence"])


def test_streamed_filter_matches(sample_dir, train):
    streamed = load_sousa(sample_dir, "labels_only", streaming=True)["train"]
    ids = [row["sample_id"] for row in filter_sousa(streamed, families="roll")]
    assert ids == list(filter_sousa(train, families="roll")["sample_id"])


@pytest.mark.parametrize("kwargs, message", [
    ({"presets": "concert_hall"}, "unknown augmentation preset 'concert_hall'; expected one of clean_studio"),
    ({"families": "paradiddle"}, "unknown rudiment family 'paradiddle'; expected one of roll, diddle, flam, drag"),
    ({"tiers": "expert"}, "unknown skill tier 'expert'"),
    ({"rudiments": "flam_accent_2"}, "unknown rudiment 'flam_accent_2'"),
])
def test_unknown_filter_values(train, kwargs, message):
    with pytest.raises(SousaDataError, match=message):
        filter_sousa(train, **kwargs)
