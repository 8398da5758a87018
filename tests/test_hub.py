"""The Hub round trip: model cards, `sousa-hf push` (dry run and upload), loading without `sousa_hf`,
`pipeline("audio-classification")`, and `sousa-hf predict`.

Uploads go to a local stand-in for the Hub's HTTP API (tests/hub_stand_in.py) driven by the real
huggingface_hub client in a fresh process; nothing of the suite is mocked.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr
import torch
from huggingface_hub import ModelCard
from transformers import AutoFeatureExtractor

from sousa_hf import build_model, decode_audio, load_sousa
from sousa_hf.cli import main as cli
from sousa_hf.hub import prepare_upload
from sousa_hf.model_card import make_model_card
from sousa_hf.pipeline_sousa import sousa_model_inputs
from sousa_hf.predict import SousaPredictor
from sousa_hf.recipe import load_recipe
from sousa_hf.train import run

from .hub_stand_in import HubStandIn
from .test_model_loading import _WITHOUT_SOUSA_HF
from .test_models import FAMILIES, POLICY

QUICKSTART = Path(__file__).resolve().parents[1] / "recipes" / "quickstart.yaml"
TINY = ["backbone=cnn:tiny", "backbone_config=null", "max_steps=2", "eval_strategy=steps", "eval_steps=2",
        "per_device_train_batch_size=4", "max_train_samples=8", "max_eval_samples=8", "length.max_seconds=3.0",
        "logging_steps=1"]
TOKEN, USER = "hf_sousa_test_token_0123456789", "tester"
UPLOADED = {"README.md", "config.json", "configuration_sousa.py", "modeling_sousa.py", "stroke_statistics.py",
            "boosted_trees.py", "feature_extraction_sousa.py", "model.safetensors", "preprocessor_config.json",
            "recipe.yaml", "results.json"}


def train_tiny(synthetic_dir: Path, output_dir: Path, task: str, *extra: str) -> Path:
    recipe, training = load_recipe(QUICKSTART, [f"task={task}", *TINY, f"data={synthetic_dir}",
                                                f"output_dir={output_dir}", *extra])
    run(recipe, training)
    return output_dir


@pytest.fixture(scope="module")
def trained(synthetic_dir, tmp_path_factory) -> dict[str, Path]:
    """A few steps of the smallest model for each kind of head, as `sousa-hf train` leaves them."""
    root = tmp_path_factory.mktemp("trained")
    return {task: train_tiny(synthetic_dir, root / task, task) for task in ("skill4", "overall_score", "multitask")}


@pytest.fixture(scope="module")
def audio_files(sample_dir, tmp_path_factory) -> dict[str, Path]:
    """Real SOUSA clips as a user has them: stereo FLAC at 44.1 kHz, mono WAV at 22.05 kHz, MP3 at 48 kHz,
    and a file that is not audio."""
    root = tmp_path_factory.mktemp("audio")
    rows = load_sousa(sample_dir, "audio", split="validation", decode=False).select(range(3))
    first = soundfile.read(_bytes_io(rows[0]["audio"]["bytes"]), dtype="float32", always_2d=True)
    assert first[0].shape[1] == 2  # the real data is stereo
    (root / "take-stereo.flac").write_bytes(rows[0]["audio"]["bytes"])
    mono, rate = decode_audio(rows[1]["audio"])
    soundfile.write(root / "take-22k.wav", soxr.resample(mono, rate, 22050), 22050, subtype="PCM_16")
    mono, rate = decode_audio(rows[2]["audio"])
    soundfile.write(root / "take-48k.mp3", soxr.resample(mono, rate, 48000), 48000, format="MP3")
    (root / "notes.wav").write_text("not audio")
    return {path.name: path for path in root.iterdir()}


def _bytes_io(data: bytes):
    import io

    return io.BytesIO(data)


# --------------------------------------------------------------------------- model cards


def test_the_card_metadata_is_valid_hub_metadata_and_holds_results_json(trained, tmp_path):
    for task, folder in trained.items():
        card = make_model_card(folder, f"{USER}/sousa-{task}")
        card.save(tmp_path / f"{task}.md")
        parsed = ModelCard.load(tmp_path / f"{task}.md")  # huggingface_hub's own parser
        data = parsed.data
        # Trained on the suite's synthetic data, not on SOUSA: the card does not claim the dataset.
        assert data.datasets is None and data.license == "mit" and data.library_name == "transformers"
        assert "- **Data license**: MIT (made by sousa-hf" in parsed.text
        assert data.pipeline_tag == ("audio-classification" if task == "skill4" else "other")
        results = json.loads((folder / "results.json").read_text())
        reported = {r.metric_type: r.metric_value for r in data.eval_results}
        expected = {name: value for name, value in results["metrics"].items()
                    if value is not None and not math.isnan(value)}
        assert reported == expected
        assert {r.dataset_split for r in data.eval_results} == {"test"}
        assert data.model_name == f"sousa-{task}"
        text = " ".join(parsed.text.split())
        assert "not been validated on human performances" in text and "Per skill tier" in text
        assert f'"{USER}/sousa-{task}"' in text  # the loading example names the repository


def test_the_card_names_a_pretrained_base_model_and_the_default_filter(trained, tmp_path):
    folder = tmp_path / "model"
    prepare_upload(trained["skill4"], folder, f"{USER}/x")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "backbone": "facebook/hubert-base-ls960"}))
    card = make_model_card(folder, f"{USER}/sousa-skill4-hubert")
    assert card.data.base_model == "facebook/hubert-base-ls960"
    assert "`tier_confidence > 0.5`" in card.text
    assert "| learning_rate | `0.002` |" in card.text


def test_a_run_without_results_cannot_make_a_card(trained, tmp_path):
    folder = tmp_path / "model"
    prepare_upload(trained["overall_score"], folder, f"{USER}/x")
    (folder / "results.json").unlink()
    with pytest.raises(Exception, match="results.json is missing; run `sousa-hf evaluate MODEL_DIR --data SOURCE "
                                        "--output-dir MODEL_DIR`"):
        make_model_card(folder)


def test_a_card_without_the_recipe_names_the_evaluated_data_and_no_hyperparameters(trained, tmp_path):
    folder = tmp_path / "model"
    prepare_upload(trained["skill4"], folder, f"{USER}/x")
    (folder / "recipe.yaml").unlink()
    results = json.loads((folder / "results.json").read_text())
    (folder / "results.json").write_text(json.dumps({**results, "data": "/data/sousa-copy", "data_origin": "sousa"}))
    card = make_model_card(folder)
    training_data = card.text.split("## Training data")[1].split("## ")[0]
    assert "a local copy of SOUSA (`sousa-copy`)" in training_data and "synthetic" not in training_data
    assert card.data.datasets == ["zkeown/sousa"] and "**Data license**: MIT (SOUSA's license)" in training_data
    assert "recipe.yaml" not in card.text and "hyper-parameters are not known here" in card.text
    assert card.data.eval_results[0].dataset_type == "local-sousa"


# --------------------------------------------------------------------------- push --dry-run


def test_dry_run_writes_exactly_the_repository_files(trained, tmp_path, capsys):
    out = tmp_path / "upload"
    assert cli(["push", str(trained["skill4"]), "--repo-id", f"{USER}/sousa-skill4", "--dry-run", str(out)]) == 0
    files = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert files - {f for f in files if f.startswith("metrics/")} == UPLOADED | {"pipeline_sousa.py"}
    assert "metrics/confusion_matrix.png" in files and "metrics/per_skill_tier.json" in files
    assert not any("checkpoint" in f or f == "training_args.bin" for f in files)
    config = json.loads((out / "config.json").read_text())
    assert config["auto_map"]["AutoModelForAudioClassification"] == "modeling_sousa.SousaForAudioClassification"
    assert config["custom_pipelines"]["audio-classification"]["impl"] == \
        "pipeline_sousa.SousaAudioClassificationPipeline"
    extractor = json.loads((out / "preprocessor_config.json").read_text())
    assert (extractor["sousa_adapter"], extractor["sousa_max_seconds"]) == ("cnn", 3.0)
    for name in files - {"README.md"}:
        assert (out / name).read_bytes() == (trained["skill4"] / name).read_bytes(), name
    regression = tmp_path / "regression"
    assert cli(["push", str(trained["overall_score"]), "--repo-id", f"{USER}/score", "--dry-run", str(regression)]) == 0
    assert not (regression / "pipeline_sousa.py").exists()  # no stock pipeline for scores: the predictor serves them
    assert "custom_pipelines" not in json.loads((regression / "config.json").read_text())


def test_push_refuses_bad_arguments_with_clear_messages(trained, tmp_path, capsys):
    assert cli(["push", str(trained["skill4"]), "--repo-id", "no-namespace", "--dry-run", str(tmp_path / "a")]) == 2
    assert "--repo-id must be USER/NAME" in capsys.readouterr().err
    assert cli(["push", str(tmp_path), "--repo-id", f"{USER}/x", "--dry-run", str(tmp_path / "b")]) == 2
    assert "holds no config.json" in capsys.readouterr().err


# --------------------------------------------------------------------------- the pipeline's preprocessing


@pytest.mark.parametrize("family", FAMILIES)
def test_the_remote_pipeline_makes_the_adapters_inputs(sample_dir, tmp_path, family):
    """pipeline_sousa.py rebuilds the adapter's evaluation path from the saved extractor config alone."""
    _, adapter = build_model("skill4", f"{family}:tiny", length=POLICY)
    adapter.save_pretrained(tmp_path)
    extractor = AutoFeatureExtractor.from_pretrained(tmp_path, trust_remote_code=True)
    rows = load_sousa(sample_dir, "audio", split="validation").select([0, 7])  # 4.1 s (cropped to 3 s) and 2.4 s
    for row in rows:
        audio, rate = decode_audio(row["audio"])
        stereo = np.stack([audio, audio])
        expected = adapter([stereo], sampling_rate=rate)
        got = sousa_model_inputs(extractor, audio, rate)
        assert set(got) == set(expected), family
        for key in expected:
            torch.testing.assert_close(got[key].to(expected[key].dtype), expected[key], rtol=0, atol=1e-5,
                                       msg=f"{family} {key}")


