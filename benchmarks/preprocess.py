"""FLAC bytes -> model inputs, per adapter: the suite against what a user would otherwise write.

    python benchmarks/preprocess.py [--data SOURCE] [--clips N] [--adapters wav2vec2,ast,...]

Measured in one run over the same clips (the training split of SOURCE; by default a synthetic
SOUSA of 200 clips made on the spot), each path producing collated batches of 8:
- floor: decoding the FLAC bytes alone (soundfile, downmix);
- suite, first epoch: `prepare_inputs` on the fly (decode, soxr resampling, extractor);
- suite, cached epoch: reading the `prepare_inputs(cache="features")` Arrow cache back;
- naive (1): the SOUSA guide's way, a `torchaudio.transforms.Resample` built per sample in
  `__getitem__` plus the extractor on one clip;
- datasets cast (2): `cast_column("audio", Audio(sampling_rate=rate))` + the stock extractor on
  the batch (needs torchcodec and a system FFmpeg; skipped with a note without them).
Writes benchmarks/results/preprocess.json with the ratios per adapter.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio
from datasets import Audio

from sousa_hf import load_sousa, make_synthetic_sousa, prepare_task
from sousa_hf.adapters import ADAPTERS, get_adapter
from sousa_hf.adapters.collator import SousaCollator
from sousa_hf.adapters.preprocessing import prepare_inputs

BATCH = 8
RESULTS = Path(__file__).parent / "results" / "preprocess.json"


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def decode(cell) -> tuple[np.ndarray, int]:
    array, rate = soundfile.read(io.BytesIO(cell["bytes"]), dtype="float32", always_2d=True)
    return array.mean(axis=1), rate


def floor_epoch(raw):
    for start in range(0, len(raw), BATCH):
        for cell in raw[start : start + BATCH]["audio"]:
            decode(cell)


def suite_epoch(dataset, collate):
    for start in range(0, len(dataset), BATCH):
        batch = dataset[start : start + BATCH]
        collate([{key: batch[key][i] for key in batch} for i in range(len(batch["labels"]))])


def stock_extractor(adapter):
    """The extractor class the checkpoint names, as `AutoFeatureExtractor` would load it: without the
    suite's batching in torch and windows sized to SOUSA's clips."""
    return ADAPTERS[adapter.name].feature_extractor_class.from_dict(adapter.feature_extractor.to_dict())


# The waveform extractors do not pad by default, and a batch of unequal clips needs it.
STOCK_CALL_KWARGS = {"wav2vec2": {"padding": True}, "hubert": {"padding": True}}


def naive_epoch(raw, adapter):
    # As the guide writes it: per-sample decode, a new Resample transform, the stock extractor on one clip.
    extractor = stock_extractor(adapter)
    for start in range(0, len(raw), BATCH):
        items = []
        for cell in raw[start : start + BATCH]["audio"]:
            array, rate = decode(cell)
            resampled = torchaudio.transforms.Resample(rate, adapter.sampling_rate)(torch.from_numpy(array))
            inputs = extractor(resampled.numpy(), sampling_rate=adapter.sampling_rate, return_tensors="np")
            items.append({key: value[0] for key, value in inputs.items()})
        adapter.pad(items)  # the same dynamic padding as the suite's collator


def cast_epoch(raw, adapter):
    # datasets decodes and resamples; the stock extractor makes the batch's inputs at its defaults.
    extractor = stock_extractor(adapter)
    cast = raw.cast_column("audio", Audio(sampling_rate=adapter.sampling_rate, num_channels=1))
    for start in range(0, len(cast), BATCH):
        decoders = cast[start : start + BATCH]["audio"]
        arrays = [decoder.get_all_samples().data.numpy().mean(axis=0) for decoder in decoders]
        extractor(arrays, sampling_rate=adapter.sampling_rate, return_tensors="pt",
                  **STOCK_CALL_KWARGS.get(adapter.name, {}))


def cast_available() -> str | None:
    try:
        import torchcodec  # noqa: F401
        from torchcodec.decoders import AudioDecoder  # noqa: F401
    except Exception as err:  # ImportError, or RuntimeError when FFmpeg's libraries are missing
        return f"datasets' Audio decoding is unavailable ({type(err).__name__}: {str(err).splitlines()[0][:120]})"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="SOUSA source; default: a fresh synthetic SOUSA of 200 clips")
    parser.add_argument("--clips", type=int, default=96, help="training clips to time")
    parser.add_argument("--adapters", default=",".join(ADAPTERS))
    args = parser.parse_args()
    torch.set_num_threads(1)  # one core per DataLoader worker, as in training

    with tempfile.TemporaryDirectory() as scratch:
        source = args.data or make_synthetic_sousa(os.path.join(scratch, "sousa"), num_samples=200, seed=0)
        raw = load_sousa(source, "audio", split="train", decode=False, cache_dir=os.path.join(scratch, "cache"))
        raw = raw.select(range(min(args.clips, len(raw))))
        labelled = prepare_task(raw, "skill_binary")
        seconds = sum(decode(cell)[0].size for cell in raw["audio"]) / 44100
        floor = min(timed(lambda: floor_epoch(raw)) for _ in range(2))
        cast_problem = cast_available()
        results = {"clips": len(raw), "audio_seconds": round(seconds, 1), "decode_floor_s": round(floor, 3),
                   "machine": f"{os.cpu_count()} cores, torch threads 1", "adapters": {}}
        print(f"{len(raw)} clips, {seconds:.0f} s of audio; decode floor {floor:.2f} s "
              f"({seconds / floor:.0f}x real time)")
        if cast_problem:
            print(f"path (2) skipped: {cast_problem}")
        header = f"{'adapter':<9} {'suite 1st':>9} {'x RT':>6} {'cached':>7} {'naive(1)':>9} {'cast(2)':>8} " \
                 f"{'1st/floor':>9} {'1st/naive':>9} {'cast/cached':>11}"
        print(header)
        for name in args.adapters.split(","):
            adapter = get_adapter(name)
            collate = SousaCollator(adapter)
            first = timed(lambda: suite_epoch(prepare_inputs(labelled, adapter), collate))
            cached_dataset = prepare_inputs(labelled, adapter, cache="features")
            cached = min(timed(lambda: suite_epoch(cached_dataset, collate)) for _ in range(2))
            naive = timed(lambda: naive_epoch(raw, adapter))
            cast = None if cast_problem else timed(lambda: cast_epoch(raw, adapter))
            row = {
                "first_epoch_s": round(first, 3),
                "first_epoch_x_real_time": round(seconds / first, 1),
                "first_epoch_clips_per_s": round(len(raw) / first, 1),
                "cached_epoch_s": round(cached, 3),
                "naive_epoch_s": round(naive, 3),
                "datasets_cast_epoch_s": None if cast is None else round(cast, 3),
                "first_epoch_over_floor": round(first / floor, 2),
                "first_epoch_over_naive": round(first / naive, 2),
                "cached_speedup_vs_datasets_cast": None if cast is None else round(cast / cached, 1),
            }
            results["adapters"][name] = row
            cast_text = "n/a" if cast is None else f"{cast:.2f}"
            speedup = "n/a" if cast is None else f"{row['cached_speedup_vs_datasets_cast']:.1f}x"
            print(f"{name:<9} {first:>8.2f}s {seconds / first:>5.0f}x {cached:>6.2f}s {naive:>8.2f}s {cast_text:>8} "
                  f"{row['first_epoch_over_floor']:>9.2f} {row['first_epoch_over_naive']:>9.2f} {speedup:>11}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
