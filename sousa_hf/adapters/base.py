"""`AudioAdapter`: decoded SOUSA audio in, exactly the inputs one backbone family expects out.

An adapter wraps the backbone's own Transformers feature extractor; before calling it, it downmixes,
resamples (soxr) to the extractor's rate and applies the recipe's `LengthPolicy`. Adapters are the
only code in the suite that calls feature extractors.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np
import torch
from transformers import BatchFeature
from transformers.feature_extraction_utils import FeatureExtractionMixin

from ..data.audio import to_mono
from ..data.errors import SousaDataError
from .resampling import resample

logger = logging.getLogger(__name__)

CROPS = ("random", "start", "center")


@dataclass
class LengthPolicy:
    """How a recipe fits SOUSA's 1.8-17 s clips to a backbone.

    Args:
        max_seconds: clips longer than this are cropped; `None` takes the adapter's default
            (its backbone's fixed window, or the whole clip for the waveform and CNN adapters).
        train_crop: which part of a long clip training sees: `random` (default), `start`, `center`.
        eval_crop: the deterministic crop for evaluation: `center` (default) or `start`.
    """

    max_seconds: float | None = None
    train_crop: str = "random"
    eval_crop: str = "center"

    def __post_init__(self):
        if self.train_crop not in CROPS:
            raise SousaDataError(f"unknown train_crop {self.train_crop!r}; expected one of {', '.join(CROPS)}")
        if self.eval_crop not in CROPS[1:]:
            raise SousaDataError(f"unknown eval_crop {self.eval_crop!r}; expected start or center (deterministic)")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise SousaDataError(f"max_seconds must be positive, got {self.max_seconds}")

    def to_dict(self) -> dict:
        return asdict(self)


class AudioAdapter:
    """Base class: subclasses name their family, extractor class and fixed-size facts."""

    name: ClassVar[str]
    feature_extractor_class: ClassVar[type[FeatureExtractionMixin]]
    # The window the backbone is built for (None: any length), used when the policy sets none.
    default_max_seconds: ClassVar[float | None] = None
    # Shortest input the backbone accepts (e.g. one analysis frame); shorter clips are zero-padded.
    min_seconds: ClassVar[float] = 0.0
    # What the crop warning tells the user to do about it.
    crop_advice: ClassVar[str] = "set the recipe's length.max_seconds to keep more of long clips"

    def __init__(self, feature_extractor: FeatureExtractionMixin | None = None, length: LengthPolicy | None = None):
        self.feature_extractor = feature_extractor if feature_extractor is not None else self.feature_extractor_class()
        if length is None:
            stored = getattr(self.feature_extractor, "sousa_length_policy", None)
            length = LengthPolicy(**stored) if stored else LengthPolicy()
        self.length = length
        self.max_seconds = length.max_seconds if length.max_seconds is not None else self.default_max_seconds
        self._warned_crop = False
        self.configure_extractor()

    def configure_extractor(self) -> None:
        """Size the extractor's fixed window to `self.max_seconds` (backbones with one override this)."""

    @property
    def sampling_rate(self) -> int:
        return int(self.feature_extractor.sampling_rate)

    @property
    def model_input_names(self) -> list[str]:
        return list(self.feature_extractor.model_input_names)

    @property
    def output_names(self) -> tuple[str, ...]:
        """The keys `__call__` returns (which of the extractor's possible inputs it really gives)."""
        if not hasattr(self, "_output_names"):
            probe = np.zeros(max(1, int(self.min_seconds * self.sampling_rate)) + 1024, dtype=np.float32)
            self._output_names = tuple(self.extract([probe], return_tensors=None))
        return self._output_names

    def __call__(
        self,
        audios: Sequence[np.ndarray],
        sampling_rate: int = 44100,
        *,
        train: bool = False,
        generator: np.random.Generator | None = None,
        padding: bool = True,
        return_tensors: str | None = "pt",
    ) -> BatchFeature:
        """Turn a batch of decoded clips into model inputs.

        Args:
            audios: a list of clips, each a 1-D float array or a `(channels, samples)` array (downmixed);
                one bare 1-D array is one clip.
            sampling_rate: the clips' rate (SOUSA's is 44100).
            train: crop long clips with the policy's `train_crop` instead of `eval_crop`.
            generator: random source for training crops.
            padding: pad the batch to one shape; `False` returns one unpadded entry per clip
                (for datasets, with `pad` doing it per batch later).
            return_tensors: `"pt"`, `"np"` or `None` (lists).
        """
        if isinstance(audios, (np.ndarray, torch.Tensor)):
            if audios.ndim != 1:
                # Transformers' extractors read a 2-D array as a batch of clips, SOUSA's loaders as one
                # stereo clip: either guess would silently be wrong for someone.
                raise SousaDataError(
                    f"{self.name} adapter: got one {audios.ndim}-D array of shape {tuple(audios.shape)}; pass a list "
                    "of clips: [clip] for one clip (a (channels, samples) clip is downmixed) or list(batch) for a "
                    "batch of mono clips")
            audios = [audios]
        arrays = [self.prepare(audio, sampling_rate, train=train, generator=generator) for audio in audios]
        if padding:
            return self.extract(arrays, return_tensors=return_tensors, train=train)
        return self.extract_each(arrays, train=train)

    def extract_each(self, arrays: list[np.ndarray], train: bool = False) -> BatchFeature:
        """`extract` clip by clip on prepared clips: one unpadded numpy entry per clip under each key."""
        items = [self.extract([array], return_tensors="np", train=train) for array in arrays]
        return BatchFeature({key: [item[key][0] for item in items] for key in items[0]} if items else {})

    def prepare(self, audio, sampling_rate: int, *, train: bool = False,
                generator: np.random.Generator | None = None, crop: bool = True, return_start: bool = False
                ) -> np.ndarray | tuple[np.ndarray, float]:
        """Downmix, resample to the backbone's rate, crop per the length policy (unless `crop=False`),
        zero-pad to `min_seconds`. With `return_start`, also where the kept part starts in the clip (seconds):
        what stroke times must be shifted by."""
        array = to_mono(np.asarray(audio, dtype=np.float32))
        if array.size == 0:
            raise SousaDataError(f"{self.name} adapter: got an empty clip (0 samples)")
        if not np.isfinite(array).all():
            raise SousaDataError(f"{self.name} adapter: the clip holds NaN or infinite samples")
        array = resample(array, int(sampling_rate), self.sampling_rate)
        start = 0
        if crop:
            array, start = self.crop(array, train=train, generator=generator, return_start=True)
        shortest = int(np.ceil(self.min_seconds * self.sampling_rate))
        if array.size < shortest:
            array = np.pad(array, (0, shortest - array.size))
        return (array, start / self.sampling_rate) if return_start else array

    def crop(self, array: np.ndarray, *, train: bool, generator: np.random.Generator | None = None,
             return_start: bool = False) -> np.ndarray | tuple[np.ndarray, int]:
        """The policy's crop of a clip at the backbone's rate (and, with `return_start`, its first sample)."""
        if self.max_seconds is None:
            return (array, 0) if return_start else array
        keep = int(round(self.max_seconds * self.sampling_rate))
        if array.size <= keep:
            return (array, 0) if return_start else array
        if not self._warned_crop:
            logger.warning(
                "%s adapter: cropping a %.1f s clip to %.1f s (length policy max_seconds=%s, %s crop); %s",
                self.name, array.size / self.sampling_rate, self.max_seconds, self.length.max_seconds,
                self.length.train_crop if train else self.length.eval_crop, self.crop_advice)
            self._warned_crop = True
        mode = self.length.train_crop if train else self.length.eval_crop
        if mode == "start":
            start = 0
        elif mode == "center":
            start = (array.size - keep) // 2
        else:
            generator = generator if generator is not None else np.random.default_rng()
            start = int(generator.integers(0, array.size - keep + 1))
        return (array[start : start + keep], start) if return_start else array[start : start + keep]

    def extract(self, arrays: list[np.ndarray], return_tensors: str | None = "pt", train: bool = False) -> BatchFeature:
        """Call the feature extractor on prepared clips (at its rate), padded to one batch."""
        raise NotImplementedError

    def pad(self, features: list[dict]) -> dict[str, torch.Tensor]:
        """Collate per-clip model inputs (as `extract(..., padding=False)` gives them) into a batch."""
        batch = {}
        for key in features[0]:
            values = [torch.as_tensor(np.asarray(f[key])) for f in features]
            if len({tuple(v.shape) for v in values}) == 1:
                batch[key] = torch.stack(values)
            else:
                raise SousaDataError(f"{self.name} adapter: {key!r} differs in shape across the batch "
                                     f"({sorted({tuple(v.shape) for v in values})}); these inputs are fixed-size")
        return batch

    def save_pretrained(self, save_directory: str) -> None:
        """Save the feature extractor's config with the adapter name and length policy inside it."""
        self.feature_extractor.sousa_adapter = self.name
        self.feature_extractor.sousa_length_policy = self.length.to_dict()
        # What the remote-code pipeline (pipeline_sousa.py) needs to crop and pad as this adapter does.
        self.feature_extractor.sousa_max_seconds = self.max_seconds
        self.feature_extractor.sousa_min_seconds = self.min_seconds
        self.feature_extractor.save_pretrained(save_directory)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(rate={self.sampling_rate}, max_seconds={self.max_seconds}, "
                f"extractor={type(self.feature_extractor).__name__})")
