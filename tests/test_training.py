"""Training end to end on synthetic SOUSA: every task, resuming after a crash, early stopping, the best
checkpoint kept as the model, the loss under gradient accumulation, class weights, `sousa-hf evaluate` on a
saved run, and the quickstart recipe on two processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel, TrainerCallback, TrainingArguments

from sousa_hf import build_model, get_adapter, load_sousa, prepare_task
from sousa_hf.adapters.collator import SousaCollator
from sousa_hf.adapters.preprocessing import prepare_inputs
from sousa_hf.cli import main as cli_main
from sousa_hf.recipe import load_recipe
from sousa_hf.train import run
from sousa_hf.trainer import SousaTrainer

# The smallest model, a few steps: each run takes seconds.
TINY = ["backbone=cnn:tiny", "length.max_seconds=2.0", "max_steps=4", "eval_strategy=steps", "eval_steps=2",
        "per_device_train_batch_size=4", "per_device_eval_batch_size=8", "logging_steps=1", "max_eval_samples=8"]


def _run(synthetic_dir, output_dir, *overrides, callbacks=None):
    recipe, training = load_recipe(None, [f"data={synthetic_dir}", f"output_dir={output_dir}", *TINY, *overrides])
    return run(recipe, training, callbacks=callbacks)


@pytest.mark.parametrize("task", ["skill4", "skill_binary", "overall_score", "multitask", "rudiment40"])
def test_each_task_trains_and_writes_its_report(synthetic_dir, tmp_path, task):
    results = _run(synthetic_dir, tmp_path, f"task={task}")
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved == results and saved["task"] == task and saved["split"] == "test"
    main = "balanced_accuracy" if task in ("skill4", "skill_binary", "rudiment40") else "mae"
    assert np.isfinite(saved["metrics"][main]) and not any(k.startswith(("eval_", "test_")) for k in saved["metrics"])
    metrics = {p.name for p in (tmp_path / "metrics").iterdir()}
    slices = {"per_skill_tier.json", "per_augmentation_preset.json", "per_tempo_band.json", "per_rudiment.json",
              "per_profile.json"}
    assert slices <= metrics
    per_profile = json.loads((tmp_path / "metrics" / "per_profile.json").read_text())
    assert sum(value["count"] for value in per_profile.values()) == saved["num_examples"]
    if main == "balanced_accuracy":
        assert {"confusion_matrix.json", "confusion_matrix.png", "per_class.json"} <= metrics
    if task == "skill4":
        assert "quadratic_kappa" in saved["metrics"]
    if task == "rudiment40":
        assert "family_confusion_matrix.png" in metrics and "within_family_error_rate" in saved["metrics"]
    if task == "multitask":
        assert "mae_flam_quality" in saved["metrics"]
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "recipe.yaml", "modeling_sousa.py"):
        assert (tmp_path / name).is_file(), name
    state = json.loads(sorted(tmp_path.glob("checkpoint-*"))[-1].joinpath("trainer_state.json").read_text())
    assert state["global_step"] == 4 and state["best_metric"] is not None


class _CrashAt(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise RuntimeError(f"crash at step {self.step}")


def test_a_crashed_run_resumes_from_its_last_checkpoint(synthetic_dir, tmp_path):
    overrides = ["max_steps=6", "eval_steps=2"]
    with pytest.raises(RuntimeError, match="crash at step 5"):
        _run(synthetic_dir, tmp_path, *overrides, callbacks=[_CrashAt(5)])
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    resumed = []

    class _Watch(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            resumed.append(state.global_step)

        def on_step_begin(self, args, state, control, **kwargs):
            resumed.append(state.global_step)

    _run(synthetic_dir, tmp_path, *overrides, callbacks=[_Watch()])
    assert resumed[1] == 4  # the first step taken after the crash continues from checkpoint-4
    state = json.loads((tmp_path / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == 6 and (tmp_path / "results.json").is_file()


@pytest.mark.parametrize("patience", [1, 2])
def test_early_stopping_ends_a_run_whose_metric_stops_improving(synthetic_dir, tmp_path, patience):
    # A learning rate of 0 leaves the model, and so the validation metric, as it was: no evaluation after
    # the first improves on it, and the run stops after 1 + patience evaluations, long before max_steps.
    _run(synthetic_dir, tmp_path, "max_steps=20", "learning_rate=0", f"early_stopping_patience={patience}")
    stop = 2 * (patience + 1)
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == sorted(["checkpoint-2", f"checkpoint-{stop}"])
    state = json.loads((tmp_path / f"checkpoint-{stop}" / "trainer_state.json").read_text())
    assert state["global_step"] == stop and state["max_steps"] == 20
    assert [entry["step"] for entry in state["log_history"] if "eval_loss" in entry] == list(range(2, stop + 1, 2))
    assert (tmp_path / "results.json").is_file()


class _DivergeAfter(TrainerCallback):
    """Moves the score head's predictions far off their 0-1 scale after `step`: a run that diverges."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step == self.step:
            with torch.no_grad():
                model.regressor.bias.add_(10.0)


