"""`sousa-hf`: the suite's command line. Subcommands stay thin; the work lives in the package."""

from __future__ import annotations

import argparse
import sys

from .data.errors import SousaDataError


def _data_synth(args: argparse.Namespace) -> None:
    from .data.synthetic import make_synthetic_sousa

    path = make_synthetic_sousa(args.out_dir, num_samples=args.samples, seed=args.seed, overwrite=args.overwrite,
                                num_proc=args.num_proc)
    print(f"wrote synthetic SOUSA ({args.samples} samples, seed {args.seed}) to {path}")


def _data_summary(args: argparse.Namespace) -> None:
    from .data.loading import load_sousa
    from .data.summary import describe_batch, summarize

    splits = load_sousa(args.source, config=args.config)
    print(f"SOUSA from {args.source} (config {args.config!r}): schema and split leakage checked\n")
    print(summarize(splits))
    if args.show_batch:
        if "audio" not in splits["train"].column_names:
            raise SousaDataError(f"--show-batch needs the 'audio' config, not {args.config!r}")
        print(f"\nFirst batch of decoded audio (train, {args.show_batch} clips):")
        print(describe_batch(splits["train"], args.show_batch))


def _adapters_stats(args: argparse.Namespace) -> None:
    from .adapters import LengthPolicy, get_adapter
    from .adapters.normalization import fit_normalization
    from .data.loading import load_sousa

    length = LengthPolicy(max_seconds=args.max_seconds) if args.max_seconds else None
    adapter = get_adapter(args.adapter, length)
    train = load_sousa(args.data, "audio", split="train")
    mean, std = fit_normalization(adapter, train, max_clips=args.max_clips)
    adapter.save_pretrained(args.out_dir)
    print(f"{adapter.name} feature statistics of {args.data} (train): mean {mean:.4f}, std {std:.4f}; "
          f"saved the feature extractor to {args.out_dir}")


def _train(args: argparse.Namespace) -> None:
    from .recipe import load_recipe
    from .train import run

    recipe, training = load_recipe(args.recipe, args.overrides)
    run(recipe, training)


def _evaluate(args: argparse.Namespace) -> None:
    from .evaluation import evaluate_saved_model
    from .report import format_metrics_table

    results = evaluate_saved_model(args.model_dir, args.data, split=args.split, output_dir=args.output_dir,
                                   batch_size=args.batch_size, bad_audio=args.bad_audio)
    print(format_metrics_table(results))


def _push(args: argparse.Namespace) -> None:
    from .hub import prepare_upload, push_model

    if args.dry_run:
        folder = prepare_upload(args.model_dir, args.dry_run, args.repo_id)
        print(f"wrote the folder that would be uploaded to {args.repo_id} to {folder}:")
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            print(f"  {path.relative_to(folder)}")
        return
    url = push_model(args.model_dir, args.repo_id, private=args.private, exist_ok=args.exist_ok)
    print(f"pushed {args.model_dir} to {url}")


def _predict(args: argparse.Namespace) -> int:
    import json

    from .predict import SousaPredictor

    predictor = SousaPredictor.from_pretrained(args.model, batch_size=args.batch_size)
    # The progress bar is on stderr, the JSON on stdout.
    results = predictor.predict_files(args.inputs, tempo_bpm=args.tempo, subdivision=args.subdivision,
                                      timeline_dir=args.timeline)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for result in results:
            if "error" in result:
                print(f"{result['file']}: error: {result['error']}")
                continue
            if result["label"] is not None:
                parts = [f"{result['label']} ({result['scores'][result['label']]:.1%})"]
            else:  # scores, or nothing but strokes for a transcription model
                parts = [", ".join(f"{k} {v:.1f}" for k, v in result["scores"].items())] if result["scores"] else []
            if "strokes" in result:
                parts.append(_strokes_summary(result["strokes"]))
            line = f"{result['file']}: " + "; ".join(parts)
            print(line + (f"  [warning: {result['warning']}]" if result.get("warning") else ""))
            for stroke in result.get("strokes", []) if args.strokes else []:
                print("    " + ", ".join(f"{key} {value}" for key, value in stroke.items()))
    return 1 if any("error" in result for result in results) else 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import build_demo, write_space

    if args.space:
        folder = write_space(args.model, args.space)
        print(f"wrote the Space folder {folder}; upload it with: hf upload USER/SPACE {folder} . --repo-type space")
        return 0
    build_demo(args.model).launch(server_name=args.host, server_port=args.port, share=args.share)
    return 0


def _strokes_summary(strokes: list[dict]) -> str:
    text = f"{len(strokes)} strokes"
    deviations = [abs(s["deviation_ms"]) for s in strokes if "deviation_ms" in s]
    if deviations:
        text += f", mean |deviation| {sum(deviations) / len(deviations):.1f} ms from the grid"
    return text


