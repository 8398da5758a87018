"""A frozen-backbone probe's epoch with and without the backbone cache, side by side, in one run.

    python benchmarks/probe_cache.py --backbone WHISPER_DIR --data ../shared/sousa-tune

Both epochs train the same probe (`training_mode: freeze_backbone`) through `SousaTrainer` on the same
clips. Without the cache each step runs the frozen backbone on the batch (the audio itself is already
decoded and resampled, from the waveform cache, so only the backbone's cost is compared); with it the
backbone ran once per clip beforehand (timed too) and each step runs the head alone. Prints seconds and
the ratio; the issue's goal is a cached epoch at least 20x faster.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch
from transformers import TrainingArguments

from sousa_hf import LengthPolicy, build_model, load_sousa, prepare_task
from sousa_hf.adapters.collator import SousaCollator
from sousa_hf.adapters.preprocessing import prepare_inputs
from sousa_hf.backbone_cache import cache_backbone_outputs
from sousa_hf.trainer import SousaTrainer
from sousa_hf.training_modes import apply_training_mode


def epoch_seconds(model, adapter, dataset, batch_size: int) -> float:
    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(output_dir=scratch, num_train_epochs=1, per_device_train_batch_size=batch_size,
                                 learning_rate=1e-3, save_strategy="no", eval_strategy="no", report_to="none",
                                 remove_unused_columns=False, dataloader_pin_memory=False, disable_tqdm=True,
                                 logging_strategy="no", seed=0)
        trainer = SousaTrainer(model=model, args=args, train_dataset=dataset, data_collator=SousaCollator(adapter))
        start = time.perf_counter()
        trainer.train()
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="openai/whisper-base", help="checkpoint (Hub id or folder)")
    parser.add_argument("--data", default="../shared/sousa-tune", help="SOUSA source")
    parser.add_argument("--task", default="overall_score")
    parser.add_argument("--pooling", default="layer_stats", help="layer_stats, weighted_layers, mean, attentive_stats")
    parser.add_argument("--seconds", type=float, default=8.0, help="the adapter's window")
    parser.add_argument("--max-clips", type=int, default=240, help="training clips in the epoch")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()

    torch.manual_seed(0)
    model, adapter = build_model(args.task, args.backbone, pooling=args.pooling,
                                 length=LengthPolicy(max_seconds=args.seconds))
    model = apply_training_mode(model, "freeze_backbone")
    train = load_sousa(args.data, "audio", split="train")
    train = train.select(range(min(args.max_clips, len(train))))

    uncached = prepare_inputs(prepare_task(train, args.task), adapter, train=True, cache="waveform")
    uncached_epoch = epoch_seconds(model, adapter, uncached, args.batch_size)

    start = time.perf_counter()
    outputs = cache_backbone_outputs(train, model, adapter)
    cache_seconds = time.perf_counter() - start
    cached = prepare_inputs(prepare_task(outputs, args.task), adapter, train=True)
    cached_epoch = epoch_seconds(model, adapter, cached, args.batch_size)

    figures = {"backbone": args.backbone, "pooling": args.pooling, "seconds": args.seconds, "clips": len(train),
               "uncached_epoch_s": round(uncached_epoch, 2), "cache_build_s": round(cache_seconds, 2),
               "cached_epoch_s": round(cached_epoch, 3), "speedup": round(uncached_epoch / cached_epoch, 1)}
    print(f"probe epoch on {len(train)} clips ({args.pooling}, {args.seconds:g} s window, {args.backbone})")
    print(f"{'uncached epoch (backbone every step)':<40} {uncached_epoch:8.2f} s")
    print(f"{'building the cache (one backbone pass)':<40} {cache_seconds:8.2f} s")
    print(f"{'cached epoch (head only)':<40} {cached_epoch:8.3f} s")
    print(f"{'cached epoch speed-up':<40} {uncached_epoch / cached_epoch:8.1f}x")
    if args.json:
        with open(args.json, "w") as file:
            json.dump(figures, file, indent=2)


if __name__ == "__main__":
    main()
