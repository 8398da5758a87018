"""Which resampler the adapters use: speed and anti-aliasing of the candidates, in one run.

    python benchmarks/resample.py

For 44.1 kHz -> 16 kHz (wav2vec2, HuBERT, Whisper, AST) and -> 48 kHz (CLAP), on 5.6 s clips of a
1 kHz tone plus a 10 kHz tone (which must vanish below 16 kHz's 8 kHz Nyquist), one core: times
real time and the level of the 10 kHz tone's alias relative to the 1 kHz tone (lower is better).
With torchcodec and a system FFmpeg, FFmpeg's resampler (what `datasets`' `Audio(sampling_rate=...)`
uses) is measured too, from FLAC bytes, against soundfile decoding + soxr from the same bytes.
"""

from __future__ import annotations

import io
import time

import numpy as np
import soundfile
import soxr
import torch
import torchaudio

RATE = 44100
SECONDS = 5.6
CLIPS = 50


def alias_db(resampled: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(resampled * np.hanning(resampled.size)))
    frequencies = np.fft.rfftfreq(resampled.size, 1 / rate)
    tone = spectrum[np.argmin(np.abs(frequencies - 1000))]
    alias_frequency = rate - 10000 if rate < 20000 else 10000  # where 10 kHz folds to, or stays
    alias = spectrum[np.argmin(np.abs(frequencies - alias_frequency))]
    return float(20 * np.log10(alias / tone + 1e-12)) if rate < 20000 else float("nan")


def main() -> None:
    torch.set_num_threads(1)
    t = np.arange(int(SECONDS * RATE)) / RATE
    clips = [(0.3 * np.sin(2 * np.pi * 1000 * t) + 0.3 * np.sin(2 * np.pi * 10000 * t)).astype(np.float32)
             for _ in range(CLIPS)]
    for target in (16000, 48000):
        default = torchaudio.transforms.Resample(RATE, target)
        kaiser = torchaudio.transforms.Resample(RATE, target, lowpass_filter_width=64, rolloff=0.9475937167399596,
                                                resampling_method="sinc_interp_kaiser", beta=14.769656459379492)
        candidates = {
            "soxr HQ (the suite's)": lambda c: soxr.resample(c, RATE, target, quality="HQ"),
            "soxr VHQ": lambda c: soxr.resample(c, RATE, target, quality="VHQ"),
            "torchaudio Resample, default": lambda c: default(torch.from_numpy(c)).numpy(),
            "torchaudio Resample, kaiser best": lambda c: kaiser(torch.from_numpy(c)).numpy(),
            "torchaudio functional, per call": lambda c: torchaudio.functional.resample(torch.from_numpy(c), RATE,
                                                                                        target).numpy(),
        }
        print(f"44100 -> {target} Hz")
        for name, resample in candidates.items():
            start = time.perf_counter()
            outputs = [resample(c) for c in clips]
            elapsed = time.perf_counter() - start
            level = alias_db(outputs[0], target)
            alias = "" if np.isnan(level) else f"  alias {level:7.1f} dB"
            print(f"  {name:34s} {CLIPS * SECONDS / elapsed:7.0f}x real time{alias}")
        _from_flac(clips, target)


def _from_flac(clips: list[np.ndarray], target: int) -> None:
    try:
        from torchcodec.decoders import AudioDecoder
    except Exception as err:  # ImportError, or RuntimeError without FFmpeg's libraries
        print(f"  (FFmpeg via torchcodec not measured: {type(err).__name__})")
        return
    buffer = io.BytesIO()
    soundfile.write(buffer, clips[0], RATE, format="FLAC", subtype="PCM_24")
    flac = buffer.getvalue()

    def ffmpeg(_):
        return AudioDecoder(flac, sample_rate=target).get_all_samples().data.numpy()[0]

    def soundfile_soxr(_):
        return soxr.resample(soundfile.read(io.BytesIO(flac), dtype="float32")[0], RATE, target, quality="HQ")

    for name, decode in {"FLAC -> FFmpeg decode + resample": ffmpeg,
                         "FLAC -> soundfile + soxr HQ": soundfile_soxr}.items():
        start = time.perf_counter()
        outputs = [decode(c) for c in clips]
        elapsed = time.perf_counter() - start
        level = alias_db(outputs[0], target)
        alias = "" if np.isnan(level) else f"  alias {level:7.1f} dB"
        print(f"  {name:34s} {CLIPS * SECONDS / elapsed:7.0f}x real time{alias}")


if __name__ == "__main__":
    main()
