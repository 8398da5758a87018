"""Training throughput on one GPU: the suite's cached pipeline against the Transformers audio-classification
example's on-the-fly pipeline, for a wav2vec2-base-sized and an AST-sized model, in one run.

    python benchmarks/gpu_train.py                          # one GPU, bf16; about 3 minutes on an H100-class card
    python benchmarks/gpu_train.py --cpu --steps 3          # the same code on a CPU (minutes: 95M parameters)
    python benchmarks/gpu_train.py --cpu --steps 3 --size tiny --samples 20   # seconds (tests/test_benchmarks.py)

Both models are randomly initialised from their families' default configs (`wav2vec2:random`: 95M
parameters, `ast:random`: 86M) and trained on skill_binary by `SousaTrainer` on the built-in synthetic SOUSA
(clips of SOUSA's lengths, 1.8-17 s, at 44.1 kHz). The two input pipelines:

- `suite cached`: `prepare_inputs(..., cache="features")`: each clip decoded, resampled, cropped and turned
  into the backbone's inputs once, read back from Arrow;
- `example on the fly`: what `examples/pytorch/audio-classification/run_audio_classification.py` does:
  `cast_column("audio", Audio(sampling_rate=...))` and the feature extractor in `set_transform`, so every
  step decodes, resamples and extracts its batch (without torchcodec, `datasets`' decoder, the clips are
  decoded by soundfile and resampled by soxr in the transform instead: the same work per step).

For each pair it measures samples/s over the steps after the first (warm-up) and the share of that time the
training loop waited for its next batch. Prints a table and writes JSON (`--json`).
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import TrainerCallback, TrainingArguments

from sousa_hf import LengthPolicy, build_model, load_sousa, make_synthetic_sousa, prepare_task
from sousa_hf.adapters.collator import SousaCollator
from sousa_hf.adapters.preprocessing import prepare_inputs
from sousa_hf.trainer import SousaTrainer

MODELS = {"wav2vec2-base-sized": "wav2vec2:random", "ast-sized": "ast:random"}
PIPELINES = ("suite cached", "example on the fly")
RESULTS = Path(__file__).parent / "results" / "gpu_train.json"


class TimedTrainer(SousaTrainer):
    """`SousaTrainer` that adds up the time spent fetching batches (the loop waiting for data)."""

    data_wait = 0.0

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        start = time.perf_counter()
        batches = super().get_batch_samples(epoch_iterator, num_batches, device)
        self.data_wait += time.perf_counter() - start
        return batches


class StepClock(TrainerCallback):
    """The wall time of each optimizer step's end (CUDA synchronised), and the data wait at that moment."""

    def __init__(self, trainer_ref: list):
        self.trainer_ref = trainer_ref
        self.marks: list[tuple[float, float]] = []

    def on_step_end(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.marks.append((time.perf_counter(), self.trainer_ref[0].data_wait))


def on_the_fly(split, adapter, seconds: float | None):
    """The audio-classification example's pipeline: decode and resample on access, random crop, extractor."""
    from datasets import Audio

    rate = adapter.sampling_rate
    try:
        import torchcodec  # noqa: F401  (datasets' Audio decoder)

        decoded = split.cast_column("audio", Audio(sampling_rate=rate))
        decoder = "datasets Audio (torchcodec)"
    except ImportError:
        decoded = split.cast_column("audio", Audio(decode=False))
        decoder = "soundfile + soxr (no torchcodec)"
    generator = np.random.default_rng(0)

    def transform(batch):
        arrays = []
        for cell in batch["audio"]:
            if "array" in cell:
                array = np.asarray(cell["array"], dtype=np.float32)
            else:
                import soundfile
                import soxr

                array, source_rate = soundfile.read(io.BytesIO(cell["bytes"]), dtype="float32", always_2d=True)
                array = soxr.resample(array.mean(axis=1), source_rate, rate)
            if seconds is not None and array.size > seconds * rate:  # the example's random_subsample
                keep = int(seconds * rate)
                start = int(generator.integers(0, array.size - keep + 1))
                array = array[start : start + keep]
            arrays.append(array)
        # The extractor on each clip, as the example calls it (plus the mask the suite's heads pool with).
        per_clip = [adapter.extract([array], return_tensors="np") for array in arrays]
        inputs = {key: [clip[key][0] for clip in per_clip] for key in per_clip[0]}
        inputs["labels"] = batch["labels"]
        return inputs

    return decoded.with_transform(transform, columns=["audio", "labels"]), decoder


def measure(name: str, backbone: str, pipeline: str, data: Path, args) -> dict:
    torch.manual_seed(0)
    length = LengthPolicy(max_seconds=args.seconds if backbone.startswith("wav2vec2") else None)
    if args.size == "tiny":
        backbone = backbone.replace(":random", ":tiny")
    model, adapter = build_model("skill_binary", backbone, length=length)
    decoder = "stored features"
    if pipeline == "suite cached":
        train = prepare_task(load_sousa(data, split="train"), "skill_binary")
        dataset = prepare_inputs(train, adapter, train=True, cache="features")
    else:  # the stored FLAC bytes, decoded on access
        train = prepare_task(load_sousa(data, split="train", decode=False), "skill_binary")
        dataset, decoder = on_the_fly(train, adapter, adapter.max_seconds)
    use_gpu = torch.cuda.is_available() and not args.cpu
    with tempfile.TemporaryDirectory() as scratch:
        training = TrainingArguments(
            output_dir=scratch, max_steps=args.steps, per_device_train_batch_size=args.batch_size,
            learning_rate=1e-4, bf16=use_gpu, use_cpu=not use_gpu, dataloader_num_workers=args.workers,
            dataloader_pin_memory=use_gpu, remove_unused_columns=False, report_to="none", save_strategy="no",
            eval_strategy="no", logging_strategy="no", disable_tqdm=True, seed=0)
        holder: list = []
        clock = StepClock(holder)
        trainer = TimedTrainer(model=model, args=training, train_dataset=dataset,
                               data_collator=SousaCollator(adapter), callbacks=[clock])
        holder.append(trainer)
        trainer.train()
    (t0, wait0), (t1, wait1) = clock.marks[0], clock.marks[-1]
    steps = len(clock.marks) - 1  # after the first step: CUDA kernels compiled, workers started
    seconds = max(t1 - t0, 1e-9)
    return {"model": name if args.size == "base" else f"{name} (tiny)", "backbone": backbone, "pipeline": pipeline,
            "decoder": decoder, "steps_timed": steps,
            "batch_size": args.batch_size, "samples_per_s": steps * args.batch_size / seconds if steps else None,
            "data_wait_share": (wait1 - wait0) / seconds if steps else None,
            "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even where a GPU is present")
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps per model and pipeline")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=8.0, help="wav2vec2's crop (AST takes its 10.24 s window)")
    parser.add_argument("--samples", type=int, default=400, help="synthetic clips to write (train split: 60%%)")
    parser.add_argument("--workers", type=int, default=None, help="dataloader workers (default: 4 on GPU, 0 on CPU)")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--size", choices=("base", "tiny"), default="base",
                        help="tiny: the families' test-sized configs, to check the benchmark itself quickly")
    parser.add_argument("--json", default=str(RESULTS), help="where to write the figures")
    args = parser.parse_args()
    if args.steps < 2:
        parser.error("--steps must be at least 2 (the first step is warm-up)")
    use_gpu = torch.cuda.is_available() and not args.cpu
    if args.workers is None:
        args.workers = 4 if use_gpu else 0
    device = torch.cuda.get_device_name(0) if use_gpu else f"CPU ({platform.processor() or platform.machine()})"
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        data = Path(scratch) / "sousa"
        make_synthetic_sousa(data, num_samples=args.samples, seed=0)
        for name in args.models.split(","):
            for pipeline in PIPELINES:
                rows.append(measure(name, MODELS[name], pipeline, data, args))
                print(f"{name:>20} | {pipeline:<18} | {rows[-1]['samples_per_s']:.2f} samples/s | waiting for data "
                      f"{rows[-1]['data_wait_share']:.0%}", flush=True)
    print(f"\n{device}, {'bf16' if use_gpu else 'fp32'}, batch {args.batch_size}, {args.steps} steps, "
          f"{args.size} models\n")
    print("| model | pipeline | samples/s | share of step time waiting for data | speed-up of the cache |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        other = next(r for r in rows if r["model"] == row["model"] and r["pipeline"] == "example on the fly")
        ratio = row["samples_per_s"] / other["samples_per_s"] if other["samples_per_s"] else float("nan")
        print(f"| {row['model']} ({row['parameters_m']}M) | {row['pipeline']} | {row['samples_per_s']:.2f} | "
              f"{row['data_wait_share']:.1%} | {ratio:.2f}x |")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"device": device, "bf16": use_gpu, "steps": args.steps,
                                           "size": args.size, "rows": rows},
                                          indent=2) + "\n")


if __name__ == "__main__":
    main()
