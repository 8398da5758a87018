"""Which parameters train: the whole model, all but the feature encoder, only the head, or LoRA adapters.

LoRA needs the optional `peft` extra (`pip install 'sousa-hf[lora]'`). The adapters are added with no
PEFT `task_type`: a task type makes the wrapper pass `input_ids`, which audio backbones reject. The
head and pooling are trained in full (`modules_to_save`), so they are in every PEFT checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .modeling_sousa import SousaPreTrainedModel

TRAINING_MODES = ("full", "freeze_feature_encoder", "freeze_backbone", "lora")
# The attention projections of each family's transformer layers (names as in Transformers 5).
LORA_TARGET_MODULES: dict[str, list[str]] = {
    "wav2vec2": ["q_proj", "k_proj", "v_proj", "out_proj"],
    "hubert": ["q_proj", "k_proj", "v_proj", "out_proj"],
    "whisper": ["q_proj", "k_proj", "v_proj", "out_proj"],
    "ast": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "clap": ["query", "key", "value"],
}
# Modules outside the backbone, trained in full under LoRA.
_HEAD_MODULES = ("classifier", "regressor", "attentive", "layer_sum")


@dataclass
class LoraSettings:
    """LoRA hyper-parameters.

    Args:
        rank: the adapters' rank; higher fits more and costs more memory.
        alpha: scaling (`alpha / rank` multiplies the adapters' output).
        dropout: dropout on the adapters' input.
        target_modules: module names to adapt; `None` takes the family's preset in `LORA_TARGET_MODULES`.
    """

    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] | None = None


def apply_training_mode(model: SousaPreTrainedModel, mode: str = "full", lora: LoraSettings | None = None
                        ) -> nn.Module:
    """Set which parameters train; returns the model (a `peft.PeftModel` around it for `lora`)."""
    if mode not in TRAINING_MODES:
        raise ValueError(f"unknown training mode {mode!r}; expected one of {', '.join(TRAINING_MODES)}")
    if mode == "freeze_feature_encoder":
        model.freeze_feature_encoder()
    elif mode == "freeze_backbone":
        model.freeze_backbone()
    elif mode == "lora":
        return _with_lora(model, lora or LoraSettings())
    return model


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold LoRA adapters into the backbone's weights: a plain SOUSA model again, to save and push."""
    if hasattr(model, "merge_and_unload"):
        return model.merge_and_unload()
    return model


def _with_lora(model: SousaPreTrainedModel, settings: LoraSettings) -> nn.Module:
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as err:
        raise ImportError("training mode 'lora' needs peft: pip install 'sousa-hf[lora]'") from err
    family = model.sousa.family
    targets = settings.target_modules or LORA_TARGET_MODULES.get(family)
    if targets is None:
        raise ValueError(f"no LoRA preset for the {family} backbone (the suite's CNN trains from scratch, in full); "
                         "pass LoraSettings(target_modules=[...]) to choose modules yourself")
    names = {name for name, _ in model.named_modules()}
    missing = [t for t in targets if not any(name == t or name.endswith("." + t) for name in names)]
    if missing:
        raise ValueError(f"LoRA target modules {missing} are not in the {family} backbone")
    to_save = [name for name, _ in model.named_children() if name in _HEAD_MODULES]
    to_save += [name for name, _ in model.sousa.named_children() if name in _HEAD_MODULES]
    to_save += [f"heads.{target}" for target in (model.config.target_names or []) if hasattr(model, "heads")]
    config = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=targets, modules_to_save=to_save)
    return get_peft_model(model, config)
