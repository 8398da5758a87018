"""Saving and loading SOUSA models: same process, a fresh process through the Auto classes, remote code
without `sousa_hf`, and backbones from local checkpoints (what a Hub id resolves to)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import (
    ASTConfig,
    ASTFeatureExtractor,
    ASTModel,
    AutoModel,
    AutoModelForAudioClassification,
    ClapConfig,
    ClapFeatureExtractor,
    ClapModel,
    HubertConfig,
    HubertModel,
    Wav2Vec2Config,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2Model,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperModel,
)

from sousa_hf import LengthPolicy, build_model, load_sousa
from sousa_hf.backbones import TINY_CONFIGS

from .test_models import FAMILIES, POLICY, TASKS, real_batch

OUTPUT = {"classification": "logits", "regression": "predictions", "multitask": "predictions"}
# The weights come back bit for bit; CPU kernels may round the last bit differently on tensors read
# from safetensors (their memory alignment picks the SIMD path), so outputs agree to float32 rounding.
ROUNDING = 1e-6


@pytest.fixture(scope="module")
def saved_models(sample_dir, tmp_path_factory):
    """Every family x head, saved with its adapter, a real batch and the model's outputs on it."""
    validation = load_sousa(sample_dir, "audio", split="validation")
    root = tmp_path_factory.mktemp("saved")
    saved = {}
    for family in FAMILIES:
        for kind, task in TASKS.items():
            torch.manual_seed(0)
            model, adapter = build_model(task, f"{family}:tiny", length=POLICY)
            model.eval()
            batch = real_batch(validation, task, adapter)
            folder = root / f"{family}-{kind}"
            model.save_pretrained(folder)
            adapter.save_pretrained(folder)
            inputs = {k: v for k, v in batch.items() if k not in ("labels", "labels_mask")}
            with torch.no_grad():
                expected = model(**inputs)[OUTPUT[kind]]
            torch.save({"inputs": inputs, "expected": expected, "weights": model.state_dict()},
                       folder / "reference.pt")
            saved[(family, kind)] = folder
    return saved


@pytest.mark.parametrize("kind", list(TASKS))
@pytest.mark.parametrize("family", FAMILIES)
def test_from_pretrained_gives_identical_outputs(saved_models, family, kind):
    folder = saved_models[(family, kind)]
    reference = torch.load(folder / "reference.pt")
    model = AutoModel.from_pretrained(folder).eval()
    assert type(model).__name__ == json.loads((folder / "config.json").read_text())["architectures"][0]
    loaded = model.state_dict()
    assert loaded.keys() == reference["weights"].keys()
    for name, tensor in reference["weights"].items():
        torch.testing.assert_close(loaded[name], tensor, rtol=0, atol=0, msg=name)
    with torch.no_grad():
        got = model(**reference["inputs"])[OUTPUT[kind]]
    torch.testing.assert_close(got, reference["expected"], rtol=0, atol=ROUNDING)
    if kind == "classification":
        assert isinstance(AutoModelForAudioClassification.from_pretrained(folder), type(model))


def test_a_tiny_model_is_a_few_hundred_kilobytes(saved_models):
    sizes = {f"{family}-{kind}": os.path.getsize(folder / "model.safetensors")
             for (family, kind), folder in saved_models.items()}
    assert max(sizes.values()) < 512 * 1024, sizes


# Loads every saved folder, compares with the reference outputs and prints the worst difference.
_LOAD_ALL = """
import json, sys, torch
from transformers import AutoModel, AutoModelForAudioClassification
folders, output, remote = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3] == "remote"
worst, classes = 0.0, set()
for folder, kind in folders:
    reference = torch.load(folder + "/reference.pt")
    auto = AutoModelForAudioClassification if kind == "classification" else AutoModel
    model = auto.from_pretrained(folder, trust_remote_code=remote).eval()
    classes.add(type(model).__module__.split(".")[0])
    with torch.no_grad():
        got = model(**reference["inputs"])[output[kind]]
    worst = max(worst, (got - reference["expected"]).abs().max().item())
print(json.dumps({"worst": worst, "modules": sorted(classes)}))
"""

# Run first: makes `sousa_hf` impossible to import, as on a machine without it.
_WITHOUT_SOUSA_HF = """
import sys
class _NoSousaHF:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "sousa_hf":
            raise ImportError("sousa_hf is not installed here")
sys.meta_path.insert(0, _NoSousaHF())
try:
    import sousa_hf
    raise SystemExit("sousa_hf is importable")
except ImportError:
    pass
"""


