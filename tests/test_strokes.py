"""Stroke-level SOUSA: stroke labels in the data layer, the `strokes` task, stroke supervision beside a clip
task, per-stroke predictions and the timeline a drummer reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from scipy.signal import stft

from sousa_hf import SousaDataError, load_sousa, prepare_task
from sousa_hf.adapters.base import LengthPolicy
from sousa_hf.adapters.collator import SousaCollator
from sousa_hf.adapters.preprocessing import prepare_inputs
from sousa_hf.backbones import build_model
from sousa_hf.data.audio import decode_audio
from sousa_hf.data.strokes import AUDIO_OFFSET_MS, audible_onsets
from sousa_hf.modeling_sousa import SousaTemporalGRU, stroke_clusters, stroke_loss
from sousa_hf.predict import SousaPredictor
from sousa_hf.recipe import load_recipe
from sousa_hf.stroke_timeline import GRACE_COLOUR, STROKE_COLOUR
from sousa_hf.stroke_transcription import decode_strokes, grid_deviations, stroke_metrics
from sousa_hf.train import run

from .benchmark_scripts import load_benchmark

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
ROOT = RECIPES.parent
TUNE_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "sousa-tune"
DRY_PRESETS = {"clean_studio", "practice_room", "marching_field"}
TINY_STROKES = ["task=strokes", "backbone=cnn:tiny", "backbone_config={time_pooling: false}",
                "feature_extractor_config={hop_length: 220, feature_size: 32}", "temporal_blocks=2",
                "max_steps=3", "per_device_train_batch_size=4", "per_device_eval_batch_size=8", "length.max_seconds=3",
                "eval_strategy='no'", "logging_steps=1", "num_proc=null", "dataloader_num_workers=0", "seed=0"]


def _flux_peaks_ms(audio: np.ndarray, rate: int, onsets_ms: np.ndarray) -> np.ndarray:
    """For each onset, where the audio's energy rises fastest within -20..+40 ms of it (4 ms frames, 1 ms hop)."""
    hop, window = rate // 1000, 4 * rate // 1000
    _, _, spectrum = stft(audio, rate, nperseg=window, noverlap=window - hop, boundary=None, padded=False)
    flux = np.maximum(0.0, np.diff(np.log1p(1000.0 * np.abs(spectrum)), axis=1)).sum(axis=0)
    times = 1000.0 * ((np.arange(flux.size) + 1) * hop + window / 2) / rate
    peaks = []
    for onset in onsets_ms:
        near = (times >= onset - 20) & (times <= onset + 40)
        peaks.append(times[near][np.argmax(flux[near])] if near.any() else np.nan)
    return np.asarray(peaks)


def _isolated_errors(dataset, clips: int) -> np.ndarray:
    """Heard attack minus labelled `onset_ms` for strokes with no neighbour within 40 ms and velocity >= 40/127."""
    errors = []
    for row in dataset.select(range(min(clips, len(dataset)))):
        if row.get("augmentation_preset", "clean_studio") not in DRY_PRESETS:
            continue
        audio = row["audio"]
        strokes = row["strokes"]
        heard = audible_onsets(strokes, 1000.0 * len(audio["array"]) / audio["sampling_rate"])
        onsets = np.asarray(strokes["onset_ms"])[heard]
        velocity = np.asarray(strokes["velocity"])[heard]
        gaps = np.diff(onsets)
        isolated = (np.r_[np.inf, gaps] > 40) & (np.r_[gaps, np.inf] > 40) & (velocity >= 40 / 127)
        peaks = _flux_peaks_ms(audio["array"], audio["sampling_rate"], onsets[isolated])
        errors.extend(peaks - onsets[isolated])
    return np.asarray([e for e in errors if np.isfinite(e)])


# --------------------------------------------------------------------------- data layer


def test_every_clip_gets_its_strokes_in_time_order(synthetic_dir):
    train = load_sousa(synthetic_dir, split="train", strokes=True)
    row = train[0]
    strokes = row["strokes"]
    assert set(strokes) >= {"onset_ms", "actual_ms", "intended_ms", "velocity", "is_grace", "is_accent", "hand"}
    assert len(strokes["onset_ms"]) > 0
    assert np.all(np.diff(strokes["actual_ms"]) >= 0)
    assert np.allclose(strokes["onset_ms"], np.asarray(strokes["actual_ms"]) + AUDIO_OFFSET_MS["synthetic"])
    assert all(0.0 <= v <= 1.0 for v in strokes["velocity"])


def test_real_clips_are_shifted_by_the_measured_render_offset(sample_dir):
    row = load_sousa(sample_dir, split="train", strokes=True, decode=False)[0]
    strokes = row["strokes"]
    assert np.allclose(np.asarray(strokes["onset_ms"]) - np.asarray(strokes["actual_ms"]), AUDIO_OFFSET_MS["sousa"],
                       atol=1e-3)


def test_labelled_onsets_land_on_the_attacks_of_real_clips(sample_dir):
    """On SOUSA's own renders (44.1 kHz), the corrected onset is where the attack is; the raw
    `actual_time_ms` is several ms early, so the check would fail without the correction."""
    train = load_sousa(sample_dir, split="train", strokes=True)
    errors = _isolated_errors(train, clips=40)
    assert errors.size >= 50, "too few isolated strokes to measure"
    assert abs(np.median(errors)) <= 2.5, np.median(errors)
    assert abs(np.median(errors + AUDIO_OFFSET_MS["sousa"])) > 5.0  # what the uncorrected labels would give


def test_labelled_onsets_land_on_the_attacks_of_synthetic_clips(synthetic_dir):
    errors = _isolated_errors(load_sousa(synthetic_dir, split="train", strokes=True), clips=16)
    assert errors.size >= 50 and abs(np.median(errors)) <= 2.5, np.median(errors)


@pytest.mark.skipif(not (TUNE_DIR / "auxiliary" / "strokes.parquet").is_file(), reason="../shared/sousa-tune absent")
def test_labelled_onsets_land_on_the_attacks_of_the_16khz_tuning_set():
    validation = load_sousa(TUNE_DIR, split="validation", strokes=True)
    errors = _isolated_errors(validation, clips=30)
    assert errors.size >= 50 and abs(np.median(errors)) <= 2.5, np.median(errors)


def test_streamed_clips_get_the_same_strokes(synthetic_dir):
    stored = load_sousa(synthetic_dir, split="validation", strokes=True, decode=False)
    streamed = load_sousa(synthetic_dir, split="validation", strokes=True, streaming=True, decode=False)
    first = next(iter(streamed))
    assert first["sample_id"] == stored[0]["sample_id"] and first["strokes"] == stored[0]["strokes"]


def test_a_source_without_a_stroke_file_is_a_clear_error(synthetic_dir, tmp_path):
    import shutil

    copy = tmp_path / "no-strokes"
    shutil.copytree(synthetic_dir, copy)
    (copy / "auxiliary" / "strokes.parquet").unlink()
    with pytest.raises(SousaDataError, match="auxiliary/strokes.parquet"):
        load_sousa(copy, strokes=True)


# --------------------------------------------------------------------------- task, crops, loss, decoding


def test_stroke_labels_follow_each_crop(synthetic_dir):
    """A crop's stroke labels are the strokes inside it, timed from the crop's start."""
    train = prepare_task(load_sousa(synthetic_dir, split="train", strokes=True), "strokes")
    model, adapter = build_model("strokes", "cnn:tiny", length=LengthPolicy(max_seconds=1.5),
                                 backbone_config={"time_pooling": False},
                                 feature_extractor_config={"hop_length": 220, "feature_size": 32})
    row = train[0]
    prepared = prepare_inputs(train, adapter, train=False)[0]
    seconds = len(row["audio"]["array"]) / row["audio"]["sampling_rate"]
    start = (seconds - 1.5) / 2 if seconds > 1.5 else 0.0
    expected = [t - 1000 * start for t in row["stroke_onsets"] if 0 <= t - 1000 * start < 1500]
    assert prepared["stroke_onsets"] == pytest.approx(expected, abs=1.0)
    assert len(prepared["stroke_velocities"]) == len(expected) > 0
    batch = SousaCollator(adapter)([prepared, prepare_inputs(train, adapter, train=False)[1]])
    assert batch["stroke_onsets"].shape[0] == 2 and (batch["stroke_onsets"][:, -1] >= -1).all()
    output = model(**batch)
    assert output.loss.isfinite() and output.stroke_logits.shape[-1] == 3


