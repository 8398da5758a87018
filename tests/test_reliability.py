"""What a new user or an adversarial tester runs into: no secret on disk, no run record overwritten, every bad
value or file a one-line error before work starts, a corrupt clip that does not cost the run, honest
predictions on degenerate input, truthful card metadata."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from transformers import TrainingArguments

from sousa_hf import build_model, load_sousa
from sousa_hf.cli import main as cli
from sousa_hf.data.loading import data_origin
from sousa_hf.data.summary import describe_batch
from sousa_hf.predict import SousaPredictor
from sousa_hf.recipe import load_recipe
from sousa_hf.train import run
from sousa_hf.trainer import SousaTrainer

TINY = ["backbone=cnn:tiny", "length.max_seconds=2.0", "max_steps=2", "eval_strategy=steps", "eval_steps=2",
        "per_device_train_batch_size=4", "max_train_samples=8", "max_eval_samples=8", "logging_steps=1"]


def train_command(data: Path | str, output_dir: Path, *extra: str) -> list[str]:
    overrides = [f"data={data}", f"output_dir={output_dir}", *TINY, *extra]
    return ["train", *[arg for override in overrides for arg in ("--set", override)]]


def one_line_error(capsys) -> str:
    """The error line of what a command printed on stderr (progress bars may come before it)."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("sousa-hf")]
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    return lines[0]


@pytest.fixture(scope="module")
def finished(synthetic_dir, tmp_path_factory) -> tuple[Path, list[warnings.WarningMessage]]:
    """A finished tiny run, and the warnings it raised."""
    output_dir = tmp_path_factory.mktemp("finished") / "run"
    recipe, training = load_recipe(None, [f"data={synthetic_dir}", f"output_dir={output_dir}", *TINY])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(recipe, training)
    return output_dir, caught


# --------------------------------------------------------------------------- 1. no secret on disk


def test_a_token_given_to_the_trainer_is_never_pickled_with_its_arguments(tmp_path):
    model, _ = build_model("skill_binary", "cnn:tiny")
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", hub_token="hf_secret_in_arguments")
    trainer = SousaTrainer(model=model, args=args)
    assert trainer.hub_token == "hf_secret_in_arguments" and trainer.args.hub_token is None
    torch.save(trainer.args, tmp_path / "training_args.bin")  # what every checkpoint holds
    assert b"hf_secret_in_arguments" not in (tmp_path / "training_args.bin").read_bytes()


def test_hub_strategies_that_push_half_written_folders_are_refused_before_training(synthetic_dir, tmp_path, capsys):
    command = train_command(synthetic_dir, tmp_path / "run", "push_to_hub=true", "hub_strategy=every_save")
    assert cli(command) == 2
    assert "hub_strategy 'every_save' is not supported" in one_line_error(capsys)
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- 2. the record of a finished run


def test_a_finished_run_folder_is_refused_to_other_recipes_and_left_as_it_is(finished, synthetic_dir, capsys):
    output_dir, _ = finished
    before = {path: path.read_bytes() for path in output_dir.rglob("*") if path.is_file()}
    assert cli(train_command(synthetic_dir, output_dir, "max_steps=abc")) == 2
    assert "recipe key max_steps: expected an integer, got 'abc'" in one_line_error(capsys)
    assert cli(train_command(synthetic_dir, output_dir, "learning_rate=0.5")) == 2
    message = one_line_error(capsys)
    assert "holds a finished model trained with another recipe (learning_rate: 5e-05 -> 0.5)" in message
    # The same recipe again: nothing to train, the same results, not a byte changed.
    assert cli(train_command(synthetic_dir, output_dir)) == 0
    assert "balanced_accuracy" in capsys.readouterr().out
    after = {path: path.read_bytes() for path in output_dir.rglob("*") if path.is_file()}
    assert after == before


# --------------------------------------------------------------------------- 3. values checked first


