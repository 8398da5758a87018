"""Shared fixtures: the real SOUSA sample beside the project, and a small synthetic SOUSA."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sousa_hf import make_synthetic_sousa

SAMPLE_DIR = Path(os.environ.get("SOUSA_SAMPLE_DIR", Path(__file__).resolve().parents[1] / ".." / "shared" /
                                 "sousa-sample")).resolve()


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The real SOUSA sample in the Hub layout (../shared/sousa-sample)."""
    if not (SAMPLE_DIR / "audio").is_dir():
        pytest.skip(f"the real SOUSA sample is not at {SAMPLE_DIR} (../shared is absent); set SOUSA_SAMPLE_DIR")
    return SAMPLE_DIR


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory) -> Path:
    """A synthetic SOUSA of 48 clips, made once per test session."""
    path = tmp_path_factory.mktemp("synthetic") / "sousa"
    make_synthetic_sousa(path, num_samples=48, seed=7)
    return path