# --------------------------------------------------------------------------- loading without sousa_hf

_REMOTE_PREDICTIONS = """
import json, sys, torch
import numpy as np, soundfile
from transformers import AutoModel, AutoModelForAudioClassification, pipeline
classifier_dir, regression_dir, files, reference = sys.argv[1:5]
files = json.loads(files)
model = AutoModelForAudioClassification.from_pretrained(classifier_dir, trust_remote_code=True)
classify = pipeline("audio-classification", model=classifier_dir, trust_remote_code=True)
results = {"module": type(model).__module__.split(".")[0], "pipeline": type(classify).__name__}
results["files"] = [{item["label"]: item["score"] for item in classify(path)} for path in files]
array, rate = soundfile.read(files[0], dtype="float32")
results["dict"] = {item["label"]: item["score"] for item in classify({"array": array.T, "sampling_rate": rate})}
reference = torch.load(reference)
with torch.no_grad():
    scores = AutoModel.from_pretrained(regression_dir, trust_remote_code=True)(**reference["inputs"]).scores
results["regression_error"] = (scores - reference["scores"]).abs().max().item()
print("RESULT=" + json.dumps(results))
"""


def test_a_pushed_folder_predicts_the_same_without_sousa_hf(trained, audio_files, tmp_path):
    """Load the dry-run folders where `sousa_hf` cannot be imported: the pipeline on real clips (files at
    any rate, stereo, and an array dict) gives the in-process predictor's probabilities."""
    classifier, regression = tmp_path / "classifier", tmp_path / "regression"
    prepare_upload(trained["skill4"], classifier, f"{USER}/c")
    prepare_upload(trained["overall_score"], regression, f"{USER}/r")
    files = [str(audio_files[name]) for name in ("take-stereo.flac", "take-22k.wav", "take-48k.mp3")]
    expected = SousaPredictor.from_pretrained(str(classifier)).predict_files(files, progress=False)
    scorer = SousaPredictor.from_pretrained(str(regression))
    audio = decode_audio({"path": files[0]})
    inputs = dict(scorer.adapter([scorer.adapter.prepare(*audio)], sampling_rate=scorer.adapter.sampling_rate))
    with torch.no_grad():
        torch.save({"inputs": inputs, "scores": scorer.model(**inputs).scores}, tmp_path / "reference.pt")

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(_WITHOUT_SOUSA_HF) + _REMOTE_PREDICTIONS,
                           str(classifier), str(regression), json.dumps(files), str(tmp_path / "reference.pt")],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    remote = json.loads(done.stdout.rsplit("RESULT=", 1)[1])
    assert remote["module"] == "transformers_modules" and remote["pipeline"] == "SousaAudioClassificationPipeline"
    for got, want in zip(remote["files"], expected):
        assert got.keys() == want["scores"].keys() and max(got, key=got.get) == want["label"]
        assert max(abs(got[label] - want["scores"][label]) for label in got) < 1e-5
    assert max(abs(remote["dict"][k] - expected[0]["scores"][k]) for k in remote["dict"]) < 1e-5
    assert remote["regression_error"] < 1e-5


