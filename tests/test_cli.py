"""The `sousa-hf data` subcommands, as `make demo` runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sousa_hf.cli import main


def test_synth_then_summary_prints_counts_and_the_first_batch(tmp_path, capsys):
    out = tmp_path / "synthetic"
    assert main(["data", "synth", str(out), "--samples", "24", "--seed", "1", "--num-proc", "1"]) == 0
    assert main(["data", "summary", str(out), "--show-batch", "3"]) == 0
    printed = capsys.readouterr().out
    assert "wrote synthetic SOUSA (24 samples, seed 1)" in printed
    for heading in ("skill_tier", "rudiment_family", "augmentation_preset", "rudiment_slug", "player profiles"):
        assert heading in printed
    total_line = next(line for line in printed.splitlines() if line.startswith("total"))
    assert total_line.split()[-1] == "24"
    assert "padded batch: shape (3, " in printed and "float32, mono, 44100 Hz" in printed


def test_errors_are_one_line_with_exit_code_2(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["data", "summary", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sousa-hf: error: ") and "is not a SOUSA folder" in err
    assert "Traceback" not in err


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "sousa-hf"
    result = subprocess.run([str(script), "data", "synth", "--help"], capture_output=True, text=True, check=True)
    assert "--samples" in result.stdout and "--seed" in result.stdout