def test_the_stroke_loss_is_lowest_for_the_right_frames_and_ignores_padding():
    frame_seconds, frames = 0.005, 200
    onsets = torch.tensor([[100.0, 400.0, -1.0]])
    velocities, grace = torch.tensor([[0.8, 0.3, 0.0]]), torch.tensor([[0.0, 1.0, 0.0]])
    logits = torch.full((1, frames, 3), -8.0)
    logits[0, [20, 80], 0] = 8.0
    logits[0, [20, 80], 1] = torch.logit(torch.tensor([0.8, 0.3]))
    logits[0, 80, 2] = 8.0
    right = stroke_loss(logits, None, onsets, velocities, grace, frame_seconds)
    shifted = stroke_loss(logits.roll(6, dims=1), None, onsets, velocities, grace, frame_seconds)
    assert right < shifted
    padded = stroke_loss(logits, None, torch.tensor([[100.0, 400.0, -1.0, -1.0]]), torch.tensor([[0.8, 0.3, 0, 0.9]]),
                         torch.tensor([[0.0, 1.0, 0.0, 1.0]]), frame_seconds)
    assert padded == pytest.approx(right.item())


def test_the_onset_weight_makes_a_missed_stroke_cost_more_than_a_false_one():
    frame_seconds, frames = 0.005, 200
    onsets, velocities, grace = torch.tensor([[100.0]]), torch.tensor([[0.5]]), torch.tensor([[0.0]])
    missed = torch.full((1, frames, 3), -8.0)  # silent everywhere, the stroke at frame 20 included
    false = missed.clone()
    false[0, 20, 0] = 8.0  # the stroke found...
    false[0, 120, 0] = 8.0  # ...and one more where there is none
    even = [stroke_loss(x, None, onsets, velocities, grace, frame_seconds) for x in (missed, false)]
    weighted = [stroke_loss(x, None, onsets, velocities, grace, frame_seconds, onset_weight=4.0)
                for x in (missed, false)]
    assert even[0] == pytest.approx(even[1].item(), rel=1e-3)  # unweighted, the two mistakes cost the same here
    assert weighted[0] > weighted[1] + 0.1


def test_decoding_finds_peaks_between_frames_and_reads_velocity_and_grace():
    logits = np.full((100, 3), -10.0)
    logits[30, 0], logits[29, 0], logits[31, 0] = 5.0, 0.0, 2.0  # the peak leans towards frame 31
    logits[30, 1], logits[30, 2] = 0.0, 4.0
    logits[70, 0] = 5.0
    found = decode_strokes(logits, frame_seconds=0.005)
    assert len(found["time_ms"]) == 2
    assert 150.0 < found["time_ms"][0] < 155.0 and found["time_ms"][1] == pytest.approx(350.0)
    assert found["velocity"][0] == pytest.approx(0.5) and found["is_grace"].tolist() == [True, False]
    assert len(decode_strokes(logits, 0.005, frames=50)["time_ms"]) == 1  # padding frames are not read


def test_strokes_closer_than_the_cluster_spacing_are_one_cluster_counted_at_its_first_stroke():
    position = torch.tensor([[10.0, 10.6, 11.2, 11.8, 30.0, 50.0, 51.0, -0.2]])  # a buzz, a tap, a flat flam, padding
    present = torch.tensor([[True] * 7 + [False]])
    first, clusters = stroke_clusters(position, present, cluster_frames=2.0)
    assert first.tolist() == [[True, False, False, False, True, True, False, False]]
    assert clusters[0, :, 0].tolist() == [3, 0, 0, 0, 0, 1, 0, 0]
    assert clusters[0, :, 1].tolist() == pytest.approx([0.6, 0, 0, 0, 0, 1.0, 0, 0])


def _buzz_logits(followers: float, frames: int = 200) -> torch.Tensor:
    """Five-output logits that mark a buzz's first stroke at frame 20 (with `followers` after it, 0.6 frames apart)
    and a lone stroke at frame 60."""
    logits = torch.full((1, frames, 5), -8.0)
    logits[0, [20, 60], 0] = 8.0
    logits[0, 19:22, 3] = float(np.log(followers))
    logits[0, 19:22, 4] = float(np.log(np.expm1(0.6)))
    return logits


def test_the_cluster_loss_marks_only_first_strokes_and_learns_how_many_follow():
    frame_seconds, cluster_ms = 0.005, 10.0
    onsets = torch.tensor([[300.0, 109.0, 100.0, 106.0, 103.0, -1.0]])  # out of time order, as a crop may leave them
    velocities = torch.tensor([[0.9, 0.2, 0.8, 0.4, 0.6, 0.0]])
    grace = torch.tensor([[0.0, 1.0, 0.0, 1.0, 1.0, 0.0]])
    right = _buzz_logits(followers=3.0)
    clustered = stroke_loss(right, None, onsets, velocities, grace, frame_seconds, cluster_ms=cluster_ms)
    assert clustered < stroke_loss(_buzz_logits(followers=1.0), None, onsets, velocities, grace, frame_seconds,
                                   cluster_ms=cluster_ms)
    order = [2, 4, 3, 1, 0, 5]
    assert clustered == pytest.approx(stroke_loss(right, None, onsets[:, order], velocities[:, order],
                                                  grace[:, order], frame_seconds, cluster_ms=cluster_ms).item())
    # A peak on a follower (frame 22) is a false stroke to a cluster head, and a found one to a plain head.
    extra = right.clone()
    extra[0, 22, 0] = 8.0
    assert stroke_loss(extra, None, onsets, velocities, grace, frame_seconds, cluster_ms=cluster_ms) > clustered
    plain = [stroke_loss(x[..., :3], None, onsets, velocities, grace, frame_seconds) for x in (right, extra)]
    assert plain[1] < plain[0]
    wrong = _buzz_logits(followers=1.0).requires_grad_()
    stroke_loss(wrong, None, onsets, velocities, grace, frame_seconds, cluster_ms=cluster_ms).backward()
    assert (wrong.grad[0, 19:22, 3] < 0).all()  # more followers, as the buzz has three


def test_decoding_a_cluster_head_adds_the_strokes_each_peak_says_follow_it():
    logits = np.full((100, 5), -10.0)
    logits[30, 0], logits[70, 0] = 5.0, 5.0
    logits[30, 3], logits[30, 4] = np.log(3.0), np.log(np.expm1(0.6))  # three more strokes, 0.6 frames apart
    logits[30:33, 1] = [0.0, np.log(1 / 3), np.log(3.0)]  # velocities 0.5, 0.25, 0.75 at frames 30, 31, 32
    logits[31, 2], logits[70, 1] = 4.0, 0.0
    found = decode_strokes(logits, frame_seconds=0.005)
    assert found["time_ms"].tolist() == pytest.approx([150.0, 153.0, 156.0, 159.0, 350.0])
    assert found["velocity"].tolist() == pytest.approx([0.5, 0.25, 0.25, 0.75, 0.5])
    assert found["is_grace"].tolist() == [False, True, True, False, False]
    assert found["confidence"].tolist() == pytest.approx([1 / (1 + np.exp(-5.0))] * 5)
    assert len(decode_strokes(logits[:, :3], frame_seconds=0.005)["time_ms"]) == 2  # a plain head: one per peak