# --------------------------------------------------------------------------- sousa-hf predict


def test_predict_json_labels_files_and_folders_and_skips_bad_files(trained, audio_files, capsys):
    folder = audio_files["notes.wav"].parent
    code = cli(["predict", str(trained["skill4"]), str(folder), "/no/such/take.wav", "--json"])
    results = json.loads(capsys.readouterr().out)
    assert code == 1  # some files failed; the rest were still predicted
    by_name = {Path(result["file"]).name: result for result in results}
    assert set(by_name) == {"take-stereo.flac", "take-22k.wav", "take-48k.mp3", "notes.wav", "take.wav"}
    assert "not a readable audio file" in by_name["notes.wav"]["error"]
    assert by_name["take.wav"]["error"] == "no such file"
    for name in ("take-stereo.flac", "take-22k.wav", "take-48k.mp3"):
        result = by_name[name]
        assert result["label"] in ("beginner", "intermediate", "advanced", "professional")
        assert set(result["scores"]) == {"beginner", "intermediate", "advanced", "professional"}
        assert sum(result["scores"].values()) == pytest.approx(1.0, abs=1e-5)


def test_predict_gives_scores_on_0_100_for_score_models(trained, audio_files, capsys):
    take = str(audio_files["take-stereo.flac"])
    assert cli(["predict", str(trained["multitask"]), take, "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert result["file"] == take and result["label"] is None
    assert list(result["scores"]) == ["overall_score", "tempo_stability", "flam_quality", "diddle_quality",
                                      "roll_sustain"]
    single = SousaPredictor.from_pretrained(str(trained["overall_score"])).predict_files([take], progress=False)
    assert list(single[0]["scores"]) == ["overall_score"]
    model = SousaPredictor.from_pretrained(str(trained["overall_score"]))
    audio = decode_audio({"path": take})
    (direct,) = model.predict([audio])
    assert direct["scores"]["overall_score"] == pytest.approx(single[0]["scores"]["overall_score"], abs=1e-4)


# --------------------------------------------------------------------------- upload to a Hub stand-in


def _sousa_hf(hub: HubStandIn, home: Path, *args: str, token: str | None = TOKEN) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sousa_hf.cli", *args], env=hub.client_env(home, token),
                          capture_output=True, text=True, timeout=600)


def test_push_uploads_the_dry_run_folder_and_loads_back_by_hub_id(trained, audio_files, tmp_path):
    with HubStandIn(tokens={TOKEN: USER}) as hub:
        home = tmp_path / "home"
        repo_id = f"{USER}/sousa-skill4"
        done = _sousa_hf(hub, home, "push", str(trained["skill4"]), "--repo-id", repo_id, "--private")
        assert done.returncode == 0, done.stderr[-3000:]
        dry = prepare_upload(trained["skill4"], tmp_path / "dry", repo_id)
        expected = {str(p.relative_to(dry)): p.read_bytes() for p in dry.rglob("*") if p.is_file()}
        uploaded = hub.files(repo_id)
        uploaded.pop(".gitattributes")
        assert uploaded == expected
        assert hub.repo(repo_id).private
        for request in hub.requests:  # the token travels in the Authorization header only
            assert TOKEN not in request.path
        assert TOKEN not in done.stdout + done.stderr

        again = _sousa_hf(hub, home, "push", str(trained["skill4"]), "--repo-id", repo_id)
        assert again.returncode == 2 and f"{repo_id} already exists on the Hub; pass --exist-ok" in again.stderr
        assert _sousa_hf(hub, home, "push", str(trained["skill4"]), "--repo-id", repo_id, "--exist-ok").returncode == 0
        anonymous = _sousa_hf(hub, tmp_path / "anonymous", "push", str(trained["skill4"]), "--repo-id", repo_id,
                              token=None)
        assert anonymous.returncode == 2 and "no Hugging Face token: run `hf auth login`" in anonymous.stderr
        refused = _sousa_hf(hub, home, "push", str(trained["skill4"]), "--repo-id", repo_id, token="hf_wrong")
        assert refused.returncode == 2 and "refused the token (401)" in refused.stderr
        elsewhere = _sousa_hf(hub, home, "push", str(trained["skill4"]), "--repo-id", "someone-else/model")
        assert elsewhere.returncode == 2 and "may not write to someone-else/model (403)" in elsewhere.stderr

        take = str(audio_files["take-stereo.flac"])
        loaded = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(_WITHOUT_SOUSA_HF) + textwrap.dedent(f"""
                import json
                from transformers import pipeline
                classify = pipeline("audio-classification", model="{repo_id}", trust_remote_code=True)
                print("RESULT=" + json.dumps({{i["label"]: i["score"] for i in classify("{take}")}}))
            """)], env=hub.client_env(home, TOKEN), capture_output=True, text=True, cwd=tmp_path, timeout=600)
        assert loaded.returncode == 0, loaded.stderr[-3000:]
        from_hub = json.loads(loaded.stdout.rsplit("RESULT=", 1)[1])
        (local,) = SousaPredictor.from_pretrained(str(trained["skill4"])).predict_files([take], progress=False)
        assert max(abs(from_hub[k] - local["scores"][k]) for k in from_hub) < 1e-5

        # A score model by Hub id, served by `sousa-hf predict`.
        assert _sousa_hf(hub, home, "push", str(trained["multitask"]), "--repo-id", f"{USER}/scores").returncode == 0
        predicted = _sousa_hf(hub, home, "predict", f"{USER}/scores", take, "--json")
        assert predicted.returncode == 0, predicted.stderr[-3000:]
        (remote,) = json.loads(predicted.stdout)
        (local,) = SousaPredictor.from_pretrained(str(trained["multitask"])).predict_files([take], progress=False)
        assert remote["label"] is None and remote["scores"].keys() == local["scores"].keys()
        assert max(abs(remote["scores"][k] - local["scores"][k]) for k in local["scores"]) < 1e-3  # on 0-100