def _load_in_fresh_process(saved_models, tmp_path, prelude: str, mode: str) -> dict:
    folders = [(str(folder), kind) for (_, kind), folder in saved_models.items()]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(prelude) + _LOAD_ALL, json.dumps(folders),
                          json.dumps(OUTPUT), mode], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_a_fresh_process_loads_every_model_through_the_auto_classes(saved_models, tmp_path):
    result = _load_in_fresh_process(saved_models, tmp_path, "import sousa_hf\n", "local")
    assert result["modules"] == ["sousa_hf"] and result["worst"] <= ROUNDING


def test_remote_code_loads_every_model_without_sousa_hf(saved_models, tmp_path):
    result = _load_in_fresh_process(saved_models, tmp_path, _WITHOUT_SOUSA_HF, "remote")
    assert result["modules"] == ["transformers_modules"] and result["worst"] <= ROUNDING


def test_a_saved_model_names_its_remote_code(saved_models):
    folder = saved_models[("cnn", "classification")]
    config = json.loads((folder / "config.json").read_text())
    assert config["auto_map"] == {"AutoConfig": "configuration_sousa.SousaConfig",
                                  "AutoModel": "modeling_sousa.SousaForAudioClassification",
                                  "AutoModelForAudioClassification": "modeling_sousa.SousaForAudioClassification"}
    assert (config["adapter"], config["sampling_rate"], config["max_seconds"]) == ("cnn", 44100, 3.0)
    assert {"configuration_sousa.py", "modeling_sousa.py", "feature_extraction_sousa.py"} <= set(os.listdir(folder))
    regression = json.loads((saved_models[("ast", "regression")] / "config.json").read_text())
    assert regression["auto_map"]["AutoModel"] == "modeling_sousa.SousaForScoreRegression"


# --------------------------------------------------------------------------- backbones from checkpoints


def _save_checkpoint(family: str, folder) -> torch.nn.Module:
    """A tiny pretrained-style checkpoint (model + extractor) as a Hub repository holds it."""
    torch.manual_seed(1)
    tiny = TINY_CONFIGS[family]
    if family == "wav2vec2":
        model, extractor = Wav2Vec2Model(Wav2Vec2Config(**tiny)), Wav2Vec2FeatureExtractor()
    elif family == "hubert":
        model, extractor = HubertModel(HubertConfig(**tiny)), Wav2Vec2FeatureExtractor()
    elif family == "whisper":
        model, extractor = WhisperModel(WhisperConfig(**tiny)), WhisperFeatureExtractor()
    elif family == "ast":
        model, extractor = ASTModel(ASTConfig(**tiny)), ASTFeatureExtractor()
    else:
        text = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37)
        config = ClapConfig(text_config=text, audio_config=TINY_CONFIGS["clap"], projection_dim=16)
        model, extractor = ClapModel(config), ClapFeatureExtractor(truncation="rand_trunc")
    model.save_pretrained(folder)
    extractor.save_pretrained(folder)
    return model


@pytest.mark.parametrize("family", ["wav2vec2", "hubert", "whisper", "ast", "clap"])
def test_a_checkpoint_backbone_keeps_its_weights(sample_dir, tmp_path, family):
    pretrained = _save_checkpoint(family, tmp_path / "checkpoint")
    model, adapter = build_model("skill_binary", str(tmp_path / "checkpoint"), length=LengthPolicy(max_seconds=5))
    assert adapter.name == family and model.config.backbone == str(tmp_path / "checkpoint")
    source = {"whisper": pretrained.get_encoder() if family == "whisper" else None,
              "clap": pretrained.audio_model if family == "clap" else None}.get(family) or pretrained
    ours = model.sousa.backbone.state_dict()
    for name, tensor in source.state_dict().items():
        if family == "whisper" and name == "embed_positions.weight":  # sliced to the 5 s window
            torch.testing.assert_close(ours[name], tensor[:250], rtol=0, atol=0)
        elif family == "ast" and name == "embeddings.position_embeddings":  # resampled to 500 frames
            assert tensor.shape[1] == 2 + 12 * 101 and ours[name].shape[1] == 2 + 12 * 49
            torch.testing.assert_close(ours[name][:, :2], tensor[:, :2], rtol=0, atol=0)
        else:
            torch.testing.assert_close(ours[name], tensor, rtol=0, atol=0, msg=name)
    validation = load_sousa(sample_dir, "audio", split="validation")
    outputs = model(**real_batch(validation, "skill_binary", adapter))
    assert torch.isfinite(outputs.loss)
    if family == "clap":
        assert model.config.backbone_config.enable_fusion is False  # as the checkpoint's extractor says


def test_a_checkpoint_backbone_takes_overrides(tmp_path):
    _save_checkpoint("hubert", tmp_path / "checkpoint")
    model, _ = build_model("skill4", str(tmp_path / "checkpoint"), backbone_config={"mask_time_prob": 0.0})
    assert model.config.backbone_config.mask_time_prob == 0.0