def _positive(kind: type, what: str, smallest: str):
    """An argparse type: a number of `kind` above 0, with a one-line error saying what was expected."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be {smallest}, got {value:g}")
        return value
    return parse


_positive_float = _positive(float, "a number", "above 0")
_positive_int = _positive(int, "a whole number", "at least 1")


class _OneLineErrors(argparse.ArgumentParser):
    """Bad arguments as one line, like every other error a user can fix (argparse prints the usage first)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineErrors(prog="sousa-hf", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="make, inspect and check SOUSA data")
    data_commands = data.add_subparsers(dest="data_command", required=True)

    synth = data_commands.add_parser("synth", help="write a synthetic SOUSA in the Hub layout (offline)")
    synth.add_argument("out_dir", help="folder to write (configs audio, midi_only, labels_only + auxiliary)")
    synth.add_argument("--samples", type=_positive_int, default=200, help="number of clips (default 200)")
    synth.add_argument("--seed", type=int, default=0, help="random seed; the same seed writes the same data")
    synth.add_argument("--overwrite", action="store_true", help="replace out_dir if it exists")
    synth.add_argument("--num-proc", type=int, default=None, help="processes rendering audio (default: all cores)")
    synth.set_defaults(run=_data_synth)

    summary = data_commands.add_parser("summary", help="load a SOUSA source, check it and print its counts")
    summary.add_argument("source", help="Hub id (zkeown/sousa), a folder in the Hub layout, or Parquet files")
    summary.add_argument("--config", default="audio", choices=("audio", "midi_only", "labels_only"))
    summary.add_argument("--show-batch", type=int, default=0, metavar="N",
                         help="also decode and describe the first N training clips")
    summary.set_defaults(run=_data_summary)

    adapters = commands.add_parser("adapters", help="feature-extractor adapters")
    adapter_commands = adapters.add_subparsers(dest="adapters_command", required=True)
    stats = adapter_commands.add_parser(
        "stats", help="fit AST's or the CNN's spectrogram mean/std on a training split and save the extractor")
    stats.add_argument("adapter", help="ast, cnn, or an AST checkpoint")
    stats.add_argument("--data", required=True, help="SOUSA source (Hub id, folder or Parquet files)")
    stats.add_argument("--out-dir", required=True, help="folder for the feature extractor with the statistics")
    stats.add_argument("--max-clips", type=int, default=None, help="measure at most this many training clips")
    stats.add_argument("--max-seconds", type=float, default=None, help="length policy max_seconds")
    stats.set_defaults(run=_adapters_stats)

    train = commands.add_parser("train", help="train a model from a recipe (same as python -m sousa_hf.train)")
    train.add_argument("recipe", nargs="?", help="recipe YAML (default: every key at its default)")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a recipe key (YAML value), e.g. --set max_steps=5 --set backbone=hubert:tiny")
    train.set_defaults(run=_train)

    evaluate = commands.add_parser("evaluate", help="write results.json and metrics/ for a saved model on a split")
    evaluate.add_argument("model_dir", help="a training run's output folder (or a Hub id)")
    evaluate.add_argument("--data", required=True, help="SOUSA source (Hub id, folder or Parquet files)")
    evaluate.add_argument("--split", default="test", help="split to evaluate (default test)")
    evaluate.add_argument("--output-dir", default=None, help="report folder (default MODEL_DIR/eval-SPLIT)")
    evaluate.add_argument("--batch-size", type=_positive_int, default=16, help="clips per forward pass (default 16)")
    evaluate.add_argument("--bad-audio", choices=("error", "skip"), default="error",
                          help="a clip whose audio cannot be decoded stops the evaluation (error, default) or is left "
                               "out and listed in results.json (skip)")
    evaluate.set_defaults(run=_evaluate)

    push = commands.add_parser("push", help="upload a trained model with its card, code and recipe to the Hub")
    push.add_argument("model_dir", help="a training run's output folder")
    push.add_argument("--repo-id", required=True, help="USER/NAME (or ORG/NAME) of the Hub repository")
    push.add_argument("--private", action="store_true", help="create the repository private")
    push.add_argument("--exist-ok", action="store_true",
                      help="push a new commit to an existing repository (its files become this model's)")
    push.add_argument("--dry-run", metavar="OUT_DIR", default=None,
                      help="write exactly the folder that would be uploaded to OUT_DIR; upload nothing")
    push.set_defaults(run=_push)

    predict = commands.add_parser("predict", help="label or score audio files with a saved model")
    predict.add_argument("model", help="a training run's output folder or a Hub id")
    predict.add_argument("inputs", nargs="+", metavar="FILE_OR_DIR",
                         help="audio files (wav, flac, mp3, ogg; any rate, mono or stereo) or folders of them")
    predict.add_argument("--json", action="store_true",
                         help='print one JSON list: {"file", "label", "scores"} or {"file", "error"} per file')
    predict.add_argument("--batch-size", type=_positive_int, default=8, help="clips per forward pass (default 8)")
    predict.add_argument("--tempo", type=_positive_float, default=None, metavar="BPM",
                         help="the metronome's tempo: stroke models then give each stroke's deviation from the grid "
                              "(and models trained with use_tempo need it; a model with rhythm_patterns also expects "
                              "each recording to start on its first beat, as SOUSA's takes do)")
    predict.add_argument("--subdivision", type=_positive_int, default=4,
                         help="grid positions per beat for --tempo (default 4: sixteenth notes)")
    predict.add_argument("--timeline", default=None, metavar="DIR",
                         help="stroke models: draw each take's stroke timeline as DIR/<file>.png")
    predict.add_argument("--strokes", action="store_true", help="stroke models: list every stroke (text output)")
    predict.set_defaults(run=_predict)

    demo = commands.add_parser("demo", help="serve a saved model as a web app (Gradio; pip install 'sousa-hf[demo]')")
    demo.add_argument("model", help="a training run's output folder or a Hub id")
    demo.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1: this machine only)")
    demo.add_argument("--port", type=_positive_int, default=7860, help="port (default 7860)")
    demo.add_argument("--share", action="store_true", help="also open a temporary public gradio.live link")
    demo.add_argument("--space", metavar="SPACE_DIR", default=None,
                      help="write a Hugging Face Space folder (the model, app.py, requirements.txt) instead of serving")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except (SousaDataError, OSError) as err:
        # What a user can fix (a bad value, a missing file or model) is one line; other exceptions are
        # bugs and keep their traceback.
        print(f"sousa-hf: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
