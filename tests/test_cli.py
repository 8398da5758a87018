"""The `sousa-hf data` subcommands, as `make demo` runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.parametrize("args, message", [
    (["data", "summary", "{tmp}/empty"], "is not a SOUSA folder"),
    (["predict", "{tmp}/no-model", "take.wav"], "'{tmp}/no-model' is neither a folder holding a saved model"),
    (["evaluate", "./no-model", "--data", "{tmp}/empty"], "'./no-model' is neither a folder holding a saved model"),
    (["train", "--set", "length.max_secs=3"], "recipe key length: unknown entry 'max_secs'"),
    (["train", "--set", "backbone=foo:tiny"], "recipe key backbone: unknown backbone 'foo:tiny'"),
])
def test_errors_are_one_line_with_exit_code_2(tmp_path, capsys, args, message):
    (tmp_path / "empty").mkdir()
    assert main([arg.replace("{tmp}", str(tmp_path)) for arg in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sousa-hf: error: ") and message.replace("{tmp}", str(tmp_path)) in err
    assert len(err.strip().splitlines()) == 1


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "sousa-hf"
    result = subprocess.run([str(script), "data", "synth", "--help"], capture_output=True, text=True, check=True)
    assert "--samples" in result.stdout and "--seed" in result.stdout
