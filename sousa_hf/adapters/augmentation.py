"""Waveform augmentation for training clips: other tempos, rooms and microphones than the training split's.

SOUSA's generator plays each take at one tempo through one of a few recording presets (room, mic,
compression, noise); a stroke model trained on 720 takes learns those by heart (training loss 0.29 against
validation 0.51 for `recipes/strokes_cnn.yaml`). Each training clip is changed at random, before the
adapter's crop and feature extractor, so any backbone gets it; evaluation clips are never changed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import soxr
from scipy.signal import lfilter

from ..data.errors import SousaDataError


@dataclass
class WaveformAugmentation:
    """What to change in each training clip (every setting 0 or `None`: nothing).

    Args:
        speed: play the clip at a speed drawn from `[1 - speed, 1 + speed]`, resampled (tempo and pitch move
            together, as a faster drummer on a smaller drum); stroke times scale with it.
        eq_db: boost or cut each of `eq_bands` peaking bands (centres log-uniform 100 Hz-8 kHz, about an
            octave wide) by up to this many dB: another microphone and room colour.
        eq_bands: how many bands `eq_db` draws.
        noise_snr_db: `(lowest, highest)`: white noise added at a signal-to-noise ratio drawn from it (dB).
        gain_db: scale the clip by up to this many dB either way. Loudness is how the stroke head reads
            velocity, so this trades velocity accuracy for level-independent onsets.
    """

    speed: float = 0.0
    eq_db: float = 0.0
    eq_bands: int = 2
    noise_snr_db: tuple[float, float] | list[float] | None = None
    gain_db: float = 0.0

    def __post_init__(self):
        if not 0.0 <= self.speed < 0.5:
            raise SousaDataError(f"augmentation speed must be in [0, 0.5), got {self.speed!r}; 0.1 plays "
                                 "clips at 0.9-1.1x")
        if self.eq_db < 0 or self.gain_db < 0 or self.eq_bands < 0:
            raise SousaDataError(f"augmentation eq_db, eq_bands and gain_db must be >= 0, got eq_db={self.eq_db!r}, "
                                 f"eq_bands={self.eq_bands!r}, gain_db={self.gain_db!r}")
        if self.noise_snr_db is not None:
            if len(self.noise_snr_db) != 2 or self.noise_snr_db[0] > self.noise_snr_db[1]:
                raise SousaDataError(f"augmentation noise_snr_db must be [lowest, highest] in dB, got "
                                     f"{self.noise_snr_db!r}; e.g. [30, 50]")
            self.noise_snr_db = tuple(float(v) for v in self.noise_snr_db)

    @property
    def enabled(self) -> bool:
        return bool(self.speed or (self.eq_db and self.eq_bands) or self.noise_snr_db or self.gain_db)

    @staticmethod
    def for_split(augmentation: WaveformAugmentation | None, train: bool) -> WaveformAugmentation | None:
        """The augmentation a split's clips get: `augmentation` for training when it changes anything, else `None`."""
        return augmentation if train and augmentation is not None and augmentation.enabled else None

    def to_dict(self) -> dict:
        values = asdict(self)
        values["noise_snr_db"] = list(self.noise_snr_db) if self.noise_snr_db is not None else None
        return values

    def retime(self, array: np.ndarray, sampling_rate: int, generator: np.random.Generator
               ) -> tuple[np.ndarray, float]:
        """The whole clip played at a random speed, and that speed (stroke times divide by it)."""
        if not self.speed:
            return array, 1.0
        speed = float(generator.uniform(1.0 - self.speed, 1.0 + self.speed))
        # Read as recorded at speed x the rate and written at the rate: speed x fewer samples.
        played = soxr.resample(np.asarray(array, dtype=np.float32), sampling_rate * speed, sampling_rate,
                               quality="HQ").astype(np.float32, copy=False)
        return played, array.size / max(played.size, 1)

    def colour(self, array: np.ndarray, sampling_rate: int, generator: np.random.Generator) -> np.ndarray:
        """The clip through random peaking bands, with noise and a gain change as set."""
        array = np.asarray(array, dtype=np.float32)
        if self.eq_db and self.eq_bands:
            for _ in range(self.eq_bands):
                centre = float(np.exp(generator.uniform(np.log(100.0), np.log(8000.0))))
                if centre < 0.45 * sampling_rate:
                    b, a = _peaking_band(centre, float(generator.uniform(-self.eq_db, self.eq_db)), sampling_rate)
                    array = lfilter(b, a, array).astype(np.float32)
        if self.noise_snr_db is not None:
            power = float(np.mean(array.astype(np.float64) ** 2))
            if power > 0:
                snr = generator.uniform(*self.noise_snr_db)
                noise = generator.standard_normal(array.size).astype(np.float32)
                array = array + noise * np.float32(np.sqrt(power / 10.0 ** (snr / 10.0)))
        if self.gain_db:
            array = array * np.float32(10.0 ** (generator.uniform(-self.gain_db, self.gain_db) / 20.0))
        return array


def _peaking_band(centre_hz: float, gain_db: float, sampling_rate: int, q: float = 1.4
                  ) -> tuple[np.ndarray, np.ndarray]:
    """A peaking filter's biquad coefficients (the Audio EQ Cookbook's, R. Bristow-Johnson); Q 1.4 is about an
    octave wide."""
    amplitude = 10.0 ** (gain_db / 40.0)
    omega = 2.0 * np.pi * centre_hz / sampling_rate
    alpha = np.sin(omega) / (2.0 * q)
    b = np.array([1.0 + alpha * amplitude, -2.0 * np.cos(omega), 1.0 - alpha * amplitude])
    a = np.array([1.0 + alpha / amplitude, -2.0 * np.cos(omega), 1.0 - alpha / amplitude])
    return b / a[0], a / a[0]
