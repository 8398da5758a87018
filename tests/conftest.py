"""Shared fixtures: the real SOUSA sample beside the project, and a small synthetic SOUSA."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# datasets copies every local folder it loads into Arrow files under its cache, and each test's data lives
# in a new temporary folder: under ~/.cache those copies would pile up run after run (tens of GB). Set
# before sousa_hf imports datasets, which reads the variable once.
_DATASETS_CACHE = None
if "HF_DATASETS_CACHE" not in os.environ:
    _DATASETS_CACHE = os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="sousa_hf_tests_datasets_")

from sousa_hf import make_synthetic_sousa  # noqa: E402


def pytest_sessionfinish(session, exitstatus):
    if _DATASETS_CACHE:
        shutil.rmtree(_DATASETS_CACHE, ignore_errors=True)

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
