"""Training throughput: `SousaTrainer` against a plain PyTorch loop on the same model and batches.

    python benchmarks/train_step.py [--backbone cnn:random] [--steps 30] [--batch-size 8] [--seconds 4]

Both train the same model (same initial weights, AdamW, same learning rate) for the same number of
steps over the same cached features (a synthetic SOUSA made on the spot), collated by the same
collator, on one process. The Trainer's extra work is its bookkeeping: the loss through
`SousaTrainer.compute_loss`, gradient clipping, the scheduler, callbacks, logging and the progress
bar. Each loop runs twice, alternating, and the faster run of each counts. Prints samples/s and the
overhead, writes benchmarks/results/train_step.json. Goal: overhead under 10%.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from transformers import TrainingArguments

from sousa_hf import LengthPolicy, build_model, load_sousa, make_synthetic_sousa, prepare_task
from sousa_hf.adapters.collator import SousaCollator
from sousa_hf.adapters.preprocessing import prepare_inputs
from sousa_hf.trainer import SousaTrainer

RESULTS = Path(__file__).parent / "results" / "train_step.json"


def plain_loop(model, dataset, collator, steps: int, batch_size: int, learning_rate: float) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, collate_fn=collator, drop_last=True)
    model.train()
    start, done = time.perf_counter(), 0
    while done < steps:
        for batch in loader:
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            done += 1
            if done == steps:
                break
    return time.perf_counter() - start


def trainer_loop(model, dataset, collator, steps: int, batch_size: int, learning_rate: float, folder: str) -> float:
    args = TrainingArguments(output_dir=folder, max_steps=steps, per_device_train_batch_size=batch_size,
                             learning_rate=learning_rate, lr_scheduler_type="constant", logging_steps=10,
                             save_strategy="no", report_to="none", remove_unused_columns=False,
                             dataloader_pin_memory=False, seed=0)
    trainer = SousaTrainer(model=model, args=args, train_dataset=dataset, data_collator=collator)
    start = time.perf_counter()
    trainer.train()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="cnn:random", help="any build_model backbone (default cnn:random)")
    parser.add_argument("--task", default="skill4")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=4.0, help="clip window (length policy max_seconds)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        data = make_synthetic_sousa(Path(scratch) / "sousa", num_samples=48, seed=0)
        rows = prepare_task(load_sousa(data, "audio", split="train"), args.task, apply_default_filter=False)
        model, adapter = build_model(args.task, args.backbone, length=LengthPolicy(max_seconds=args.seconds))
        dataset = prepare_inputs(rows, adapter, cache="features")
        collator = SousaCollator(adapter)
        initial = {k: v.clone() for k, v in model.state_dict().items()}
        times = {"plain": [], "trainer": []}
        for _ in range(2):
            for name in ("plain", "trainer"):
                model.load_state_dict(initial)
                torch.manual_seed(0)
                if name == "plain":
                    times[name].append(plain_loop(model, dataset, collator, args.steps, args.batch_size, 1e-3))
                else:
                    times[name].append(trainer_loop(model, dataset, collator, args.steps, args.batch_size, 1e-3,
                                                    str(Path(scratch) / "run")))
    best = {name: min(values) for name, values in times.items()}
    samples = args.steps * args.batch_size
    overhead = best["trainer"] / best["plain"] - 1
    results = {
        "backbone": args.backbone, "task": args.task, "steps": args.steps, "batch_size": args.batch_size,
        "clip_seconds": args.seconds, "machine": f"{os.cpu_count()} cores, torch threads {torch.get_num_threads()}",
        "plain_samples_per_s": round(samples / best["plain"], 2),
        "trainer_samples_per_s": round(samples / best["trainer"], 2),
        "trainer_overhead": round(overhead, 4), "runs_s": {k: [round(t, 3) for t in v] for k, v in times.items()},
    }
    print(f"{args.backbone}, batch {args.batch_size} x {args.seconds:g} s, {args.steps} steps (best of 2):")
    print(f"  plain PyTorch loop  {results['plain_samples_per_s']:8.2f} samples/s")
    print(f"  SousaTrainer        {results['trainer_samples_per_s']:8.2f} samples/s")
    print(f"  Trainer / plain time {best['trainer'] / best['plain']:.3f} "
          f"(overhead {100 * overhead:+.1f}%, goal < +10%)")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
