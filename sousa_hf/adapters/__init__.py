"""Feature-extractor adapters: one per backbone family, found by name or by a checkpoint's model type."""

from __future__ import annotations

import json
import logging
import os

from transformers import AutoConfig, AutoFeatureExtractor

from ..data.errors import SousaDataError
from .ast import ASTAdapter
from .base import AudioAdapter, LengthPolicy
from .clap import ClapAdapter
from .cnn import CNNAdapter
from .wav2vec2 import HubertAdapter, Wav2Vec2Adapter
from .whisper import WhisperAdapter

logger = logging.getLogger(__name__)

ADAPTERS: dict[str, type[AudioAdapter]] = {
    adapter.name: adapter
    for adapter in (Wav2Vec2Adapter, HubertAdapter, WhisperAdapter, ASTAdapter, ClapAdapter, CNNAdapter)
}
# A checkpoint's `model_type` (config.json) -> adapter.
MODEL_TYPE_ADAPTERS: dict[str, str] = {
    "wav2vec2": "wav2vec2",
    "wav2vec2-bert": "wav2vec2",
    "hubert": "hubert",
    "whisper": "whisper",
    "audio-spectrogram-transformer": "ast",
    "clap": "clap",
    "clap_audio_model": "clap",
    "sousa_cnn": "cnn",
}
# A saved feature extractor's class -> adapter, for folders without a model config.
EXTRACTOR_ADAPTERS: dict[str, str] = {
    "Wav2Vec2FeatureExtractor": "wav2vec2",
    "WhisperFeatureExtractor": "whisper",
    "ASTFeatureExtractor": "ast",
    "ClapFeatureExtractor": "clap",
    "SousaMelFeatureExtractor": "cnn",
}

# Well-known checkpoints -> (adapter, where their preprocessor_config.json differs from the family's default
# extractor). Offline, or when the Hub cannot find them, they still resolve, with a default-constructed
# extractor and a warning.
_CLAP_SETTINGS = {"frequency_min": 50}
KNOWN_CHECKPOINTS: dict[str, tuple[str, dict]] = {
    "facebook/wav2vec2-base": ("wav2vec2", {}),
    "facebook/wav2vec2-base-960h": ("wav2vec2", {}),
    "facebook/hubert-base-ls960": ("hubert", {}),
    "openai/whisper-tiny": ("whisper", {}),
    "openai/whisper-base": ("whisper", {}),
    "openai/whisper-small": ("whisper", {}),
    "MIT/ast-finetuned-audioset-10-10-0.4593": ("ast", {}),
    "laion/clap-htsat-unfused": ("clap", {**_CLAP_SETTINGS, "truncation": "rand_trunc"}),
    "laion/clap-htsat-fused": ("clap", {**_CLAP_SETTINGS, "truncation": "fusion"}),
}


def get_adapter(name_or_checkpoint: str, length: LengthPolicy | None = None, **extractor_kwargs) -> AudioAdapter:
    """The adapter for an adapter name or a checkpoint (Hub id or local folder).

    A name (`wav2vec2`, `hubert`, `whisper`, `ast`, `clap`, `cnn`) gives the family's default
    feature extractor, constructed offline (`extractor_kwargs` override its settings). A checkpoint
    such as `facebook/hubert-base-ls960` or `MIT/ast-finetuned-audioset-10-10-0.4593` loads its own
    extractor with `AutoFeatureExtractor` and picks the adapter from its config's `model_type`. When
    neither can be fetched (offline), a checkpoint in `KNOWN_CHECKPOINTS` gets its family's extractor,
    default-constructed with the checkpoint's known settings, and a warning.
    """
    if name_or_checkpoint in ADAPTERS:
        adapter_class = ADAPTERS[name_or_checkpoint]
        return adapter_class(adapter_class.feature_extractor_class(**extractor_kwargs), length)

    name = _adapter_name_of_checkpoint(name_or_checkpoint)
    try:
        extractor = AutoFeatureExtractor.from_pretrained(name_or_checkpoint, **extractor_kwargs)
    except Exception as err:  # from_pretrained raises OSError, ValueError or hub errors
        if name_or_checkpoint not in KNOWN_CHECKPOINTS:
            raise SousaDataError(f"could not load the feature extractor of {name_or_checkpoint!r}: {err}") from err
        settings = {**KNOWN_CHECKPOINTS[name_or_checkpoint][1], **extractor_kwargs}
        extractor_class = ADAPTERS[name].feature_extractor_class
        logger.warning(
            "could not fetch the feature extractor of %r (offline or not found: %s); using a default-constructed "
            "%s(%s), which may differ from the checkpoint's own: run once online or pass a local folder to be sure",
            name_or_checkpoint, type(err).__name__, extractor_class.__name__,
            ", ".join(f"{key}={value!r}" for key, value in settings.items()))
        extractor = extractor_class(**settings)
    return ADAPTERS[name](extractor, length)


def _adapter_name_of_checkpoint(checkpoint: str) -> str:
    known = f"expected an adapter name ({', '.join(ADAPTERS)}) or a checkpoint of model type " \
            f"{', '.join(sorted(MODEL_TYPE_ADAPTERS))}"
    saved = os.path.join(checkpoint, "preprocessor_config.json")
    if os.path.isfile(saved):  # our own saved adapters name themselves
        with open(saved) as file:
            stored = json.load(file)
        if stored.get("sousa_adapter") in ADAPTERS:
            return stored["sousa_adapter"]
    try:
        config = AutoConfig.from_pretrained(checkpoint)
        model_type = config.model_type
    except Exception:
        model_type = None
    if model_type == "sousa" and getattr(config, "adapter", None) in ADAPTERS:  # a saved SOUSA model on the Hub
        return config.adapter
    if model_type in MODEL_TYPE_ADAPTERS:
        return MODEL_TYPE_ADAPTERS[model_type]
    if os.path.isfile(saved):
        with open(saved) as file:
            extractor_type = json.load(file).get("feature_extractor_type")
        if extractor_type in EXTRACTOR_ADAPTERS:
            return EXTRACTOR_ADAPTERS[extractor_type]
    if model_type is None and checkpoint in KNOWN_CHECKPOINTS:
        return KNOWN_CHECKPOINTS[checkpoint][0]
    if model_type is not None:
        raise SousaDataError(f"{checkpoint!r} is a {model_type!r} checkpoint, which has no adapter; {known}")
    raise SousaDataError(f"unknown adapter or checkpoint {checkpoint!r} (no such name, folder or reachable Hub "
                         f"model); {known}")


__all__ = ["ADAPTERS", "KNOWN_CHECKPOINTS", "AudioAdapter", "LengthPolicy", "get_adapter"]