def test_a_recipe_with_push_to_hub_uploads_the_same_folder(synthetic_dir, tmp_path):
    with HubStandIn(tokens={TOKEN: USER}) as hub:
        output_dir = tmp_path / "run"
        overrides = [f"--set={item}" for item in
                     ["task=skill_binary", *TINY, f"data={synthetic_dir}", f"output_dir={output_dir}",
                      "push_to_hub=true", "hub_model_id=sousa-binary", f"hub_token={TOKEN}"]]
        done = _sousa_hf(hub, tmp_path / "home", "train", str(QUICKSTART), *overrides, token=None)
        assert done.returncode == 0, done.stderr[-3000:]
        assert TOKEN not in done.stdout + done.stderr
        repo_id = f"{USER}/sousa-binary"
        dry = prepare_upload(output_dir, tmp_path / "dry", repo_id)
        expected = {str(p.relative_to(dry)): p.read_bytes() for p in dry.rglob("*") if p.is_file()}
        uploaded = hub.files(repo_id)
        uploaded.pop(".gitattributes")
        assert uploaded == expected
        # The token given in the recipe is in no file of the run (checkpoints' training_args.bin included)
        # and in no file of any commit.
        on_disk = [path for path in output_dir.rglob("*") if path.is_file() and TOKEN.encode() in path.read_bytes()]
        assert not on_disk and list(output_dir.glob("checkpoint-*/training_args.bin"))
        committed = hub.repo(repo_id).commits
        assert not [(c.title, name) for c in committed for name, data in c.files.items() if TOKEN.encode() in data]
        commits = [r for r in hub.requests if r.method == "POST" and "/commit/" in r.path]
        assert len(commits) == 1  # one push, at the end (hub_strategy "end")

        # Another run pushing to the same repository is refused before it trains.
        again = _sousa_hf(hub, tmp_path / "home", "train", str(QUICKSTART),
                          *[o.replace(str(output_dir), str(tmp_path / "again")) for o in overrides], token=None)
        assert again.returncode == 2
        assert f"{repo_id} already exists on the Hub and holds" in again.stderr and "hub_exist_ok" in again.stderr
        assert not (tmp_path / "again").exists()


def test_a_recipe_with_push_to_hub_and_no_token_fails_before_training(synthetic_dir, tmp_path):
    with HubStandIn(tokens={TOKEN: USER}) as hub:
        done = _sousa_hf(hub, tmp_path / "home", "train", str(QUICKSTART), f"--set=data={synthetic_dir}",
                         f"--set=output_dir={tmp_path / 'run'}", "--set=push_to_hub=true", token=None)
        assert done.returncode == 2 and "no Hugging Face token" in done.stderr
        assert not (tmp_path / "run").exists()
