"""Training modes: full, frozen feature encoder, linear probe, and LoRA through peft on every pretrained family."""

from __future__ import annotations

import pytest
import torch

from sousa_hf import build_model, load_sousa
from sousa_hf.training_modes import LORA_TARGET_MODULES, LoraSettings, apply_training_mode, merge_lora

from .test_models import POLICY, real_batch

peft = pytest.importorskip("peft")


@pytest.fixture(scope="module")
def validation(sample_dir):
    return load_sousa(sample_dir, "audio", split="validation")


def _trainable(model) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("mode, frozen", [("full", None), ("freeze_feature_encoder", "backbone.feature_extractor"),
                                          ("freeze_backbone", "backbone.")])
def test_modes_freeze_what_they_say(mode, frozen):
    model, _ = build_model("skill4", "wav2vec2:tiny")
    everything = _trainable(model)
    model = apply_training_mode(model, mode)
    trainable = _trainable(model)
    assert "classifier.weight" in trainable
    if frozen is None:
        assert trainable == everything
    else:
        assert trainable == {name for name in everything if frozen not in name}
        assert any("backbone.encoder" in name for name in trainable) == (mode == "freeze_feature_encoder")


@pytest.mark.parametrize("family", list(LORA_TARGET_MODULES))
@pytest.mark.parametrize("task", ["skill4", "multitask"])
def test_lora_trains_adapters_and_head_only_and_merges_back(validation, family, task):
    torch.manual_seed(0)
    model, adapter = build_model(task, f"{family}:tiny", length=POLICY, pooling="attentive_stats")
    batch = real_batch(validation, task, adapter)
    lora = apply_training_mode(model, "lora", LoraSettings(rank=4))
    assert isinstance(lora, peft.PeftModel)
    trainable = _trainable(lora)
    adapted = {name for name in trainable if "lora_" in name}
    assert adapted and all(any(f".{target}." in name for target in LORA_TARGET_MODULES[family]) for name in adapted)
    rest = trainable - adapted
    head = "classifier" if task == "skill4" else "heads"
    assert rest and all(("modules_to_save" in name) and (head in name or "attentive" in name) for name in rest)

    lora(**batch).loss.backward()  # no `input_ids`: the wrapper passes the audio inputs through
    assert all(p.grad is None for n, p in lora.named_parameters() if n not in trainable)
    # LoRA's B matrices start at zero, so the first step's gradient reaches them but not yet the A's.
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in lora.named_parameters() if "lora_B" in n)

    with torch.no_grad():  # make the adapters matter before comparing with the merged model
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.1)
    lora.eval()
    key = "logits" if task == "skill4" else "predictions"
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "labels_mask")}
    with torch.no_grad():
        adapted_outputs = lora(**inputs)[key]
        merged = merge_lora(lora)
        merged_outputs = merged(**inputs)[key]
    assert type(merged).__name__ == type(model).__name__
    assert not any("lora_" in name for name, _ in merged.named_parameters())
    torch.testing.assert_close(merged_outputs, adapted_outputs, rtol=1e-4, atol=1e-5)


def test_lora_refuses_the_cnn_and_unknown_modules():
    model, _ = build_model("skill4", "cnn:tiny")
    with pytest.raises(ValueError, match="no LoRA preset for the cnn backbone"):
        apply_training_mode(model, "lora")
    model, _ = build_model("skill4", "hubert:tiny")
    with pytest.raises(ValueError, match=r"LoRA target modules \['query'\] are not in the hubert backbone"):
        apply_training_mode(model, "lora", LoraSettings(target_modules=["query"]))
    with pytest.raises(ValueError, match="unknown training mode 'partial'"):
        apply_training_mode(model, "partial")