def test_onset_metrics_follow_mir_evals_windows():
    reference = [{"time_ms": np.array([100.0, 300.0, 500.0, 700.0]), "velocity": np.array([0.5, 0.5, 0.5, 0.5])}]
    off_by_15 = [{"time_ms": np.array([115.0, 315.0, 515.0]), "velocity": np.array([0.5, 0.6, 0.5])}]
    metrics = stroke_metrics(reference, off_by_15)
    assert metrics["onset_f1_10ms"] == 0.0
    assert metrics["onset_precision_25ms"] == 1.0 and metrics["onset_recall_25ms"] == 0.75
    assert metrics["onset_f1_25ms"] == pytest.approx(2 * 0.75 / 1.75)
    assert metrics["onset_mae_ms"] == pytest.approx(15.0)
    assert metrics["velocity_mae"] == pytest.approx(0.1 * 127 / 3)


def test_grid_deviations_measure_each_stroke_against_the_metronome():
    step = 60_000 / 120 / 4  # sixteenths at 120 bpm: 125 ms
    times = 40.0 + step * np.arange(8)
    times[3] += 12.0
    times[5] -= 8.0
    deviations = grid_deviations(times, 120, subdivision=4)
    assert deviations[3] - np.median(deviations) == pytest.approx(12.0, abs=2.0)
    assert deviations[5] - np.median(deviations) == pytest.approx(-8.0, abs=2.0)
    with pytest.raises(ValueError, match="tempo"):
        grid_deviations(times, 0)


# --------------------------------------------------------------------------- training and predicting


def _write_take(source: Path, path: Path) -> Path:
    """The longest of a few test clips of `source`, as a FLAC file (a take a drummer would pass to predict)."""
    import soundfile

    test = load_sousa(source, split="test")
    row = max((test[i] for i in range(min(6, len(test)))), key=lambda r: len(r["audio"]["array"]))
    soundfile.write(path, row["audio"]["array"], row["audio"]["sampling_rate"])
    return path


@pytest.fixture(scope="module")
def synthetic_take(synthetic_dir, tmp_path_factory) -> Path:
    return _write_take(synthetic_dir, tmp_path_factory.mktemp("takes") / "synthetic_take.flac")


@pytest.fixture(scope="module")
def stroke_run(synthetic_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("strokes") / "run"
    recipe, training = load_recipe(RECIPES / "strokes_cnn.yaml",
                                   [*TINY_STROKES, f"data={synthetic_dir}", f"output_dir={out}"])
    run(recipe, training)
    return out


def test_the_strokes_recipe_reports_onset_f1_at_10_and_25_ms(stroke_run):
    results = json.loads((stroke_run / "results.json").read_text())
    assert results["task"] == "strokes" and results["split"] == "test" and results["num_strokes"] > 0
    assert results["stroke_threshold"] == json.loads((stroke_run / "config.json").read_text())["stroke_threshold"]
    for name in ("onset_f1_10ms", "onset_f1_25ms", "onset_precision_25ms", "onset_recall_25ms"):
        assert 0.0 <= results["metrics"][name] <= 1.0, name
    per_tier = json.loads((stroke_run / "metrics" / "per_skill_tier.json").read_text())
    assert sum(v["count"] for v in per_tier.values()) == results["num_examples"]


def test_evaluating_the_saved_model_repeats_its_test_report(stroke_run, synthetic_dir, tmp_path):
    from sousa_hf.evaluation import evaluate_saved_model

    again = evaluate_saved_model(str(stroke_run), str(synthetic_dir), output_dir=str(tmp_path))
    saved = json.loads((stroke_run / "results.json").read_text())
    for name, value in saved["metrics"].items():
        assert again["metrics"][name] == pytest.approx(value, abs=1e-6, nan_ok=True), name


def test_a_saved_stroke_model_marks_every_stroke_of_a_real_take_on_its_timeline(stroke_run, sample_dir, tmp_path):
    """On a real SOUSA take longer than the model's 3 s window: strokes over the whole take, in JSON, and a PNG
    whose red marker columns are exactly the strokes found."""
    predictor = SousaPredictor.from_pretrained(str(stroke_run), device="cpu")
    assert predictor.transcribes_strokes and predictor.model.config.frame_seconds == pytest.approx(0.005, abs=1e-4)
    audio_file = _write_take(sample_dir, tmp_path / "real_take.flac")
    # An untrained-looking model may find nothing: make its onset logits fire on a known grid instead,
    # so that what the PNG must show is known.
    head = predictor.model.strokes
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.tensor([-20.0, 0.0, -20.0]))
    (result,) = predictor.predict_files([audio_file], progress=False, tempo_bpm=100, timeline_dir=tmp_path)
    assert result["strokes"] == [] and Path(result["timeline"]).is_file()

    def fire_every(frames: int):
        def hook(module, inputs, output):
            output = output.clone()
            output[:, ::frames, 0] = 20.0
            return output
        return head.register_forward_hook(hook)

    handle = fire_every(100)  # a stroke every 500 ms of each window
    try:
        (result,) = predictor.predict_files([audio_file], progress=False, tempo_bpm=100, timeline_dir=tmp_path)
    finally:
        handle.remove()
    strokes = result["strokes"]
    take_ms = 1000.0 * soundfile_seconds(audio_file)
    assert take_ms > 3500, "the take should be longer than the model's window"
    assert set(strokes[0]) == {"time_ms", "velocity", "is_grace", "confidence", "deviation_ms"}
    times = np.array([s["time_ms"] for s in strokes])
    assert times[0] == pytest.approx(0.0, abs=0.5) and times[-1] > take_ms - 1000  # the whole take, not one window
    assert np.all(np.diff(times) > 0) and np.diff(times).max() < 510  # windows join without gaps
    assert all(0 <= s["velocity"] <= 127 and not s["is_grace"] for s in strokes)
    json.dumps(result)  # the CLI writes it as JSON
    columns = _marker_columns(Path(result["timeline"]), STROKE_COLOUR)
    assert len(columns) == len(strokes)
    assert _marker_columns(Path(result["timeline"]), GRACE_COLOUR) == []


def soundfile_seconds(path: Path) -> float:
    import soundfile

    info = soundfile.info(path)
    return info.frames / info.samplerate


def _marker_columns(png: Path, colour: str) -> list[int]:
    """The x positions of the runs of pixel columns that hold at least 10 pixels of exactly `colour`."""
    import matplotlib.image

    image = (matplotlib.image.imread(png)[..., :3] * 255).round().astype(int)
    rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
    counts = (np.abs(image - rgb).sum(axis=-1) == 0).sum(axis=0)
    columns = np.flatnonzero(counts >= 10)
    runs = np.split(columns, np.flatnonzero(np.diff(columns) > 1) + 1) if columns.size else []
    return [int(run.mean()) for run in runs]


