"""The GPU benchmark runs as it would on a GPU, on the CPU (its test-sized models), and writes its figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_training_benchmark_runs_on_a_cpu(tmp_path):
    out = tmp_path / "gpu_train.json"
    finished = subprocess.run([sys.executable, "benchmarks/gpu_train.py", "--cpu", "--steps", "3", "--size", "tiny",
                               "--samples", "20", "--batch-size", "2", "--json", str(out)],
                              cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["device"].startswith("CPU") and not figures["bf16"]
    pairs = {(row["model"], row["pipeline"]) for row in figures["rows"]}
    assert pairs == {(m, p) for m in ("wav2vec2-base-sized (tiny)", "ast-sized (tiny)")
                     for p in ("suite cached", "example on the fly")}
    for row in figures["rows"]:
        assert row["steps_timed"] == 2 and row["samples_per_s"] > 0 and 0 <= row["data_wait_share"] < 1
    assert "| model | pipeline | samples/s |" in finished.stdout
