"""sousa-hf: fine-tune pretrained audio backbones on SOUSA with Hugging Face Transformers."""

from .data.audio import decode_audio
from .data.errors import SousaDataError
from .data.filters import AUGMENTATION_PRESETS, filter_sousa, normalize_preset
from .data.loading import HUB_ID, check_split_leakage, load_sousa, with_decoded_audio
from .data.rudiments import RUDIMENT_FAMILIES, RUDIMENT_FAMILY, RUDIMENTS
from .data.synthetic import make_synthetic_sousa
from .data.tasks import TASKS, SousaTask, class_weights, get_task, prepare_task
from .data.tier_confidence import SKILL_TIERS, tier_confidence

__version__ = "0.1.0"

__all__ = [
    "AUGMENTATION_PRESETS",
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