def test_the_cli_prints_strokes_and_writes_the_timeline(stroke_run, synthetic_take, tmp_path, capsys):
    from sousa_hf.cli import main

    audio_file = synthetic_take
    assert main(["predict", str(stroke_run), str(audio_file), "--tempo", "100", "--timeline", str(tmp_path),
                 "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert "strokes" in printed[0] and (tmp_path / f"{audio_file.name}.png").is_file()


def test_stroke_supervision_beside_a_clip_task_keeps_both_heads(synthetic_dir, synthetic_take, tmp_path):
    overrides = [o for o in TINY_STROKES if not o.startswith("task=")]
    recipe, training = load_recipe(RECIPES / "strokes_cnn.yaml", [*overrides, "task=skill_binary", "aux_strokes=0.5",
                                                                  "use_tempo=true", "pooling=attentive_stats",
                                                                  f"data={synthetic_dir}", f"output_dir={tmp_path}"])
    results = run(recipe, training)
    assert "balanced_accuracy" in results["metrics"]
    predictor = SousaPredictor.from_pretrained(str(tmp_path), device="cpu")
    assert predictor.transcribes_strokes and predictor.needs_tempo
    assert predictor.model.config.aux_strokes == 0.5
    audio_file = synthetic_take
    with pytest.raises(SousaDataError, match="--tempo"):
        predictor.predict_files([audio_file], progress=False)
    (result,) = predictor.predict_files([audio_file], progress=False, tempo_bpm=120)
    assert result["label"] in {"novice", "skilled"} and isinstance(result["strokes"], list)


def test_aux_strokes_on_the_strokes_task_is_refused_when_the_recipe_is_read(tmp_path):
    with pytest.raises(SousaDataError, match="aux_strokes"):
        load_recipe(RECIPES / "strokes_cnn.yaml", [*TINY_STROKES, "aux_strokes=0.5", f"output_dir={tmp_path}"])


def test_a_temporal_gru_gives_every_frame_the_whole_window_and_ignores_padding():
    torch.manual_seed(0)
    gru = SousaTemporalGRU(width=8, num_layers=1)
    frames = torch.randn(1, 12, 8)
    changed = frames.clone()
    changed[0, -1] = torch.randn(8)
    with torch.no_grad():
        reach = (gru(changed, None) - gru(frames, None))[0].abs().amax(dim=-1)
    assert reach[0] > 1e-6  # the first frame hears the last one
    model, adapter = build_model("strokes", "cnn:tiny", backbone_config={"time_pooling": False},
                                 feature_extractor_config={"hop_length": 220, "feature_size": 32},
                                 temporal_blocks=1, temporal_gru=1, length=LengthPolicy(max_seconds=None))
    model.eval()
    rng = np.random.default_rng(0)
    clips = [rng.standard_normal(int(44100 * s)).astype(np.float32) * 0.1 for s in (0.5, 1.2)]
    with torch.no_grad():
        alone = [model(**adapter([clip])).stroke_logits[0] for clip in clips]
        batched = model(**adapter(clips)).stroke_logits
    for i, logits in enumerate(alone):  # padded frames reach neither direction of the recurrence
        torch.testing.assert_close(batched[i, :len(logits)], logits, rtol=1e-4, atol=1e-5)
    assert model.config.temporal_gru == 1 and model.sousa.temporal_gru.gru.bidirectional


def test_a_backbone_without_a_frame_rate_cannot_learn_strokes():
    with pytest.raises(SousaDataError, match="ast"):
        build_model("strokes", "ast:tiny")


def test_the_onset_threshold_is_the_one_best_on_held_out_clips():
    """Peaks that reach only 0.35 are strokes: the tuned threshold finds them, 0.5 would miss them."""
    from sousa_hf.stroke_transcription import best_threshold

    logits = np.full((200, 3), -10.0)
    logits[[20, 60, 100], 0] = np.log(0.35 / 0.65)
    logits[140, 0] = np.log(0.12 / 0.88)  # a spurious bump
    references = [{"time_ms": np.array([100.0, 300.0, 500.0]) * 0.998, "velocity": np.zeros(3)}]
    threshold, f1 = best_threshold([logits], references, frame_seconds=0.005)
    assert 0.12 < threshold <= 0.35 and f1 == pytest.approx(1.0)
    assert stroke_metrics(references, [decode_strokes(logits, 0.005)])["onset_f1_25ms"] == 0.0


def test_the_model_card_of_a_stroke_model_reports_its_onset_f1(stroke_run):
    from sousa_hf.model_card import make_model_card

    card = make_model_card(stroke_run, repo_id="user/sousa-strokes")
    text = str(card)
    results = json.loads((stroke_run / "results.json").read_text())
    assert "transcribes its strokes" in text and "tempo_bpm=120" in text
    assert f"{results['metrics']['onset_f1_25ms']:.3f}" in text or f"{results['metrics']['onset_f1_25ms']:.4f}" in text
    assert "{{" not in text and "{%" not in text


def test_the_demo_shows_a_stroke_models_timeline(stroke_run, synthetic_take):
    pytest.importorskip("gradio", reason="the demo extra is not installed: pip install 'sousa-hf[demo]'")
    from sousa_hf.demo import DemoModel

    predictor = SousaPredictor.from_pretrained(str(stroke_run), device="cpu")
    text, label, waveform, timeline = DemoModel(predictor)(str(synthetic_take), tempo_bpm=100)
    assert "strokes found" in text and label is None
    assert Path(waveform).is_file() and Path(timeline).is_file()


def test_the_recall_benchmark_breaks_down_every_labelled_stroke(stroke_run, synthetic_dir):
    stroke_recall = load_benchmark("stroke_recall")
    split = load_sousa(str(synthetic_dir), "audio", split="validation", strokes=True).select(range(3))
    rows, detected, matched = stroke_recall.stroke_rows(SousaPredictor.from_pretrained(str(stroke_run)), split)
    heard = sum(len(audible_onsets(r["strokes"])) for r in split)
    assert len(rows) <= heard and len(rows) > 0.9 * heard  # a few may lie past the end of the audio
    assert matched == sum(r["found"] for r in rows) and matched <= detected
    for grouping, table in stroke_recall.breakdown(rows).items():
        if grouping.startswith("rudiment") or ", rise " in grouping:  # the worst few; subsets
            continue
        assert sum(count for _, count, _ in table) == len(rows), grouping
        found = sum(count * recall for _, count, recall in table if count)
        assert found == pytest.approx(matched), grouping
    silent = [r for r in rows if r["energy rise at the stroke (dB)"] < stroke_recall.NO_RISE_DB]
    by_tier = stroke_recall.breakdown(rows)[f"skill tier, rise < {stroke_recall.NO_RISE_DB:g} dB"]
    assert sum(count for _, count, _ in by_tier) == len(silent)


def test_the_onset_functions_benchmark_sees_a_note_restarted_at_the_same_loudness():
    onset_functions = load_benchmark("onset_functions")
    rate = 16000
    time = np.arange(rate) / rate
    audio = 0.5 * np.sin(2 * np.pi * 440 * time)
    audio[8000:] = 0.5 * np.sin(2 * np.pi * 440 * time[:8000] + 2.0)  # restarted at 500 ms, as loud as before
    centres, functions = onset_functions.onset_functions(audio.astype(np.float32), rate)
    inside = (centres > 50) & (centres < 950)
    for name, values in functions.items():
        assert abs(centres[inside][np.argmax(values[inside])] - 500) <= 15, name
        steady = inside & (np.abs(centres - 500) > 40)
        assert values[inside].max() > 5 * np.median(values[steady]), name
    peaks = onset_functions.largest_near(functions["complex-domain deviation"], centres, np.array([500.0, 250.0]))
    assert peaks[0] > 5 * peaks[1]


def test_the_recall_benchmark_measures_how_much_the_sound_rises_at_each_stroke():
    stroke_recall = load_benchmark("stroke_recall")
    rate = 16000
    rng = np.random.default_rng(0)
    audio = np.zeros(rate, dtype=np.float32)
    audio[1600:] = 0.01 * rng.standard_normal(rate - 1600)  # an attack at 100 ms, then steady noise
    audio[8000:8160] += 0.5 * rng.standard_normal(160)  # a loud 10 ms burst at 500 ms
    rises = stroke_recall.attack_rise_db(audio, rate, np.array([100.0, 300.0, 500.0, 700.0]))
    assert rises[0] > 40 and rises[2] > 12  # out of silence; a burst over the noise
    assert abs(rises[1]) < 2 and abs(rises[3]) < 2  # the same noise before and after: nothing to hear


# --------------------------------------------------------------------------- scoring a clip from its strokes


def _sixteenths(seconds: float, tempo: float, jitter_ms: float = 0.0, seed: int = 0) -> torch.Tensor:
    step = 60_000.0 / tempo / 4
    times = torch.arange(0.0, seconds * 1000.0, step, dtype=torch.float64) + 37.0  # off the grid's zero
    if not jitter_ms:
        return times
    return times + torch.from_numpy(np.random.default_rng(seed).normal(0.0, jitter_ms, len(times)))


def test_stroke_statistics_measure_how_far_strokes_lie_from_the_grid():
    from sousa_hf.stroke_statistics import STATISTICS, clip_statistics, statistic_names

    names = statistic_names(use_tempo=True)
    even = _sixteenths(8.0, 120.0)
    velocity, grace = torch.full_like(even, 0.6), torch.zeros_like(even, dtype=torch.bool)
    steady = dict(zip(names, clip_statistics(even, velocity, grace, 120.0).tolist()))
    assert len(steady) == len(names) and steady["strokes"] == len(even) == 64
    assert steady["grid_mean_abs_ms"] < 0.01 and steady["second_difference_mean_abs"] < 0.01
    assert steady["ioi_median_ms"] == pytest.approx(125.0) and steady["velocity_std"] < 1e-6
    shaky = dict(zip(names, clip_statistics(_sixteenths(8.0, 120.0, jitter_ms=10.0), velocity, grace, 120.0).tolist()))
    assert 5.0 < shaky["grid_mean_abs_ms"] < 11.0  # |N(0, 10 ms)| averages 8 ms
    assert shaky["second_difference_mean_abs"] > 10.0
    # Without a tempo: only the statistics that need none, in the same order.
    untimed = clip_statistics(even, velocity, grace)
    assert untimed.shape == (len(STATISTICS),)
    assert torch.allclose(untimed, clip_statistics(even, velocity, grace, 120.0)[: len(STATISTICS)])
    with pytest.raises(ValueError, match="tempo"):
        clip_statistics(even, velocity, grace, -1.0)
    empty = clip_statistics(torch.zeros(0), torch.zeros(0), torch.zeros(0, dtype=torch.bool), 120.0)
    assert torch.isfinite(empty).all()


def test_stroke_statistics_describe_a_rudiments_accent_pattern_and_rhythm_whatever_its_phase():
    from sousa_hf.stroke_statistics import clip_statistics, statistic_names

    names = statistic_names(use_tempo=True)
    sixteenths = _sixteenths(8.0, 120.0)
    accented = torch.where(torch.arange(len(sixteenths)) % 4 == 0, 0.9, 0.4).double()  # one accent a beat
    grace = torch.zeros_like(sixteenths, dtype=torch.bool)
    steady = dict(zip(names, clip_statistics(sixteenths, accented, grace, 120.0).tolist()))
    assert steady["velocity_autocorrelation_4"] > 0.9 and steady["velocity_autocorrelation_8"] > 0.8
    assert steady["velocity_autocorrelation_2"] < -0.2
    assert steady["beat_onset_harmonic_4"] == pytest.approx(1.0)  # sixteenths: four to a beat
    assert max(steady[f"beat_onset_harmonic_{k}"] for k in (1, 2, 3)) < 1e-6
    # The accents fall on one position of the beat: |0.9 + 0.4 (i - 1 - i)| / 2.1, where even velocities give 0.
    assert steady["beat_accent_harmonic_1"] == pytest.approx(0.5 / 2.1, abs=1e-4)
    shifted = dict(zip(names, clip_statistics(sixteenths + 61.0, accented, grace, 120.0).tolist()))
    assert all(shifted[name] == pytest.approx(value, abs=1e-4) for name, value in steady.items()
               if "harmonic" in name or "autocorrelation" in name)
    triplets = torch.arange(0.0, 8000.0, 500.0 / 3, dtype=torch.float64)
    rolled = dict(zip(names, clip_statistics(triplets, torch.full_like(triplets, 0.6),
                                             torch.zeros_like(triplets, dtype=torch.bool), 120.0).tolist()))
    assert rolled["beat_onset_harmonic_3"] == pytest.approx(1.0) and rolled["beat_onset_harmonic_4"] < 0.1


def _stroke_statistics_recipe(stroke_run: Path, synthetic_dir: Path, out: Path, *extra: str) -> list[str]:
    settings = [o for o in TINY_STROKES if o.split("=")[0] in ("backbone", "backbone_config",
                                                               "feature_extractor_config", "temporal_blocks")]
    return [*settings, f"strokes_from={stroke_run}", "max_steps=4", "per_device_train_batch_size=8",
            "per_device_eval_batch_size=8", "eval_strategy='no'", "num_proc=null", "dataloader_num_workers=0",
            "logging_steps=1", f"data={synthetic_dir}", f"output_dir={out}", *extra]


def test_a_clip_model_scores_from_the_strokes_a_trained_stroke_model_finds(stroke_run, synthetic_dir, synthetic_take,
                                                                             tmp_path):
    from safetensors.torch import load_file

    recipe, training = load_recipe(RECIPES / "stroke_statistics.yaml",
                                   _stroke_statistics_recipe(stroke_run, synthetic_dir, tmp_path,
                                                             "pattern_evidence=true", "pattern_matches=true"))
    results = run(recipe, training)
    assert "r2" in results["metrics"] and results["task"] == "overall_score"
    trained, front_end = load_file(tmp_path / "model.safetensors"), load_file(stroke_run / "model.safetensors")
    for name, tensor in front_end.items():  # the stroke model's weights, frozen
        assert torch.equal(trained[name], tensor), name
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["stroke_threshold"] == json.loads((stroke_run / "config.json").read_text())["stroke_threshold"]
    # The rudiments' rhythms, learned from the training split's stroke labels, travel with the model.
    patterns = config["rhythm_patterns"]
    assert patterns["origin_ms"] == 0.0 and len(patterns["cycle_beats"]) == len(patterns["positions_beats"]) > 1
    matches = len(patterns["cycle_beats"])  # then how much worse than the best each rhythm matches, one a rhythm
    assert config["pattern_evidence"] and config["stroke_statistics"][-matches - 1] == "evidence_coverage"
    assert config["pattern_matches"] and config["stroke_statistics"][-1] == f"pattern_match_excess_ms_{matches - 1}"
    assert trained["stroke_statistics.statistics_std"].ne(1.0).any()  # standardised by the training split
    from sousa_hf.evaluation import evaluate_saved_model

    again = evaluate_saved_model(str(tmp_path), str(synthetic_dir), output_dir=str(tmp_path / "again"))
    assert again["metrics"]["r2"] == pytest.approx(results["metrics"]["r2"], abs=1e-6)
    predictor = SousaPredictor.from_pretrained(str(tmp_path), device="cpu")
    assert predictor.needs_tempo and predictor.transcribes_strokes
    with pytest.raises(SousaDataError, match="--tempo"):
        predictor.predict_files([synthetic_take], progress=False)
    (result,) = predictor.predict_files([synthetic_take], progress=False, tempo_bpm=100)
    assert np.isfinite(result["scores"]["overall_score"])
    assert isinstance(result["strokes"], list)
    from sousa_hf.model_card import make_model_card

    card = str(make_model_card(tmp_path, "user/sousa-stroke-statistics"))
    assert "frozen" in card and "two-layer MLP" in card and "grace notes" in card
    assert f"best-matching of {len(patterns['cycle_beats'])} rhythm patterns" in card
    assert "onset probability and velocity read at each notated position" in card
    assert "how much worse than the best each rhythm pattern matches" in card
    assert 'predict_files(["take.wav"], tempo_bpm=120)' in card and "--tempo 120" in card


@pytest.mark.parametrize("evidence", [False, True], ids=["strokes", "pattern-evidence-and-matches"])
def test_the_cached_stroke_statistics_are_the_ones_the_model_computes_from_audio(stroke_run, synthetic_dir, evidence):
    from sousa_hf.backbone_cache import BackboneOutputs, cache_backbone_outputs
    from sousa_hf.backbones import load_stroke_front_end
    from sousa_hf.stroke_statistics import EVIDENCE_STATISTICS

    # With pattern evidence, the head's frame outputs are read at the positions of the better of straight eighths
    # and sixteenths (and how much worse the other matches comes last): the cache reads them from the whole take's
    # transcription, the model from its forward pass.
    patterns = ({"origin_ms": 0.0, "cycle_beats": [1.0, 1.0], "positions_beats": [[0.0, 0.5], [0.0, 0.25, 0.5, 0.75]]}
                if evidence else None)
    model, adapter = build_model("overall_score", "cnn:tiny", backbone_config={"time_pooling": False},
                                 feature_extractor_config={"hop_length": 220, "feature_size": 32}, temporal_blocks=2,
                                 pooling="stroke_statistics", use_tempo=True, length=LengthPolicy(max_seconds=None),
                                 rhythm_patterns=patterns, pattern_evidence=evidence, pattern_matches=evidence)
    load_stroke_front_end(model, str(stroke_run), adapter.feature_extractor)
    assert not any(p.requires_grad for p in model.sousa.parameters()) and not model.strokes.weight.requires_grad
    split = load_sousa(synthetic_dir, split="validation").select(range(4))
    cached = cache_backbone_outputs(split, model, adapter)
    collator = SousaCollator(adapter)
    model.eval()
    from_cache = collator([cached.with_format("numpy")[i] for i in range(4)])
    with torch.no_grad():
        audio_inputs = collator([prepare_inputs(split, adapter)[i] for i in range(4)])
        from_audio = model(**{k: v for k, v in audio_inputs.items() if k != "labels"}).predictions
        assert torch.allclose(model(cached_stroke_statistics=from_cache["cached_stroke_statistics"]).predictions,
                              from_audio, atol=1e-5)
        with pytest.raises(ValueError, match="tempo_bpm"):
            model(input_features=audio_inputs["input_features"], attention_mask=audio_inputs["attention_mask"])
    if evidence:
        read = from_cache["cached_stroke_statistics"][:, -len(EVIDENCE_STATISTICS) - 2 : -2]
        assert read[:, 0].gt(0).all() and read.ne(0).float().mean() > 0.5  # evidence_mean and most of the rest
        excess = from_cache["cached_stroke_statistics"][:, -2:]  # the better rhythm's 0, the other's above it
        assert excess.min(dim=1).values.eq(0).all() and excess.max(dim=1).values.gt(0).all()
    # What the cache depends on: another onset threshold (or stroke head) gives other statistics, another cache.
    before = BackboneOutputs(model, adapter, "stroke_statistics").digest()
    model.config.stroke_threshold += 0.1
    assert BackboneOutputs(model, adapter, "stroke_statistics").digest() != before
    before = BackboneOutputs(model, adapter, "stroke_statistics").digest()  # and other rhythm patterns
    model.config.rhythm_patterns = {"origin_ms": 0.0, "cycle_beats": [2.0], "positions_beats": [[0.0, 0.5, 1.0]]}
    assert BackboneOutputs(model, adapter, "stroke_statistics").digest() != before
    before = BackboneOutputs(model, adapter, "stroke_statistics").digest()  # and reading the evidence or not
    model.config.pattern_evidence = not evidence
    assert BackboneOutputs(model, adapter, "stroke_statistics").digest() != before
    before = BackboneOutputs(model, adapter, "stroke_statistics").digest()  # and the pattern matches or not
    model.config.pattern_matches = not evidence
    assert BackboneOutputs(model, adapter, "stroke_statistics").digest() != before


def test_a_take_longer_than_the_models_window_is_read_whole_in_windows_for_its_statistics(stroke_run, synthetic_dir):
    from sousa_hf.backbone_cache import cache_backbone_outputs
    from sousa_hf.backbones import load_stroke_front_end
    from sousa_hf.data.audio import decode_audio
    from sousa_hf.stroke_statistics import statistic_names
    from sousa_hf.stroke_transcription import take_statistics, transcribe_take

    def stroke_model(window):  # the stroke run's front end, reading takes in windows of `window` seconds
        model, adapter = build_model("overall_score", "cnn:tiny", backbone_config={"time_pooling": False},
                                     feature_extractor_config={"hop_length": 220, "feature_size": 32},
                                     temporal_blocks=2, pooling="stroke_statistics", use_tempo=True,
                                     length=LengthPolicy(max_seconds=window))
        load_stroke_front_end(model, str(stroke_run), adapter.feature_extractor)
        model.config.stroke_threshold = 0.05  # an untrained head's peaks are low: enough strokes to compare
        return model.eval(), adapter

    windowed_model, windowed = stroke_model(1.5)
    split = load_sousa(synthetic_dir, split="validation").select(range(2))
    row = split[0]
    array, rate = decode_audio(row["audio"], row["sample_id"])
    take = windowed.prepare(array, rate, crop=False)
    assert take.size > 2.5 * windowed.max_seconds * windowed.sampling_rate  # read in three windows or more
    in_windows = transcribe_take(windowed_model, windowed, take, row["tempo_bpm"])
    times = in_windows["time_ms"]
    # Every window answers for its own stretch of the take: strokes over all of it, in order, none read twice
    # where windows overlap (the CNN's group norms see each window alone, so its peaks are not the whole take's).
    assert len(times) > 10 and times.max() > 2 * 1000 * windowed.max_seconds
    assert np.all(np.diff(times) > 0)
    one_window = transcribe_take(windowed_model, windowed, windowed.prepare(array, rate), row["tempo_bpm"])
    assert len(one_window["time_ms"]) < len(times)
    # The cache of a windowed model holds the whole take's statistics, not its evaluation crop's.
    cached = cache_backbone_outputs(split, windowed_model, windowed).with_format("numpy")[0]
    expected = take_statistics(in_windows, row["tempo_bpm"]).numpy()
    np.testing.assert_allclose(cached["cached_stroke_statistics"], expected, rtol=1e-5, atol=1e-5)
    assert cached["cached_stroke_statistics"][statistic_names(True).index("strokes")] == len(times)
    # The head's frame outputs over the whole take, each frame from the window that answers for it: every stroke
    # found sits on a frame whose onset probability reached the threshold.
    fs = windowed_model.config.frame_seconds
    probability = in_windows["frame_onset_probability"]
    assert len(probability) == round(take.size / windowed.sampling_rate / fs) + 1
    assert len(in_windows["frame_velocity"]) == len(probability)
    on_stroke = probability[np.round(times / 1000.0 / fs).astype(int)]
    assert np.all(on_stroke >= windowed_model.config.stroke_threshold - 1e-6)
    assert probability.mean() < on_stroke.mean()
    # predict judges the take as the cache did: from all its strokes.
    (result,) = SousaPredictor(windowed_model, windowed).predict([(array, rate)], tempo_bpm=row["tempo_bpm"])
    with torch.no_grad():
        score = windowed_model(cached_stroke_statistics=torch.from_numpy(expected)[None]).scores[0, 0]
    assert result["scores"]["overall_score"] == pytest.approx(float(score), abs=1e-4)
    assert len(result["strokes"]) == len(times)


def test_a_clip_model_takes_a_cluster_head_from_its_stroke_model_and_keeps_it(synthetic_dir, tmp_path):
    from sousa_hf.backbones import load_stroke_front_end

    front_end = dict(backbone_config={"time_pooling": False}, temporal_blocks=2,
                     feature_extractor_config={"hop_length": 220, "feature_size": 32},
                     length=LengthPolicy(max_seconds=None))
    stroke_model, stroke_adapter = build_model("strokes", "cnn:tiny", stroke_cluster_ms=10, **front_end)
    assert stroke_model.strokes.out_features == 5
    assert list(stroke_model.config.label2id)[3:] == ["followers", "follower_spacing"]
    stroke_model.save_pretrained(tmp_path / "strokes")
    stroke_adapter.feature_extractor.save_pretrained(tmp_path / "strokes")
    model, adapter = build_model("overall_score", "cnn:tiny", pooling="stroke_statistics", use_tempo=True, **front_end)
    assert model.strokes.out_features == 3
    load_stroke_front_end(model, str(tmp_path / "strokes"), adapter.feature_extractor)
    assert model.config.stroke_cluster_ms == 10 and torch.equal(model.strokes.weight, stroke_model.strokes.weight)
    model.save_pretrained(tmp_path / "clip")
    reloaded = type(model).from_pretrained(tmp_path / "clip")
    assert reloaded.strokes.out_features == 5 and torch.equal(reloaded.strokes.weight, model.strokes.weight)
    split = load_sousa(synthetic_dir, split="validation").select(range(2))
    batch = SousaCollator(adapter)([prepare_inputs(split, adapter)[i] for i in range(2)])
    reloaded.eval()
    with torch.no_grad():
        output = reloaded(**{k: v for k, v in batch.items() if k != "labels"})
    assert output.stroke_logits.shape[-1] == 5 and output.predictions.isfinite().all()


def test_a_clip_model_of_other_stroke_statistics_is_refused_by_name_and_loads_with_its_own_code(tmp_path):
    from transformers import AutoModel

    from sousa_hf.stroke_statistics import statistic_names

    front_end = dict(backbone_config={"time_pooling": False}, feature_extractor_config={"hop_length": 220},
                     temporal_blocks=1, length=LengthPolicy(max_seconds=None))
    model, _ = build_model("overall_score", "cnn:tiny", pooling="stroke_statistics", use_tempo=True, **front_end)
    assert model.config.stroke_statistics == list(statistic_names(use_tempo=True))
    model.save_pretrained(tmp_path / "now")
    assert type(model).from_pretrained(tmp_path / "now").config.stroke_statistics == model.config.stroke_statistics
    # A model trained by a version that computed one statistic fewer (its config and its own code say so).
    older = tmp_path / "older"
    model.save_pretrained(older)
    config = json.loads((older / "config.json").read_text())
    config["stroke_statistics"] = [name for name in config["stroke_statistics"] if name != "grace_per_beat"]
    (older / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"reads 67 stroke statistics .* computes 68 \(new here: grace_per_beat\)"
                                         r".*sousa-hf train recipes/stroke_statistics.yaml.*trust_remote_code=True"):
        AutoModel.from_pretrained(older)
    # The weights of that version, loaded by the code saved beside them (as the message says: without sousa_hf).
    weights = load_file(older / "model.safetensors")
    assert config["stroke_statistics"] == list(statistic_names(use_tempo=True))[:-1]  # the last one left out
    for name in ("statistics_mean", "statistics_std", "layers.0.weight"):
        key = f"stroke_statistics.{name}"
        weights[key] = weights[key][..., :-1].contiguous()
    save_file(weights, older / "model.safetensors", metadata={"format": "pt"})
    code = (older / "stroke_statistics.py").read_text()
    (older / "stroke_statistics.py").write_text(code.replace('    "grace_per_beat",\n', ""))
    assert "grace_per_beat" not in (older / "stroke_statistics.py").read_text()
    load = ("import sys, transformers; model = transformers.AutoModel.from_pretrained(sys.argv[1], "
            "trust_remote_code=True); assert 'sousa_hf' not in sys.modules; "
            "print(model.stroke_statistics.statistics_mean.numel())")
    loaded = subprocess.run([sys.executable, "-c", load, str(older)], capture_output=True, text=True,
                            env={**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules")}, cwd=tmp_path)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert loaded.stdout.split()[-1] == "67"


def test_a_stroke_model_of_another_front_end_is_refused_naming_the_difference(stroke_run, synthetic_dir, tmp_path):
    recipe, training = load_recipe(RECIPES / "stroke_statistics.yaml",
                                   _stroke_statistics_recipe(stroke_run, synthetic_dir, tmp_path, "temporal_blocks=3"))
    with pytest.raises(SousaDataError, match="temporal_blocks"):
        run(recipe, training)
    recipe, training = load_recipe(RECIPES / "stroke_statistics.yaml", _stroke_statistics_recipe(
        stroke_run, synthetic_dir, tmp_path / "gru", "temporal_gru=1"))
    with pytest.raises(SousaDataError, match="temporal_gru"):
        run(recipe, training)
    # Features of another mel range would reach the same weights without a word: refused too.
    recipe, training = load_recipe(RECIPES / "stroke_statistics.yaml", _stroke_statistics_recipe(
        stroke_run, synthetic_dir, tmp_path / "f_max", "feature_extractor_config.f_max=6000"))
    with pytest.raises(SousaDataError, match=r"feature_extractor_config\.f_max \(None there, 6000 here\)"):
        run(recipe, training)
    recipe, training = load_recipe(RECIPES / "stroke_statistics.yaml",
                                   _stroke_statistics_recipe(tmp_path / "untrained", synthetic_dir, tmp_path / "out"))
    with pytest.raises(SousaDataError, match="strokes_cnn.yaml"):
        run(recipe, training)
    with pytest.raises(SousaDataError, match="strokes_from"):
        load_recipe(RECIPES / "stroke_statistics.yaml", [f"output_dir={tmp_path}", "strokes_from=null"])
    with pytest.raises(SousaDataError, match="rhythm_patterns.*use_tempo: true"):
        load_recipe(RECIPES / "stroke_statistics.yaml", [f"output_dir={tmp_path}", "use_tempo=false"])


def test_the_ceiling_benchmark_describes_labelled_and_found_strokes_alike(stroke_run, synthetic_dir):
    from sousa_hf.data.rhythm_patterns import fit_rhythm_patterns
    from sousa_hf.stroke_statistics import statistic_names

    ceiling = load_benchmark("stroke_statistics_ceiling")
    data = load_sousa(synthetic_dir, "audio", strokes=True)
    patterns = fit_rhythm_patterns(data["train"])
    found = ceiling.found_statistics(str(stroke_run), data, use_tempo=True, rhythm_patterns=patterns)
    names = statistic_names(use_tempo=True, rhythm_patterns=True)
    row = found["validation"][0]
    assert len(row["cached_stroke_statistics"]) == len(names)
    labelled = dict(zip(names, ceiling.labelled_statistics(row, use_tempo=True, rhythm_patterns=patterns)))
    assert labelled["strokes"] == len(audible_onsets(row["strokes"], 1000.0 * row["duration_sec"])) > 0
    # The synthetic renderer places strokes near the grid and their notated positions: the labelled ones lie within
    # a few ms of both.
    assert labelled["grid_median_abs_ms"] < 30.0 and labelled["pattern_median_abs_ms"] < 30.0


def test_the_ceiling_benchmark_counts_each_players_takes_right():
    ceiling = load_benchmark("stroke_statistics_ceiling")
    counts = ceiling.right_by_profile(["p1", "p2", "p1", "p1"], np.array([True, False, False, True]))
    assert counts == {"p1": (2, 3), "p2": (0, 1)}


def test_the_benchmarks_clip_heads_fill_a_missing_statistic_and_name_the_heads_they_know():
    heads = load_benchmark("clip_heads")
    statistics = np.array([[0.0, 1.0], [1.0, np.nan], [2.0, 3.0], [3.0, 4.0]] * 5)
    for name in heads.HEAD_NAMES:
        fitted = heads.clip_head("regression", name).fit(statistics, statistics[:, 0])
        assert np.isfinite(fitted.predict(statistics)).all()
    with pytest.raises(ValueError, match="gradient boosting, MLP 256x2"):
        heads.clip_head("classification", "random forest")


def test_the_labelled_errors_benchmark_summarises_each_clips_strokes():
    import pandas as pd

    errors = load_benchmark("labelled_errors")
    strokes = pd.DataFrame({
        "sample_id": ["a", "a", "a", "b", "b"], "hand": ["R", "L", "R", "R", "L"],
        "timing_error_ms": [10.0, -20.0, 40.0, 0.0, 2.0], "velocity_error": [5, -5, 15, 0, -2],
        "actual_velocity": [100, 60, 110, 80, 80], "is_accent": [True, False, True, False, False],
        "flam_spacing_ms": [None, 30.0, None, None, None]})
    table = errors.error_statistics(strokes)
    a = table.loc["a"]
    assert a["timing_error_mean"] == pytest.approx(10.0) and a["timing_size_mean"] == pytest.approx(70 / 3)
    assert a["velocity_size_mean"] == pytest.approx(25 / 3) and a["accent_lift"] == pytest.approx(45.0)
    assert a["timing_size_mean_R"] == pytest.approx(25.0) and a["velocity_mean_L"] == pytest.approx(60.0)
    assert a["flam_spacing_mean"] == pytest.approx(30.0) and np.isnan(table.loc["b", "flam_spacing_mean"])
    assert np.isnan(table.loc["b", "accent_lift"])  # no accents to lift


def test_the_labelled_errors_benchmark_runs_on_a_sousa_folder(synthetic_dir):
    finished = subprocess.run([sys.executable, "benchmarks/labelled_errors.py", "--data", str(synthetic_dir)],
                              cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-3000:]
    rows = [line for line in finished.stdout.splitlines() if line.startswith("| skill_binary")]
    assert len(rows) == 2 and all(0.0 <= float(cell) <= 1.0 for row in rows for cell in row.split("|")[3:5])
    profiles = load_sousa(synthetic_dir, "labels_only")
    held_out = {p[:8] for name in ("validation", "test") for p in profiles[name]["profile_id"]}
    assert {line.split("|")[3].strip() for line in finished.stdout.splitlines()
            if line.startswith(("| validation", "| test"))} == held_out


def test_the_sample_rate_benchmark_scores_the_same_clips_at_both_rates(stroke_run, synthetic_dir, tmp_path, capsys,
                                                                        monkeypatch):
    shift = load_benchmark("sample_rate_shift")
    monkeypatch.setattr("sys.argv", ["sample_rate_shift.py", str(stroke_run), "--data", str(synthetic_dir),
                                     "--out", str(tmp_path), "--json", str(tmp_path / "table.json")])
    shift.main()
    stored = load_sousa(tmp_path / "as-stored", "audio", split="test", strokes=True)
    resampled = load_sousa(tmp_path / "16000", "audio", split="test", strokes=True)
    everything = load_sousa(synthetic_dir, "audio", strokes=True)
    assert stored["sample_id"] == resampled["sample_id"]
    assert sorted(stored["sample_id"]) == sorted(i for split in everything.values() for i in split["sample_id"])
    assert resampled[0]["strokes"] == stored[0]["strokes"]
    (high, high_rate), (low, low_rate) = (decode_audio(d[0]["audio"]) for d in (stored, resampled))
    assert (high_rate, low_rate) == (44100, 16000) and abs(low.size / low_rate - high.size / high_rate) < 1e-3
    table = json.loads((tmp_path / "table.json").read_text())[str(stroke_run)]
    assert set(table) == {"as stored", "16 kHz"}
    for metrics in table.values():
        assert 0.0 <= metrics["onset_f1_25ms"] <= 1.0
    assert "| onset_f1_25ms |" in capsys.readouterr().out


def test_the_head_average_benchmark_scores_two_saved_heads_and_the_mean_of_their_outputs(
        stroke_run, synthetic_dir, tmp_path, capsys, monkeypatch):
    from sousa_hf.evaluation import predict_saved_model
    from sousa_hf.metrics import task_metrics

    average = load_benchmark("head_average")
    for head, extra in (("mlp", ()), ("boosted_trees", ("boosted_trees={max_iter: 20, min_samples_leaf: 2}",))):
        recipe, training = load_recipe(RECIPES / "stroke_statistics.yaml", _stroke_statistics_recipe(
            stroke_run, synthetic_dir, tmp_path / head, "task=skill4", f"statistics_head={head}",
            "apply_default_filter=false", *extra))
        run(recipe, training)
    # The outputs it averages are the ones the saved model's own report was made of.
    task, predictions, labels, mask = predict_saved_model(str(tmp_path / "mlp"), str(synthetic_dir), "test")
    reported = json.loads((tmp_path / "mlp" / "results.json").read_text())["metrics"]
    assert task_metrics(task, predictions, labels, mask)["balanced_accuracy"] == pytest.approx(
        reported["balanced_accuracy"])
    # Classes: the mean of the probabilities, not of the logits, where one model's far-out logit would win alone.
    sure_of_2, likely_0 = np.array([[0.0, 0.0, 8.0]]), np.array([[3.0, 0.0, -20.0]])
    assert (sure_of_2 + likely_0).argmax() == 0 and average.mean_output(task, sure_of_2, likely_0).argmax() == 2
    assert np.exp(average.mean_output(task, sure_of_2, likely_0)).sum() == pytest.approx(1.0)
    monkeypatch.setattr(sys, "argv", ["head_average.py", str(tmp_path / "mlp"), str(tmp_path / "boosted_trees"),
                                      "--data", str(synthetic_dir)])
    average.main()
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("| validation", "| test"))]
    names = (str(tmp_path / "mlp"), str(tmp_path / "boosted_trees"), "mean of the two")
    assert [row.split(" | ")[0:2] for row in rows] == [[f"| {split}", name] for split in ("validation", "test")
                                                      for name in names]
    assert f"balanced_accuracy {reported['balanced_accuracy']:.3f}" in rows[3]
    with pytest.raises(SousaDataError, match="transcribes strokes"):
        predict_saved_model(str(stroke_run), str(synthetic_dir), "test")


@pytest.mark.parametrize("task", ["overall_score", "skill4"])
def test_a_clip_model_scores_its_stroke_statistics_with_boosted_trees_fitted_on_the_training_split(
        task, stroke_run, synthetic_dir, synthetic_take, tmp_path):
    from transformers import AutoModel

    from sousa_hf.evaluation import evaluate_saved_model
    from sousa_hf.model_card import make_model_card
    from sousa_hf.stroke_statistics import statistic_names

    recipe, training = load_recipe(RECIPES / "stroke_statistics.yaml", _stroke_statistics_recipe(
        stroke_run, synthetic_dir, tmp_path, f"task={task}", "statistics_head=boosted_trees",
        "boosted_trees={max_iter: 20, min_samples_leaf: 2}", "apply_default_filter=false"))
    results = run(recipe, training)
    (kept,) = results["boosted_trees_iterations"]
    assert 1 <= kept <= 20 and not (tmp_path / "trainer_state.json").exists()  # fitted, no gradient steps
    main = "eval_r2" if task == "overall_score" else "eval_balanced_accuracy"
    assert np.isfinite(results["validation_metrics"][main])
    trained = load_file(tmp_path / "model.safetensors")
    assert not trained["stroke_statistics.is_leaf"][:, 0].all()  # trees that split, saved with the model
    # The saved model (its trees, the head that sums them) scores the test split as the run did, and predicts.
    again = evaluate_saved_model(str(tmp_path), str(synthetic_dir), output_dir=str(tmp_path / "again"),
                                 apply_default_filter=False)
    assert again["metrics"] == pytest.approx(results["metrics"], abs=1e-6)
    (result,) = SousaPredictor.from_pretrained(str(tmp_path), device="cpu").predict_files(
        [synthetic_take], progress=False, tempo_bpm=100)
    assert (result["label"] is not None) if task == "skill4" else np.isfinite(result["scores"]["overall_score"])
    # Its own code (boosted_trees.py travels with the modelling file) gives the same outputs, without sousa_hf or
    # scikit-learn imported.
    statistics = torch.randn(3, len(statistic_names(use_tempo=True, rhythm_patterns=True)),
                             generator=torch.Generator().manual_seed(0))
    torch.save(statistics, tmp_path / "statistics.pt")
    model = AutoModel.from_pretrained(str(tmp_path)).eval()
    with torch.no_grad():
        ours = model(cached_stroke_statistics=statistics)
    expected = (ours.logits if task == "skill4" else ours.predictions).tolist()
    load = ("import sys, json, torch, transformers; model = transformers.AutoModel.from_pretrained(sys.argv[1], "
            "trust_remote_code=True).eval(); assert 'sousa_hf' not in sys.modules and 'sklearn' not in sys.modules; "
            "out = model(cached_stroke_statistics=torch.load(sys.argv[1] + '/statistics.pt')); "
            "print(json.dumps((out.logits if hasattr(out, 'logits') else out.predictions).tolist()))")
    loaded = subprocess.run([sys.executable, "-c", load, str(tmp_path)], capture_output=True, text=True,
                            env={**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules")}, cwd=tmp_path)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    np.testing.assert_allclose(json.loads(loaded.stdout.splitlines()[-1]), expected, atol=1e-6)
    assert "gradient-boosted trees" in str(make_model_card(tmp_path, "user/sousa-stroke-trees"))
