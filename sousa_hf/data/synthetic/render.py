"""Rendering a simulated performance to snare-like stereo audio, then through a room preset.

Each stroke is a noise burst (the snare wires) over a damped two-mode body, brighter and longer when
played harder; each clip draws its own drum (tuning, decay, wire level) so that no model can key
on one timbre. The five augmentation presets use the parameter values the real data records for
them (wet/dry, mic distance and type, compression ratio, noise level).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import soundfile
from scipy import signal

SAMPLING_RATE = 44_100
TAIL_SECONDS = 0.5  # audio runs this long past the performance, as in the real clips
_STROKE_SECONDS = 0.35
_VELOCITY_LEVELS = 16


@dataclass(frozen=True)
class RoomPreset:
    """One augmentation preset, with the `aug_*` column values the real data stores for it."""

    name: str
    room_type: str
    wet_dry: float
    mic_distance: float
    mic_type: str
    compression_ratio: float | None
    noise_level_db: float | None
    rt60_seconds: float  # the room's reverberation time, used to synthesise its impulse response


PRESETS: dict[str, RoomPreset] = {
    preset.name: preset
    for preset in (
        RoomPreset("clean_studio", "studio", 0.20, 0.4, "condenser", 2.0, None, 0.3),
        RoomPreset("practice_room", "practice_room", 0.15, 0.5, "dynamic", 2.0, -45.0, 0.5),
        RoomPreset("gym", "gym", 0.35, 2.0, "dynamic", 2.5, -40.0, 1.8),
        RoomPreset("garage", "garage", 0.30, 0.8, "dynamic", 2.5, -35.0, 0.9),
        RoomPreset("marching_field", "outdoor", 0.05, 5.0, "dynamic", None, -35.0, 0.15),
    )
}


@dataclass(frozen=True)
class Drum:
    """The timbre of one clip's drum."""

    body_hz: float
    body_decay_s: float
    wire_decay_s: float
    wire_level: float

    @classmethod
    def random(cls, rng: np.random.Generator) -> Drum:
        return cls(
            body_hz=float(rng.uniform(160.0, 260.0)),
            body_decay_s=float(rng.uniform(0.04, 0.09)),
            wire_decay_s=float(rng.uniform(0.05, 0.12)),
            wire_level=float(rng.uniform(0.5, 0.9)),
        )


def stroke_templates(drum: Drum, rng: np.random.Generator) -> np.ndarray:
    """`(_VELOCITY_LEVELS, samples)` stroke sounds from softest to hardest, peak-normalised to velocity."""
    n = int(_STROKE_SECONDS * SAMPLING_RATE)
    t = np.arange(n) / SAMPLING_RATE
    templates = np.empty((_VELOCITY_LEVELS, n), dtype=np.float32)
    for level in range(_VELOCITY_LEVELS):
        loudness = (level + 1) / _VELOCITY_LEVELS
        body = (np.sin(2 * np.pi * drum.body_hz * t) + 0.5 * np.sin(2 * np.pi * drum.body_hz * 1.59 * t))
        body *= np.exp(-t / drum.body_decay_s)
        wires = rng.standard_normal(n)
        # Harder strokes excite more high frequencies: blend in the differentiated (brighter) noise.
        wires = (1 - loudness) * wires + loudness * np.concatenate(([0.0], np.diff(wires))) * 1.5
        wires *= np.exp(-t / (drum.wire_decay_s * (0.6 + 0.6 * loudness)))
        attack = np.minimum(1.0, t / 0.0015)
        sound = attack * (body + drum.wire_level * wires)
        templates[level] = (sound / np.abs(sound).max() * loudness**1.5).astype(np.float32)
    return templates


def render_performance(onsets_ms: np.ndarray, velocities: np.ndarray, duration_s: float,
                       rng: np.random.Generator) -> np.ndarray:
    """Dry mono audio of a performance: one stroke sound per onset, scaled by its MIDI velocity."""
    templates = stroke_templates(Drum.random(rng), rng)
    total = int((duration_s + TAIL_SECONDS) * SAMPLING_RATE)
    out = np.zeros(total + templates.shape[1], dtype=np.float32)
    levels = np.clip(np.rint(np.asarray(velocities) / 127 * _VELOCITY_LEVELS) - 1, 0, _VELOCITY_LEVELS - 1)
    starts = np.rint(np.asarray(onsets_ms) / 1000 * SAMPLING_RATE).astype(np.int64)
    offset = max(0, -int(starts.min())) if len(starts) else 0  # grace notes before time 0
    for start, level in zip(starts + offset, levels.astype(int)):
        out[start : start + templates.shape[1]] += templates[level]
    return out[:total]


def apply_preset(dry: np.ndarray, preset: RoomPreset, rng: np.random.Generator) -> np.ndarray:
    """`(samples, 2)` stereo float32: room reverb, mic distance and type, compression, noise."""
    # Distance and a dynamic mic both darken the sound: a low-pass whose cutoff drops with distance.
    if preset.mic_type == "dynamic":
        cutoff = 16_000 / (1 + preset.mic_distance)
    else:
        cutoff = 18_000 / (1 + 0.3 * preset.mic_distance)
    b, a = signal.butter(2, min(cutoff, 0.45 * SAMPLING_RATE), fs=SAMPLING_RATE)
    close = signal.lfilter(b, a, dry).astype(np.float32) / (1 + 0.3 * preset.mic_distance)

    ir_length = int(min(preset.rt60_seconds, 1.2) * SAMPLING_RATE)
    t = np.arange(ir_length) / SAMPLING_RATE
    decay = np.exp(-6.9 * t / preset.rt60_seconds)  # -60 dB at rt60
    channels = []
    for _ in range(2):  # independent reverb tails make the stereo image
        ir = (rng.standard_normal(ir_length) * decay).astype(np.float32)
        wet = signal.fftconvolve(close, ir)[: close.size]
        wet *= np.abs(close).max() / (np.abs(wet).max() + 1e-9)
        channels.append((1 - preset.wet_dry) * close + preset.wet_dry * wet)
    stereo = np.stack(channels, axis=1)

    if preset.compression_ratio:
        stereo = _compress(stereo, preset.compression_ratio)
    if preset.noise_level_db is not None:
        stereo += rng.standard_normal(stereo.shape).astype(np.float32) * 10 ** (preset.noise_level_db / 20)
    peak = np.abs(stereo).max()
    if peak > 0:
        stereo *= 0.89 / peak
    return stereo.astype(np.float32)


def _compress(stereo: np.ndarray, ratio: float, threshold_db: float = -18.0) -> np.ndarray:
    """A feed-forward compressor with a 10 ms smoothed envelope."""
    envelope = np.abs(stereo).max(axis=1)
    smoothing = np.exp(-1 / (0.010 * SAMPLING_RATE))
    envelope = signal.lfilter([1 - smoothing], [1, -smoothing], envelope)
    level_db = 20 * np.log10(np.maximum(envelope / (np.abs(stereo).max() + 1e-9), 1e-6))
    over = np.maximum(level_db - threshold_db, 0.0)
    gain = 10 ** (-over * (1 - 1 / ratio) / 20)
    return stereo * gain[:, None].astype(np.float32)


def flac_bytes(stereo: np.ndarray) -> bytes:
    """24-bit FLAC at 44.1 kHz, the format of the real dataset."""
    buffer = io.BytesIO()
    soundfile.write(buffer, stereo, SAMPLING_RATE, format="FLAC", subtype="PCM_24")
    return buffer.getvalue()
