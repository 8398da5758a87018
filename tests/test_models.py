"""SOUSA models on every backbone family: real batches, gradients, masked multi-task loss, pooling, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sousa_hf import (
    LengthPolicy,
    SousaConfig,
    SousaForMultiTask,
    build_model,
    load_sousa,
    prepare_task,
)
from sousa_hf.adapters import get_adapter
from sousa_hf.adapters.collator import SousaCollator
from sousa_hf.adapters.preprocessing import prepare_inputs
from sousa_hf.modeling_sousa import AttentiveStatisticsPooling, masked_mean

FAMILIES = ["wav2vec2", "hubert", "whisper", "ast", "clap", "cnn"]
TASKS = {"classification": "skill4", "regression": "overall_score", "multitask": "multitask"}
POLICY = LengthPolicy(max_seconds=3.0)  # short windows keep the tiny models fast
ROWS = [0, 7, 9]  # 4.1 s, 2.4 s and 3.4 s clips; flam_quality is null in the first two


@pytest.fixture(scope="module")
def validation(sample_dir):
    return load_sousa(sample_dir, "audio", split="validation")


def real_batch(validation, task: str, adapter, rows=ROWS) -> dict[str, torch.Tensor]:
    """A batch made the way training makes it: task labels, the adapter on the fly, the collator."""
    prepared = prepare_task(validation.select(rows), task, apply_default_filter=False)
    inputs = prepare_inputs(prepared, adapter)
    return SousaCollator(adapter)([inputs[i] for i in range(len(rows))])


def _backbone_grads(model) -> list[float]:
    return [p.grad.abs().sum().item() for p in model.sousa.backbone.parameters() if p.grad is not None]


@pytest.mark.parametrize("kind", list(TASKS))
@pytest.mark.parametrize("family", FAMILIES)
def test_forward_and_backward_on_a_real_batch(validation, family, kind):
    torch.manual_seed(0)
    model, adapter = build_model(TASKS[kind], f"{family}:tiny", length=POLICY)
    batch = real_batch(validation, TASKS[kind], adapter)
    outputs = model(**batch)
    assert torch.isfinite(outputs.loss)
    if kind == "classification":
        assert outputs.logits.shape == (3, 4)
    else:
        width = 1 if kind == "regression" else 5
        assert outputs.predictions.shape == outputs.scores.shape == (3, width)
        torch.testing.assert_close(outputs.scores, outputs.predictions.detach() * 100)
    outputs.loss.backward()
    if kind == "multitask":  # a target null in every row of the batch teaches its head nothing
        present = dict(zip(model.config.target_names, batch["labels_mask"].any(dim=0).tolist()))
        assert not all(present.values()) and any(present.values())
        for target, head in model.heads.items():
            assert (head.weight.grad.abs().sum() > 0) == present[target], target
    else:
        head = model.classifier if kind == "classification" else model.regressor
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())
    assert sum(_backbone_grads(model)) > 0


@pytest.mark.parametrize("family", FAMILIES)
def test_a_frozen_backbone_gets_no_gradient(validation, family):
    model, adapter = build_model("skill_binary", f"{family}:tiny", length=POLICY)
    model.freeze_backbone()
    model(**real_batch(validation, "skill_binary", adapter)).loss.backward()
    assert _backbone_grads(model) == []
    assert model.classifier.weight.grad is not None


@pytest.mark.parametrize("family", ["wav2vec2", "hubert"])
def test_freezing_the_feature_encoder_keeps_the_transformer_training(validation, family):
    model, adapter = build_model("skill_binary", f"{family}:tiny", length=POLICY)
    model.freeze_feature_encoder()
    model(**real_batch(validation, "skill_binary", adapter)).loss.backward()
    backbone = model.sousa.backbone
    assert all(p.grad is None for p in backbone.feature_extractor.parameters())
    assert any(p.grad is not None for p in backbone.encoder.parameters())


def test_only_waveform_backbones_have_a_feature_encoder():
    model, _ = build_model("skill_binary", "ast:tiny", length=POLICY)
    with pytest.raises(ValueError, match="only wav2vec2 and hubert"):
        model.freeze_feature_encoder()


def test_the_multitask_loss_ignores_null_targets_exactly(validation):
    torch.manual_seed(0)
    model, adapter = build_model("multitask", "cnn:tiny", length=POLICY)
    model.eval()
    batch = real_batch(validation, "multitask", adapter, rows=[0, 1, 7])
    flam = model.config.target_names.index("flam_quality")
    assert not batch["labels_mask"][:, flam].any(), "these rows have no flam_quality"
    loss = model(**batch).loss

    # The same model without the flam_quality head gives the same loss on the same batch.
    targets = [t for t in model.config.target_names if t != "flam_quality"]
    config = SousaConfig(**{**model.config.to_dict(), "target_names": targets, "target_weights": [1.0] * 4,
                            "id2label": None, "label2id": None})
    without = SousaForMultiTask(config).eval()
    assert not without.load_state_dict(model.state_dict(), strict=False).missing_keys
    keep = [i for i in range(5) if i != flam]
    reduced = {**batch, "labels": batch["labels"][:, keep], "labels_mask": batch["labels_mask"][:, keep]}
    torch.testing.assert_close(without(**reduced).loss, loss, rtol=0, atol=0)

    # Whatever value a null target holds, it adds nothing.
    noisy = {**batch, "labels": batch["labels"].clone()}
    noisy["labels"][~batch["labels_mask"]] = 123.0
    torch.testing.assert_close(model(**noisy).loss, loss, rtol=0, atol=0)


def test_multitask_target_weights_scale_each_targets_loss(validation):
    torch.manual_seed(0)
    model, adapter = build_model("multitask", "cnn:tiny", length=POLICY)
    model.eval()
    batch = real_batch(validation, "multitask", adapter)
    with torch.no_grad():
        predictions = model(**batch).predictions
        model.config.target_weights = [2.0, 0.0, 0.0, 0.0, 0.0]
        weighted = model(**batch).loss
    expected = 2.0 * torch.mean((predictions[:, 0] - batch["labels"][:, 0]) ** 2)
    torch.testing.assert_close(weighted, expected)


def test_masked_pooling_ignores_padding():
    torch.manual_seed(0)
    hidden = torch.randn(2, 6, 4)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    changed = hidden.clone()
    changed[1, 3:] = 1e3
    torch.testing.assert_close(masked_mean(changed, mask), masked_mean(hidden, mask))
    torch.testing.assert_close(masked_mean(hidden, mask)[1], hidden[1, :3].mean(dim=0))
    attentive = AttentiveStatisticsPooling(4)
    torch.testing.assert_close(attentive(changed, mask), attentive(hidden, mask))
    assert attentive(hidden, mask).shape == (2, 8)


@pytest.mark.parametrize("backbone, overrides", [
    # A layer-norm front end takes the mask (wav2vec2-large-style checkpoints).
    ("hubert:tiny", {"feat_extract_norm": "layer", "do_stable_layer_norm": True}),
    # The suite's CNN masks padding in every block, whatever the clip lengths; a clip alone has no
    # padding and takes the fused group norm, so these also check that path gives the same numbers.
    ("cnn:tiny", None),
    ("cnn:tiny", {"time_pooling": False}),
    ("cnn:random", None),
])
def test_a_clip_pools_the_same_alone_and_padded_in_a_batch(backbone, overrides):
    model, adapter = build_model("skill_binary", backbone, backbone_config=overrides)
    model.eval()
    rng = np.random.default_rng(0)
    clips = [rng.standard_normal(int(44100 * s)).astype(np.float32) * 0.1 for s in (0.05, 1.0, 1.37, 2.0)]
    with torch.no_grad():
        alone = [model.sousa(**adapter([clip])).pooled_output[0] for clip in clips]
        batched = model.sousa(**adapter(clips)).pooled_output
    for i, vector in enumerate(alone):
        torch.testing.assert_close(batched[i], vector, rtol=1e-4, atol=1e-5, msg=f"clip {i}")


@pytest.mark.parametrize("pooling", ["mean", "attentive_stats"])
def test_ast_pools_the_cls_tokens_and_the_patches_that_hold_audio(pooling):
    model, adapter = build_model("skill_binary", "ast:tiny", length=POLICY, pooling=pooling)
    model.eval()
    config = model.config.backbone_config
    clip = np.random.default_rng(0).standard_normal(44100).astype(np.float32) * 0.1
    inputs = adapter([clip])
    assert inputs["attention_mask"].sum().item() == 98  # 1 s: 25 ms windows every 10 ms, of 300 frames
    with torch.no_grad():
        outputs = model.sousa(**inputs)
    # ASTPatchEmbeddings: a (frequency x time) grid of patches, flattened frequency-major, after the [CLS]
    # and distillation tokens; time column t covers frames 10t to 10t + 15.
    frequency = (config.num_mel_bins - config.patch_size) // config.frequency_stride + 1
    time = (config.max_length - config.patch_size) // config.time_stride + 1
    assert outputs.last_hidden_state.shape[1] == 2 + frequency * time
    columns = [t for t in range(time) if t * config.time_stride < 98]
    tokens = [0, 1] + [2 + f * time + t for f in range(frequency) for t in columns]
    kept = outputs.last_hidden_state[:, tokens]
    expected = kept.mean(dim=1) if pooling == "mean" else model.sousa.attentive(kept, None)
    torch.testing.assert_close(outputs.pooled_output, expected)


@pytest.mark.parametrize("family", ["wav2vec2", "whisper", "ast"])
@pytest.mark.parametrize("pooling", ["attentive_stats", "weighted_layers"])
def test_other_poolings_train(validation, family, pooling):
    model, adapter = build_model("rudiment40", f"{family}:tiny", length=POLICY, pooling=pooling)
    outputs = model(**real_batch(validation, "rudiment40", adapter))
    outputs.loss.backward()
    assert outputs.logits.shape == (3, 40)
    if pooling == "weighted_layers":
        weights = model.sousa.layer_sum.weights
        assert weights.shape == (3,) and weights.grad is not None and weights.grad.abs().sum() > 0
    else:
        assert model.classifier.in_features == 2 * 32


@pytest.mark.parametrize("family", ["clap", "cnn"])
def test_weighted_layers_need_layers_of_one_width(family):
    with pytest.raises(ValueError, match="weighted_layers"):
        build_model("skill4", f"{family}:tiny", pooling="weighted_layers")


def test_inputs_from_the_wrong_adapter_are_refused(validation):
    model, _ = build_model("skill4", "hubert:tiny", length=POLICY)
    whisper_batch = real_batch(validation, "skill4", get_adapter("whisper", POLICY))
    with pytest.raises(ValueError, match="hubert backbone takes input_values .* from the 'hubert' adapter"):
        model(**whisper_batch)
    whisper, _ = build_model("skill4", "whisper:tiny", length=POLICY)
    with pytest.raises(ValueError, match="whisper backbone takes input_features"):
        whisper(**real_batch(validation, "skill4", get_adapter("cnn", POLICY)))
    with pytest.raises(ValueError, match="sized for .*300 frames.*max_seconds=3"):
        whisper(**real_batch(validation, "skill4", get_adapter("whisper", LengthPolicy(max_seconds=5))))
    ast, _ = build_model("skill4", "ast:tiny", length=POLICY)
    with pytest.raises(ValueError, match="this AST is sized for \\(300 frames, 128 mels\\)"):
        ast(**real_batch(validation, "skill4", get_adapter("ast")))


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="unknown backbone model_type 'bert-ish'"):
        SousaConfig(backbone_config={"model_type": "bert-ish"})
    with pytest.raises(ValueError, match="id2label has 2 labels but num_labels=3"):
        SousaConfig(id2label={0: "novice", 1: "skilled"}, num_labels=3)
    with pytest.raises(ValueError, match="not the inverse"):
        SousaConfig(id2label={0: "novice", 1: "skilled"}, label2id={"novice": 1, "skilled": 0})
    with pytest.raises(ValueError, match="unknown pooling 'max'"):
        SousaConfig(pooling="max")
    with pytest.raises(ValueError, match="needs target_names"):
        SousaConfig(task_kind="regression")


@pytest.mark.parametrize("backbone, message", [
    ("hubert", "names a family; say which: hubert:random"),
    ("hubert:huge", "unknown backbone 'hubert:huge'"),
    ("bert:tiny", "unknown backbone 'bert:tiny'"),
    ("no/such-model-anywhere", "no loadable checkpoint"),
])
def test_unknown_backbones_are_refused(backbone, message):
    with pytest.raises(ValueError, match=message):
        build_model("skill4", backbone)


def test_backbone_config_overrides_apply_and_unknown_keys_are_refused():
    model, _ = build_model("skill4", "hubert:random", backbone_config={"num_hidden_layers": 1})
    config = model.config.backbone_config
    assert (config.num_hidden_layers, config.hidden_size) == (1, 768)  # the family default, one layer
    assert len(model.sousa.backbone.encoder.layers) == 1
    with pytest.raises(ValueError, match="HubertConfig of 'hubert:tiny' has no field 'num_layerz'"):
        build_model("skill4", "hubert:tiny", backbone_config={"num_layerz": 2})


def test_the_cnn_trains_from_scratch_at_its_default_size():
    model, adapter = build_model("skill4", "cnn:random")
    assert model.config.backbone_config.channels == [32, 64, 128, 256]
    assert model.config.sampling_rate == adapter.sampling_rate == 44100
    assert 100_000 < sum(p.numel() for p in model.parameters()) < 2_000_000


@pytest.mark.parametrize("family", FAMILIES)
def test_gradient_checkpointing_gives_the_same_gradients(validation, family):
    torch.manual_seed(0)
    model, adapter = build_model("skill_binary", f"{family}:tiny", length=POLICY)
    batch = real_batch(validation, "skill_binary", adapter)
    gradients = []
    for checkpointing in (False, True):
        if checkpointing:
            model.gradient_checkpointing_enable()
        model.zero_grad()
        torch.manual_seed(1)  # the same dropout masks; checkpointing replays them
        np.random.seed(1)  # wav2vec2 and HuBERT draw their SpecAugment masks with numpy
        model(**batch).loss.backward()
        gradients.append(model.classifier.weight.grad.clone())
    torch.testing.assert_close(gradients[1], gradients[0])