def test_the_best_checkpoint_is_the_model_saved_and_reported(synthetic_dir, tmp_path):
    results = _run(synthetic_dir, tmp_path / "run", "task=overall_score", "max_eval_samples=null",
                   callbacks=[_DivergeAfter(3)])
    run_dir = tmp_path / "run"
    state = json.loads((run_dir / "checkpoint-4" / "trainer_state.json").read_text())
    mae = {entry["step"]: entry["eval_mae"] for entry in state["log_history"] if "eval_mae" in entry}
    assert mae[4] > mae[2] + 100  # the run did get worse after its first checkpoint
    assert Path(state["best_model_checkpoint"]) == run_dir / "checkpoint-2" and state["best_metric"] == mae[2]
    saved, best, last = (load_file(folder / "model.safetensors") for folder in
                         (run_dir, run_dir / "checkpoint-2", run_dir / "checkpoint-4"))
    assert saved.keys() == best.keys()
    for name, value in saved.items():
        assert torch.equal(value, best[name]), name
    assert not torch.equal(saved["regressor.bias"], last["regressor.bias"])
    # The test report was made with the best model too, not with the weights of the last step.
    assert cli_main(["evaluate", str(run_dir), "--data", str(synthetic_dir), "--split", "test",
                     "--output-dir", str(tmp_path / "eval")]) == 0
    evaluated = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert results["metrics"]["mae"] < 100 and evaluated["metrics"] == pytest.approx(results["metrics"])


@pytest.fixture(scope="module")
def train_rows(synthetic_dir):
    return load_sousa(synthetic_dir, "audio", split="train").shuffle(seed=0).select(range(8))


