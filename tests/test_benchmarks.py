"""The GPU benchmark runs as it would on a GPU, on the CPU (its test-sized models), and writes its figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .benchmark_scripts import load_benchmark

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


def test_the_results_table_prints_the_readme_rows_from_its_record(tmp_path):
    command = ("sousa-hf train recipes/whisper_base_probe.yaml --set task=overall_score "
               "--set data=../shared/sousa-tune --set backbone=/weights/base "
               "--set output_dir=runs/table/whisper-base-probe-overall_score")
    record = {
        "whisper-base probe | overall_score": {"model": "whisper-base probe", "task": "overall_score", "wall_s": 30,
                                               "command": command, "metrics": {"r2": 0.4671, "mae": 9.8164}},
        "CNN from scratch | skill4": {"model": "CNN from scratch", "task": "skill4", "wall_s": 390,
                                      "command": "sousa-hf train recipes/quickstart.yaml --set task=skill4",
                                      "metrics": {"balanced_accuracy": 0.25, "quadratic_kappa": 0.0}},
    }
    (tmp_path / "table.json").write_text(json.dumps(record))
    printed = subprocess.run([sys.executable, "benchmarks/results_table.py", "--print-only", "--out", str(tmp_path),
                              "--whisper-base", "/weights/base"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert printed.returncode == 0, printed.stderr
    lines = [line for line in printed.stdout.splitlines() if line.startswith("| ")]
    assert lines[0] == "| task | model | test metrics | wall time | command |"
    assert lines[2] == ("| skill4 | CNN from scratch | balanced accuracy 0.250, kappa 0.000 | 6.5 min | "
                        "`sousa-hf train recipes/quickstart.yaml --set task=skill4` |")
    assert lines[3] == ("| overall_score | whisper-base probe | R2 0.467, MAE 9.82 | 0.5 min | `"
                        + command.replace("/weights/base", "WHISPER_BASE_DIR") + "` |")
    assert json.loads((tmp_path / "table.json").read_text()) == record  # printing trains and writes nothing


def test_a_row_is_measured_again_when_its_recipe_its_stroke_model_or_its_statistics_changed(tmp_path):
    table = load_benchmark("results_table")
    (tmp_path / "recipes").mkdir()
    for name in ("strokes_cnn.yaml", "stroke_statistics.yaml"):
        (tmp_path / "recipes" / name).write_text("task: strokes\n")
    (tmp_path / "sousa_hf").mkdir()
    (tmp_path / "sousa_hf" / "stroke_statistics.py").write_text("STATISTICS = ()\n")
    (tmp_path / "sousa_hf" / "data").mkdir()
    (tmp_path / "sousa_hf" / "data" / "rhythm_patterns.py").write_text("")
    for name in ("boosted_trees.py", "tree_fitting.py"):
        (tmp_path / "sousa_hf" / name).write_text("")
    plan = {(row["model"], row["task"]): row for row in table.rows(table.argparse.Namespace(
        out="runs/table", untimed_tasks="", unpatterned_tasks="", evidence_tasks="", matches_tasks="", stroke_tasks="",
        whisper_tiny=None, whisper_base=None, augmented_tasks="overall_score", augmented_evidence_tasks=""))}
    strokes, statistics = plan[table.STROKE_MODEL, "strokes"], plan["stroke statistics + MLP", "overall_score"]
    trees = plan["stroke statistics + boosted trees", "overall_score"]
    mlp_digest, trees_digest = (table.measured_with(row, tmp_path, {}) for row in (statistics, trees))
    (tmp_path / "sousa_hf" / "tree_fitting.py").write_text("# fitted otherwise\n")
    assert table.measured_with(trees, tmp_path, {}) != trees_digest  # the trees' code changed
    assert table.measured_with(statistics, tmp_path, {}) == mlp_digest  # not the MLP's
    done = {f"{table.STROKE_MODEL} | strokes": {"metrics": {"onset_f1_25ms": 0.86}}}
    before = [table.measured_with(row, tmp_path, done) for row in (strokes, statistics)]
    assert before == [table.measured_with(row, tmp_path, done) for row in (strokes, statistics)]
    done[f"{table.STROKE_MODEL} | strokes"]["metrics"]["onset_f1_25ms"] = 0.87  # the stroke model trained again
    assert table.measured_with(strokes, tmp_path, done) == before[0]
    assert table.measured_with(statistics, tmp_path, done) != before[1]
    augmented = plan["augmented strokes + stroke statistics + MLP", "overall_score"]
    assert "strokes_from=runs/table/cnn-5-ms-frames-augmented-strokes" in augmented["set"]
    before_augmented = table.measured_with(augmented, tmp_path, done)
    done[f"{table.AUGMENTED_STROKE_MODEL} | strokes"] = {"metrics": {"onset_f1_25ms": 0.88}}
    assert table.measured_with(augmented, tmp_path, done) != before_augmented  # its own stroke row, not the plain one
    (tmp_path / "recipes" / "strokes_cnn.yaml").write_text("task: strokes\nnum_train_epochs: 16\n")
    assert table.measured_with(strokes, tmp_path, done) != before[0]
    after_training = table.measured_with(statistics, tmp_path, done)
    (tmp_path / "sousa_hf" / "stroke_statistics.py").write_text("STATISTICS = ('strokes',)\n")  # new statistics
    assert table.measured_with(statistics, tmp_path, done) != after_training
    new_statistics = table.measured_with(statistics, tmp_path, done)
    (tmp_path / "sousa_hf" / "data" / "rhythm_patterns.py").write_text("# other rhythms\n")
    assert table.measured_with(statistics, tmp_path, done) != new_statistics


def test_a_row_measured_again_trains_a_new_model_rather_than_reading_the_old_one(tmp_path, monkeypatch):
    table = load_benchmark("results_table")
    key = f"{table.STROKE_MODEL} | strokes"
    (tmp_path / "table.json").write_text(json.dumps({key: {"model": table.STROKE_MODEL, "task": "strokes",
                                                           "measured_with": "an older recipe", "wall_s": 60,
                                                           "command": "", "metrics": {"onset_f1_25ms": 0.5}}}))
    folder = tmp_path / "cnn-5-ms-frames-strokes"
    folder.mkdir()
    (folder / "model.safetensors").write_text("the model the old numbers came from")
    seen = []

    def train(argv, cwd):  # stands in for `sousa-hf train`, which keeps a finished model it finds
        seen.append(sorted(p.name for p in folder.iterdir()) if folder.exists() else [])
        folder.mkdir(exist_ok=True)
        (folder / "results.json").write_text(json.dumps({"metrics": {"onset_f1_25ms": 0.9}, "num_examples": 3}))
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(table.subprocess, "run", train)
    monkeypatch.setattr(sys, "argv", ["results_table.py", "--only", table.STROKE_MODEL, "--out", str(tmp_path),
                                      "--augmented-tasks", ""])
    table.main()
    assert seen == [[]]  # the old model was gone before training began
    entry = json.loads((tmp_path / "table.json").read_text())[key]
    assert entry["metrics"] == {"onset_f1_25ms": 0.9} and entry["measured_with"] != "an older recipe"
