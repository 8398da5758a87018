"""sousa-hf: fine-tune pretrained audio backbones on SOUSA with Hugging Face Transformers."""

from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, AutoModelForAudioClassification

from .adapters import AudioAdapter, LengthPolicy, get_adapter
from .backbones import build_model
from .configuration_sousa import SousaCNNConfig, SousaConfig
from .data.audio import decode_audio
from .data.errors import SousaDataError
from .data.filters import AUGMENTATION_PRESETS, filter_sousa, normalize_preset
from .data.loading import HUB_ID, check_split_leakage, load_sousa, with_decoded_audio
from .data.rudiments import RUDIMENT_FAMILIES, RUDIMENT_FAMILY, RUDIMENTS
from .data.synthetic import make_synthetic_sousa
from .data.tasks import TASKS, SousaTask, class_weights, get_task, prepare_task
from .data.tier_confidence import SKILL_TIERS, tier_confidence
from .feature_extraction_sousa import SousaMelFeatureExtractor
from .modeling_sousa import (
    SousaCNNModel,
    SousaForAudioClassification,
    SousaForMultiTask,
    SousaForScoreRegression,
    SousaForStrokes,
    SousaModel,
    SousaPreTrainedModel,
)

__version__ = "0.1.0"

# Auto classes: with `sousa_hf` imported, `AutoModel` picks the head from the saved `architectures`.
AutoConfig.register(SousaConfig.model_type, SousaConfig, exist_ok=True)
AutoConfig.register(SousaCNNConfig.model_type, SousaCNNConfig, exist_ok=True)
AutoModel.register(SousaConfig, (SousaModel, SousaForAudioClassification, SousaForScoreRegression, SousaForMultiTask,
                                 SousaForStrokes), exist_ok=True)
AutoModel.register(SousaCNNConfig, SousaCNNModel, exist_ok=True)
AutoModelForAudioClassification.register(SousaConfig, SousaForAudioClassification, exist_ok=True)
AutoFeatureExtractor.register(SousaCNNConfig, SousaMelFeatureExtractor, exist_ok=True)
# Without it (`trust_remote_code=True`): `save_pretrained` copies the configuration, modelling and
# feature-extraction files next to the weights and names them in `auto_map`.
SousaConfig.register_for_auto_class()
SousaModel.register_for_auto_class("AutoModel")
SousaForScoreRegression.register_for_auto_class("AutoModel")
SousaForMultiTask.register_for_auto_class("AutoModel")
SousaForStrokes.register_for_auto_class("AutoModel")
SousaForAudioClassification.register_for_auto_class("AutoModelForAudioClassification")
SousaMelFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")

__all__ = [
    "AUGMENTATION_PRESETS",
    "AudioAdapter",
    "LengthPolicy",
    "SousaCNNConfig",
    "SousaCNNModel",
    "SousaConfig",
    "SousaForAudioClassification",
    "SousaForMultiTask",
    "SousaForScoreRegression",
    "SousaForStrokes",
    "SousaMelFeatureExtractor",
    "SousaModel",
    "SousaPreTrainedModel",
    "build_model",
    "get_adapter",
    "HUB_ID",
    "RUDIMENTS",
    "RUDIMENT_FAMILIES",
    "RUDIMENT_FAMILY",
    "SKILL_TIERS",
    "TASKS",
    "SousaDataError",
    "SousaTask",
    "check_split_leakage",
    "class_weights",
    "decode_audio",
    "filter_sousa",
    "get_task",
    "load_sousa",
    "make_synthetic_sousa",
    "normalize_preset",
    "prepare_task",
    "tier_confidence",
    "with_decoded_audio",
]