@pytest.mark.parametrize("overrides, message", [
    (["max_steps=abc"], "recipe key max_steps: expected an integer, got 'abc'"),
    (["learning_rate=fast"], "recipe key learning_rate: expected a number, got 'fast'"),
    (["learning_rate=-0.01"], "recipe key learning_rate: must be >= 0, got -0.01"),
    (["classifier_dropout=2"], "recipe key classifier_dropout: must be >= 0 and < 1, got 2"),
    (["max_steps=0", "num_train_epochs=0"], "max_steps (0) and num_train_epochs (0) train nothing"),
    (["eval_strategy=epochs"], "recipe key eval_strategy: expected one of no, steps, epoch (did you mean 'epoch'?)"),
    (["per_device_train_batch_size=0"], "recipe key per_device_train_batch_size: must be > 0, got 0"),
    (["stroke_cluster_ms=-5"], "recipe key stroke_cluster_ms: must be >= 0, got -5"),
    (["bad_audio=maybe"], "recipe key bad_audio: 'maybe' is not one of error, skip"),
    (["filters.exclude_sample_ids=[3]"], "exclude_sample_ids must be sample ids (text)"),
])
def test_bad_values_are_refused_before_any_data_is_read(tmp_path, capsys, overrides, message):
    # The data does not exist: an error about it would mean the values were not checked first.
    assert cli(train_command(tmp_path / "no-such-data", tmp_path / "run", *overrides)) == 2
    assert message in one_line_error(capsys)
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- 4. one-line errors


def test_a_corrupt_checkpoint_is_named_with_the_one_to_resume_from(synthetic_dir, tmp_path, capsys):
    output_dir = tmp_path / "run"
    command = train_command(synthetic_dir, output_dir, "max_steps=4", "eval_steps=2", "save_total_limit=3")
    assert cli(command) == 0
    capsys.readouterr()
    (output_dir / "model.safetensors").unlink()  # as a run that crashed after checkpoint-4 leaves its folder
    weights = output_dir / "checkpoint-4" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert cli(command) == 2
    message = one_line_error(capsys)
    checkpoint = output_dir / "checkpoint-4"
    assert f"cannot resume from {checkpoint}: it is incomplete or corrupt (model.safetensors" in message
    assert f"delete it (rm -r {output_dir / 'checkpoint-4'}) to resume from checkpoint-2" in message
    shutil.rmtree(output_dir / "checkpoint-4")
    assert cli(command) == 0  # resumed from checkpoint-2, as the message said


def test_user_errors_are_one_line(finished, synthetic_dir, tmp_path, capsys):
    output_dir, _ = finished
    (tmp_path / "not-a-model").mkdir()
    (tmp_path / "not-a-model" / "recipe.yaml").write_text("task: skill4\n")
    assert cli(["evaluate", str(tmp_path / "not-a-model"), "--data", str(synthetic_dir)]) == 2
    assert "holds no saved model (config.json and model.safetensors)" in one_line_error(capsys)
    with pytest.raises(SystemExit) as exit_info:
        cli(["evaluate", str(output_dir), "--data", str(synthetic_dir), "--batch-size", "0"])
    assert exit_info.value.code == 2
    assert "argument --batch-size: must be at least 1, got 0" in one_line_error(capsys)
    (tmp_path / "a-file").write_text("")
    assert cli(train_command(synthetic_dir, tmp_path / "a-file")) == 2
    assert "output_dir" in (message := one_line_error(capsys)) and "is a file, not a folder" in message
    assert cli(train_command(synthetic_dir, tmp_path / "a-file" / "run")) == 2
    assert "output_dir" in (message := one_line_error(capsys)) and "cannot be made" in message

    empty = tmp_path / "empty-split"
    shutil.copytree(synthetic_dir, empty)
    validation = empty / "audio" / "validation-00000-of-00001.parquet"
    pq.write_table(pq.read_table(validation).slice(0, 0), validation)
    assert cli(["data", "summary", str(empty)]) == 2
    assert "split 'validation' of" in (message := one_line_error(capsys)) and "is empty" in message


def test_a_push_without_network_is_one_line(finished, tmp_path):
    output_dir, _ = finished
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "0", "HF_TOKEN": "hf_any",
           "HF_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-m", "sousa_hf.cli", "push", str(output_dir), "--repo-id", "me/model"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr[-2000:]
    assert "cannot reach the Hub at http://127.0.0.1:9" in done.stderr and "HF_ENDPOINT" in done.stderr


# --------------------------------------------------------------------------- 5. a bad clip