def _one_sgd_step(task, rows, output_dir, batch_size, accumulation, class_weights=None):
    torch.manual_seed(0)
    model, adapter = build_model(task, "cnn:tiny", classifier_dropout=0.0, backbone_config={"dropout": 0.0})
    dataset = prepare_inputs(prepare_task(rows, task, apply_default_filter=False), adapter)
    args = TrainingArguments(output_dir=str(output_dir), max_steps=1, per_device_train_batch_size=batch_size,
                             gradient_accumulation_steps=accumulation, optim="sgd", learning_rate=0.5,
                             lr_scheduler_type="constant", report_to="none", remove_unused_columns=False,
                             save_strategy="no", seed=0)
    trainer = SousaTrainer(model=model, args=args, train_dataset=dataset, data_collator=SousaCollator(adapter),
                           class_weights=class_weights)
    trainer.train()
    return {name: p.detach().clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("task, weights", [("skill_binary", [0.25, 3.0]), ("overall_score", None),
                                           ("multitask", None)])
def test_gradient_accumulation_gives_the_same_step_as_one_batch(train_rows, tmp_path, task, weights):
    whole = _one_sgd_step(task, train_rows, tmp_path / "a", batch_size=8, accumulation=1, class_weights=weights)
    split = _one_sgd_step(task, train_rows, tmp_path / "b", batch_size=2, accumulation=4, class_weights=weights)
    torch.manual_seed(0)
    initial = dict(build_model(task, "cnn:tiny")[0].named_parameters())
    for name, value in whole.items():
        # Compared as steps: float32 kernels sum a batch of 8 and four of 2 in other orders, which moves a
        # weight by ~1e-6; a loss scaled wrongly for accumulation would change the step by 2x or 4x.
        step, split_step = value - initial[name], split[name] - initial[name]
        assert (split_step - step).abs().max() <= 1e-3 * step.abs().max() + 1e-8, name
    assert max((whole[name] - initial[name]).abs().max().item() for name in whole) > 1e-3  # the step moved


def test_class_weights_scale_each_rows_loss(train_rows, tmp_path):
    model, adapter = build_model("skill_binary", "cnn:tiny")
    model.eval()
    dataset = prepare_inputs(prepare_task(train_rows, "skill_binary", apply_default_filter=False), adapter)
    batch = SousaCollator(adapter)([dataset[i] for i in range(8)])
    with torch.no_grad():
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        weights = torch.tensor([0.25, 3.0])
        loss = model.task_loss(logits, batch["labels"], class_weights=weights)
    rows = torch.nn.functional.cross_entropy(logits, batch["labels"], reduction="none")
    torch.testing.assert_close(loss, (rows * weights[batch["labels"]]).mean())
    with pytest.raises(ValueError, match="class_weights has shape \\(3,\\); expected \\(2,\\)"):
        SousaTrainer(model=model, args=TrainingArguments(output_dir=str(tmp_path), report_to="none"),
                     class_weights=[1, 2, 3])


def test_evaluate_writes_the_same_report_for_a_saved_model(synthetic_dir, tmp_path, capsys):
    trained = _run(synthetic_dir, tmp_path / "run", "task=skill4", "max_eval_samples=null")
    assert cli_main(["evaluate", str(tmp_path / "run"), "--data", str(synthetic_dir), "--split", "test",
                     "--output-dir", str(tmp_path / "eval")]) == 0
    evaluated = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert evaluated["metrics"] == pytest.approx(trained["metrics"])
    assert "balanced_accuracy" in capsys.readouterr().out
    assert (tmp_path / "eval" / "metrics" / "confusion_matrix.png").is_file()


QUICKSTART = Path(__file__).resolve().parents[1] / "recipes" / "quickstart.yaml"


def _launch(processes: int, cache, output_dir) -> None:
    # The quickstart recipe as it is (its CNN, pooling, waveform cache and synthetic SOUSA, written
    # under $SOUSA_HF_CACHE) on 48 clips of 2 s for 3 steps. SGD (not Adam, which hides a mis-scaled
    # loss), no dropout and centre crops: nothing random differs between one process and two, so the
    # two runs take the same steps.
    overrides = [f"output_dir={output_dir}", "synthetic_samples=48", "length.max_seconds=2.0",
                 "length.train_crop=center", "max_steps=3", "eval_strategy=steps", "eval_steps=3",
                 "max_eval_samples=8", "per_device_eval_batch_size=8", "logging_steps=1", "optim=sgd",
                 "learning_rate=0.5", "lr_scheduler_type=constant", "classifier_dropout=0",
                 "backbone_config.dropout=0", f"per_device_train_batch_size={8 // processes}"]
    # accelerate's `--cpu` launcher starts one process (several need MPI); `--multi_gpu` starts them
    # with torchrun, and without a GPU the entry point joins them in a gloo process group on the CPU.
    launcher = ["--multi_gpu"] if processes > 1 else ["--cpu"]
    command = [sys.executable, "-m", "accelerate.commands.launch", *launcher, "--num_processes", str(processes),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "-m", "sousa_hf.train", str(QUICKSTART), *[arg for override in overrides for arg in ("--set", override)]]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "SOUSA_HF_CACHE": str(cache)}
    finished = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert finished.returncode == 0, finished.stderr[-3000:]


def test_two_processes_train_the_quickstart_like_one(tmp_path):
    cache = tmp_path / "cache"
    # Two processes first, into an empty cache: the main process writes the synthetic SOUSA and the
    # waveform cache while the other waits for them (main_process_first); one process then reuses them.
    _launch(2, cache, tmp_path / "two")
    assert [p.name for p in cache.iterdir()] == ["synthetic-48-seed0"]  # written once, no partial copy left
    _launch(1, cache, tmp_path / "one")
    rows = load_sousa(cache / "synthetic-48-seed0", "audio", split="validation").select(range(8))
    losses = []
    for run_dir in ("one", "two"):
        model = AutoModel.from_pretrained(tmp_path / run_dir).eval()
        adapter = get_adapter(str(tmp_path / run_dir))
        dataset = prepare_inputs(prepare_task(rows, "skill_binary", apply_default_filter=False), adapter)
        with torch.no_grad():
            losses.append(model(**SousaCollator(adapter)([dataset[i] for i in range(8)])).loss.item())
        state = json.loads((tmp_path / run_dir / "checkpoint-3" / "trainer_state.json").read_text())
        assert state["global_step"] == 3
        logged = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
        assert len(logged) == 3
    recipe, _ = load_recipe(QUICKSTART, ["classifier_dropout=0", "backbone_config.dropout=0", "length.max_seconds=2.0"])
    torch.manual_seed(0)
    initial = build_model("skill_binary", recipe.backbone, backbone_config=recipe.backbone_config,
                          pooling=recipe.pooling)[0].eval()  # a run that did not move fails below
    with torch.no_grad():
        untrained = initial(**SousaCollator(adapter)([dataset[i] for i in range(8)])).loss.item()
    assert losses[1] == pytest.approx(losses[0], rel=1e-4) and abs(losses[0] - untrained) > 1e-3
    assert (tmp_path / "two" / "results.json").is_file()
