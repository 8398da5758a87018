"""What a model tuned on 16 kHz audio loses on SOUSA's 44.1 kHz audio: the same clips, at both rates, in one run.

    python benchmarks/sample_rate_shift.py runs/strokes-cnn [MODEL ...] --data ../shared/sousa-sample

`../shared/sousa-tune` is re-encoded to 16 kHz mono, so a model whose front end runs at 44.1 kHz (the
suite's CNN) never sees energy above 8 kHz while it trains; the Hub's audio (and `../shared/sousa-sample`)
is 44.1 kHz stereo. This writes two copies of every clip of `--data` (all splits, as one `test` split:
none of sousa-sample's player profiles is in sousa-tune): the audio as stored, and the audio downmixed
and resampled to `--rate` (soxr, 16-bit FLAC, as the tuning set was made), then evaluates each saved
model on both (`sousa-hf evaluate`) and prints its headline metrics side by side. A front end that
ignores what lies above 8 kHz (`feature_extractor_config: {f_max: 8000}`) scores the same on both.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import soundfile

from sousa_hf.adapters.resampling import resample
from sousa_hf.data.audio import decode_audio
from sousa_hf.evaluation import evaluate_saved_model

HEADLINES = ("onset_f1_25ms", "onset_f1_10ms", "onset_precision_25ms", "onset_recall_25ms", "r2", "mae",
             "balanced_accuracy")


def write_copy(source: Path, target: Path, rate: int | None) -> int:
    """Every split of `source`'s `audio` config as the `test` split of `target` (audio resampled to `rate`, or as
    stored), with its `auxiliary/` files; the number of clips."""
    tables = [pq.read_table(path) for path in sorted((source / "audio").glob("*.parquet"))]
    if not tables:
        raise SystemExit(f"{source} has no audio/*.parquet (the Hub layout's audio config)")
    table = pa.concat_tables(tables)
    if rate is not None:
        cells = []
        for cell, sample_id in zip(table.column("audio").to_pylist(), table.column("sample_id").to_pylist()):
            array, source_rate = decode_audio(cell, sample_id)
            buffer = io.BytesIO()
            soundfile.write(buffer, resample(array, source_rate, rate), rate, format="FLAC", subtype="PCM_16")
            cells.append({"bytes": buffer.getvalue(), "path": cell.get("path")})
        index = table.schema.get_field_index("audio")
        table = table.set_column(index, table.schema.field(index), pa.array(cells, type=table.schema.field(index).type))
    (target / "audio").mkdir(parents=True, exist_ok=True)
    pq.write_table(table, target / "audio" / "test-00000-of-00001.parquet")
    if (source / "auxiliary").is_dir():
        shutil.copytree(source / "auxiliary", target / "auxiliary", dirs_exist_ok=True)
    return table.num_rows


def headline(results: dict) -> dict[str, float]:
    metrics = results["metrics"]
    return {name: float(metrics[name]) for name in HEADLINES if isinstance(metrics.get(name), (int, float))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="saved SOUSA models (run folders or Hub ids)")
    parser.add_argument("--data", default="../shared/sousa-sample", help="a Hub-layout folder at 44.1 kHz")
    parser.add_argument("--rate", type=int, default=16000, help="the rate of the tuning set's audio")
    parser.add_argument("--out", default="runs/sample-rate-shift")
    parser.add_argument("--json", default=None, help="also write the table to this file")
    args = parser.parse_args()

    out = Path(args.out)
    folders = {"as stored": out / "as-stored", f"{args.rate // 1000} kHz": out / f"{args.rate}"}
    for folder, rate in zip(folders.values(), (None, args.rate)):
        clips = write_copy(Path(args.data), folder, rate)
    print(f"{args.data}: {clips} clips, as stored and resampled to {args.rate} Hz")

    table = {}
    for model in args.models:
        table[model] = {}
        for name, folder in folders.items():
            results = evaluate_saved_model(model, str(folder), split="test",
                                           output_dir=str(out / "eval" / Path(model).name / folder.name))
            table[model][name] = headline(results)
    print(f"\n| model | metric | {' | '.join(folders)} | difference |\n| --- | --- | --- | --- | --- |")
    for model, by_copy in table.items():
        first, second = by_copy.values()
        for metric in first:
            print(f"| {model} | {metric} | {first[metric]:.3f} | {second[metric]:.3f} | "
                  f"{first[metric] - second[metric]:+.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()