@pytest.fixture(scope="module")
def corrupt_dir(synthetic_dir, tmp_path_factory) -> tuple[Path, str]:
    """The synthetic SOUSA with the first training clip's FLAC bytes broken."""
    folder = tmp_path_factory.mktemp("corrupt") / "sousa"
    shutil.copytree(synthetic_dir, folder)
    path = folder / "audio" / "train-00000-of-00001.parquet"
    table = pq.read_table(path)
    rows = table.to_pylist()
    rows[0]["audio"] = {"bytes": rows[0]["audio"]["bytes"][:200] + b"\0" * 500, "path": rows[0]["audio"]["path"]}
    pq.write_table(type(table).from_pylist(rows, schema=table.schema), path)
    return folder, rows[0]["sample_id"]


def test_a_corrupt_clip_stops_the_run_before_training_and_names_both_fixes(corrupt_dir, tmp_path, capsys):
    folder, bad_id = corrupt_dir
    assert cli(train_command(folder, tmp_path / "run")) == 2
    message = one_line_error(capsys)
    assert f"1 clip(s) of split 'train' cannot be used: {bad_id}" in message
    assert f"--set filters.exclude_sample_ids=[{bad_id}]" in message and "--set bad_audio=skip" in message
    assert not list((tmp_path / "run").glob("checkpoint-*"))  # no training step was taken


def test_a_corrupt_clip_is_left_out_by_its_id_or_skipped_and_counted(corrupt_dir, tmp_path):
    folder, bad_id = corrupt_dir
    assert cli(train_command(folder, tmp_path / "excluded", f"filters.exclude_sample_ids=[{bad_id}]")) == 0
    assert cli(train_command(folder, tmp_path / "skipped", "bad_audio=skip")) == 0
    results = json.loads((tmp_path / "skipped" / "results.json").read_text())
    assert results["skipped_bad_audio"] == {"train": {"count": 1, "sample_ids": [bad_id]}}


# --------------------------------------------------------------------------- 6. honest predictions


def test_degenerate_clips_get_a_warning_with_their_prediction(finished):
    output_dir, _ = finished
    predictor = SousaPredictor.from_pretrained(str(output_dir))
    rng = np.random.default_rng(0)
    take = (0.3 * rng.standard_normal(3 * 44100)).astype(np.float32)
    results = predictor.predict([(take[:1], 44100), (take[:10], 44100), (np.zeros(3 * 44100, np.float32), 44100),
                                 (take[:4410], 44100), (take, 44100)])
    warnings_given = [result.get("warning") for result in results]
    assert "0.0 ms long (1 sample(s) at 44100 Hz)" in warnings_given[0]
    assert "0.2 ms long (10 sample(s)" in warnings_given[1]
    assert "the clip is silent" in warnings_given[2]
    assert "100.0 ms long" in warnings_given[3] and "far shorter than any SOUSA clip" in warnings_given[3]
    assert warnings_given[4] is None
    assert all(result["label"] in ("novice", "skilled") for result in results)  # still a prediction


def test_the_batch_summary_says_the_real_rates_of_mixed_rate_clips():
    clips = [{"array": np.zeros(16000, np.float32), "sampling_rate": 16000},
             {"array": np.zeros(44100, np.float32), "sampling_rate": 44100}]
    split = datasets.Dataset.from_dict({"sample_id": ["a", "b"], "skill_tier": ["beginner", "advanced"],
                                        "audio": clips})
    summary = describe_batch(split, 2)
    assert "mixed rates 16000 Hz, 44100 Hz" in summary and "padded batch: shape (2, 44100)" in summary


# --------------------------------------------------------------------------- 7. and the rest


def test_the_data_origin_tells_sousa_from_the_suites_synthetic_data(synthetic_dir, sample_dir):
    assert data_origin(synthetic_dir) == "synthetic"
    assert data_origin(sample_dir) == data_origin("zkeown/sousa") == "sousa"
    assert data_origin("someone/other-dataset") == "unknown"


def test_a_cpu_run_does_not_warn_about_pinned_memory(finished):
    _, caught = finished
    assert not [w for w in caught if "pin_memory" in str(w.message)]


def test_duplicate_sample_ids_in_a_split_are_a_warning_naming_them(synthetic_dir, caplog):
    train = load_sousa(synthetic_dir, "labels_only", split="train")
    doubled = datasets.DatasetDict({"train": datasets.concatenate_datasets([train, train.select(range(2))])})
    load_sousa(doubled, "labels_only", check_leakage=False)
    assert "2 sample_id(s) occur more than once" in caplog.text and train[0]["sample_id"] in caplog.text
