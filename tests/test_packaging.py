"""The package as pip installs it: every subpackage listed, the model-card templates inside the wheel."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from sousa_hf import TASKS

ROOT = Path(__file__).resolve().parents[1]


def test_pyproject_lists_every_subpackage():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {".".join(path.parent.relative_to(ROOT).parts) for path in (ROOT / "sousa_hf").rglob("__init__.py")}
    assert set(setuptools["packages"]) == found | {"sousa_hf.model_cards"}
    assert setuptools["package-dir"] == {"sousa_hf.model_cards": "model_cards"}


def test_the_wheel_holds_the_code_and_a_card_template_per_task(tmp_path):
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = tmp_path.glob("sousa_hf-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"sousa_hf/model_cards/{task}.md" for task in TASKS} | {"sousa_hf/model_cards/base.md"} <= names
    assert {"sousa_hf/pipeline_sousa.py", "sousa_hf/modeling_sousa.py", "sousa_hf/data/synthetic/render.py"} <= names
