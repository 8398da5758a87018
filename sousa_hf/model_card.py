"""The model card of a trained SOUSA model, filled from its run: `results.json`, `recipe.yaml`, config.

The templates are `model_cards/<task>.md` (Jinja2, over `model_cards/base.md`). The metadata is
built with huggingface_hub's `ModelCardData` and `EvalResult`, so the `model-index` is what the Hub
parses, with every metric of `results.json`.
"""

from __future__ import annotations

import json
import math
from dataclasses import fields
from importlib import resources
from pathlib import Path

import jinja2
from huggingface_hub import EvalResult, ModelCard, ModelCardData
from safetensors import safe_open

from .configuration_sousa import SousaConfig
from .data.errors import SousaDataError
from .data.loading import HUB_ID, data_origin
from .data.tasks import get_task
from .data.tier_confidence import SKILL_TIERS
from .recipe import Recipe, read_saved_recipe

# Recipe keys worth a row in the card's hyper-parameter table (the TrainingArguments values all are).
RECIPE_HYPERPARAMETERS = ("training_mode", "lora", "pooling", "strokes_from", "length", "augmentation",
                          "feature_extractor_config",
                          "temporal_blocks", "temporal_gru", "aux_strokes", "use_tempo", "rhythm_patterns",
                          "pattern_evidence", "pattern_matches", "class_weights", "regression_loss", "huber_delta",
                          "target_weights", "classifier_dropout", "early_stopping_patience")
# TrainingArguments values that describe the machine or the run's files, not the training.
NOT_HYPERPARAMETERS = {"output_dir", "logging_steps", "logging_dir", "report_to", "push_to_hub", "hub_model_id",
                       "hub_private_repo", "hub_token", "hub_strategy", "dataloader_num_workers", "save_total_limit",
                       "per_device_eval_batch_size", "use_cpu", "disable_tqdm", "overwrite_output_dir"}
UNKNOWN_DATA = "unknown"
DATA_LICENSES = {"sousa": "MIT (SOUSA's license)", "synthetic": "MIT (made by sousa-hf, MIT-licensed)"}
# Base checkpoints whose weights are MIT-licensed, so that the fine-tuned model can be too.
MIT_BASE_MODELS = ("openai/whisper-",)
TIER_METRICS = {"classification": ("balanced_accuracy", "accuracy", "macro_f1"), "regression": ("mae", "r2"),
                "multitask": ("mae", "r2"), "strokes": ("onset_f1_25ms", "onset_f1_10ms", "onset_mae_ms")}
METRIC_NAMES = {"balanced_accuracy": "Balanced accuracy", "accuracy": "Accuracy", "macro_f1": "Macro F1",
                "quadratic_kappa": "Quadratic weighted kappa", "within_family_error_rate": "Within-family error rate",
                "mse": "MSE (0-100)", "mae": "MAE (0-100)", "r2": "R2",
                "onset_f1_25ms": "Onset F1 (25 ms)", "onset_f1_10ms": "Onset F1 (10 ms)",
                "onset_mae_ms": "Onset time MAE (ms)", "velocity_mae": "Velocity MAE (0-127)"}


def make_model_card(model_dir: str | Path, repo_id: str | None = None) -> ModelCard:
    """The card of the model saved in `model_dir` (a training run's output folder).

    Args:
        model_dir: holds `config.json`, `results.json` and, from `sousa-hf train`, `recipe.yaml`.
        repo_id: the Hub repository it goes to (names the model and fills the loading example).
    """
    model_dir = Path(model_dir)
    results = _read_json(model_dir / "results.json",
                         "run `sousa-hf evaluate MODEL_DIR --data SOURCE --output-dir MODEL_DIR` to make it")
    config = SousaConfig.from_pretrained(model_dir)
    recipe = read_saved_recipe(model_dir)
    task = get_task(config.task)
    repo_id = repo_id or f"USER/{model_dir.resolve().name}"
    # Without a recipe (a model evaluated, not trained, here) the report names the data it was evaluated on.
    data = recipe.get("data") if recipe else results.get("data", UNKNOWN_DATA)
    if data == "synthetic":  # how `sousa_hf.train` records the built-in synthetic SOUSA in results.json
        data = None
    origin = results.get("data_origin") or ("synthetic" if data is None else "unknown" if data == UNKNOWN_DATA
                                            else data_origin(data))
    base_model = _base_model(config.backbone)
    card_data = ModelCardData(
        model_name=repo_id.split("/")[-1],
        library_name="transformers",
        pipeline_tag="audio-classification" if task.kind == "classification" else "other",
        # Only a model trained on SOUSA itself names it; the suite's synthetic stand-in is not that dataset.
        datasets=[HUB_ID] if origin == "sousa" else None,
        license=_license(origin, config.backbone),
        base_model=base_model,
        tags=["audio", "sousa", "snare-drum", "drumming-assessment", task.name],
        eval_results=_eval_results(results, task, data),
    )
    per_tier = _read_json(model_dir / "metrics" / "per_skill_tier.json") if (
        model_dir / "metrics" / "per_skill_tier.json").is_file() else {}
    tier_metrics = [m for m in TIER_METRICS[task.kind] if any(m in row for row in per_tier.values())]
    environment = jinja2.Environment(loader=jinja2.FunctionLoader(_template_source), undefined=jinja2.StrictUndefined,
                                     keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    content = environment.get_template(f"{task.name}.md").render(
        card_data=card_data.to_yaml(),
        model_name=card_data.model_name,
        repo_id=repo_id,
        task=task.name,
        task_description=task.description,
        config=config,
        recipe={"eval_split": "validation", **recipe},
        recipe_saved=bool(recipe),
        results=results,
        data_description=_data_description(data, recipe),
        data_license=DATA_LICENSES.get(origin, "not recorded with this model"),
        backbone_description=_backbone_description(config.backbone, model_dir, recipe.get("strokes_from")),
        input_description=_input_description(config),
        head_description=_head_description(config, task),
        filters_description=_filters_description(recipe, task),
        presets_description=_presets_description(recipe),
        hyperparameters_table=_markdown_table(["hyper-parameter", "value"], _hyperparameters(recipe, task)),
        metrics_table=_markdown_table(["metric", "value"], [(METRIC_NAMES.get(name, name), _format(value))
                                                            for name, value in results["metrics"].items()]),
        per_tier_table=per_tier and _markdown_table(
            ["skill tier", "clips", *(METRIC_NAMES.get(m, m) for m in tier_metrics)],
            [[tier, row["count"], *(_format(row.get(m)) for m in tier_metrics)]
             for tier, row in sorted(per_tier.items(), key=lambda item: _tier_order(item[0]))]),
    )
    return ModelCard(content)


def _template_source(name: str) -> str:
    template = resources.files("sousa_hf.model_cards") / name
    if not template.is_file():
        raise SousaDataError(f"no model-card template {name!r} in model_cards/")
    return template.read_text(encoding="utf-8")


def _read_json(path: Path, hint: str = "") -> dict:
    if not path.is_file():
        raise SousaDataError(f"{path} is missing; {hint}" if hint else f"{path} is missing")
    return json.loads(path.read_text())


def _eval_results(results: dict, task, data: str | None) -> list[EvalResult]:
    real = data == HUB_ID
    return [
        EvalResult(
            task_type="audio-classification" if task.kind == "classification" else "other",
            task_name=task.description,
            dataset_type=HUB_ID if real else "sousa-hf/synthetic-sousa" if data is None else "local-sousa",
            dataset_name="SOUSA" if real else "synthetic SOUSA (sousa-hf)" if data is None else "SOUSA (local copy)",
            dataset_config="audio",
            dataset_split=results["split"],
            metric_type=name,
            metric_name=METRIC_NAMES.get(name, name),
            metric_value=value,
        )
        for name, value in results["metrics"].items()
        if value is not None and not (isinstance(value, float) and math.isnan(value))
    ]


def _license(origin: str, backbone: str | None) -> str | None:
    """`mit` where both the data (SOUSA or the suite's synthetic data) and the starting weights (random, or an MIT
    Hub checkpoint) are MIT; otherwise unset, as the base model's own license (unknown for a local folder) governs."""
    if origin not in DATA_LICENSES or not backbone:
        return None
    from_scratch = backbone.endswith((":random", ":tiny")) and not Path(backbone).exists()
    base_model = _base_model(backbone)
    return "mit" if from_scratch or (base_model and base_model.startswith(MIT_BASE_MODELS)) else None


def _base_model(backbone: str | None) -> str | None:
    """A Hub checkpoint the backbone started from; None for random init (`cnn:random`, `hubert:tiny`)."""
    if not backbone or ":" in backbone or Path(backbone).exists():
        return None
    return backbone


def _data_description(data: str | None, recipe: dict) -> str:
    if data == UNKNOWN_DATA:
        return "not recorded with this model"
    if data == HUB_ID:
        return f"[SOUSA](https://huggingface.co/datasets/{HUB_ID}) (config `audio`)"
    if data is None:
        return (f"the built-in synthetic SOUSA of sousa-hf ({recipe.get('synthetic_samples', '?')} clips, seed "
                f"{recipe.get('synthetic_seed', '?')}), made by the suite's own generator in SOUSA's layout, "
                f"not the published dataset")
    return f"a local copy of SOUSA (`{Path(str(data)).name}`)"


def _backbone_description(backbone: str | None, model_dir: Path, strokes_from: str | None = None) -> str:
    parameters = _count_parameters(model_dir / "model.safetensors")
    size = f" ({parameters / 1e6:.2f}M parameters in all)" if parameters else ""
    if strokes_from:
        return (f"the trained stroke model `{Path(str(strokes_from)).name}` (`{backbone}` architecture, its temporal "
                f"blocks and stroke head), frozen{size}")
    if backbone and _base_model(backbone):
        return f"[{backbone}](https://huggingface.co/{backbone}), pretrained{size}"
    if backbone and backbone.endswith(":random"):
        family = backbone.split(":")[0]
        return f"`{backbone}`: the {family} architecture from random weights, trained from scratch{size}"
    if backbone and backbone.endswith(":tiny"):
        return f"`{backbone}`: a tiny random configuration for smoke tests, not a useful model{size}"
    return f"`{backbone}`{size}"


def _count_parameters(weights: Path) -> int:
    if not weights.is_file():
        return 0
    with safe_open(str(weights), framework="pt") as file:
        return sum(math.prod(file.get_slice(name).get_shape()) for name in file.keys())


def _input_description(config: SousaConfig) -> str:
    crop = (f"clips longer than {config.max_seconds:g} s cropped (the centre, to evaluate)"
            if config.max_seconds else "the whole clip")
    return f"`{config.adapter}` adapter: mono audio at {config.sampling_rate} Hz, {crop}"


def _head_description(config: SousaConfig, task) -> str:
    if config.pooling == "stroke_statistics":
        grid = " and against the metronome grid of the given tempo" if config.use_tempo else ""
        if config.rhythm_patterns is not None:
            grid += (f", and each stroke's distance from its notated position in the best-matching of "
                     f"{len(config.rhythm_patterns['cycle_beats'])} rhythm patterns learned from the training split's "
                     "stroke labels (laid from the take's first beat: a take must start on it)")
            if config.pattern_evidence:
                grid += ", with the stroke head's onset probability and velocity read at each notated position"
            if config.pattern_matches:
                grid += ", and how much worse than the best each rhythm pattern matches"
        statistics = f"statistics of the strokes the stroke head finds (intervals, velocities, grace notes{grid})"
        if config.statistics_head == "boosted_trees":
            trees = config.boosted_trees
            return (f"gradient-boosted trees (up to {trees['max_iter']} iterations of {trees['max_leaf_nodes']} "
                    f"leaves, learning rate {trees['learning_rate']:g}; fitted by scikit-learn on the training split, "
                    f"the iterations kept chosen on validation) on {statistics}, their leaf values summed into each "
                    + ("class's logit" if task.kind == "classification" else "score"))
        clip_head = _clip_head_description(config, task)
        article = "" if clip_head.startswith("one ") else "a "
        return f"a two-layer MLP (width {config.statistics_hidden_size}) on {statistics}, feeding {article}{clip_head}"
    return _clip_head_description(config, task)


def _clip_head_description(config: SousaConfig, task) -> str:
    if task.kind == "strokes":
        return (f"a stroke head per frame ({1000 * config.frame_seconds:g} ms apart): onset, velocity and grace-note "
                "logits, decoded into strokes by peak picking")
    if task.kind == "classification":
        return f"linear classifier over {config.num_labels} labels ({', '.join(config.id2label.values())})"
    names = ", ".join(config.target_names)
    if task.kind == "regression":
        return f"linear regressor of {names} on 0-1, reported on 0-100 ({config.regression_loss} loss)"
    weights = config.target_weights or {}
    weighted = ", ".join(f"{name} x{weights[name]:g}" for name in config.target_names if name in weights)
    return (f"one linear head per target ({names}) on 0-1, reported on 0-100; {config.regression_loss} loss "
            f"masked where a target is null" + (f", weighted {weighted}" if weighted else ""))


def _filters_description(recipe: dict, task) -> str:
    parts = []
    if task.min_tier_confidence is not None and recipe.get("apply_default_filter", True):
        parts.append(f"`tier_confidence > {task.min_tier_confidence:g}` (the task's default, from the SOUSA guide)")
    for key, value in (recipe.get("filters") or {}).items():
        if key != "presets":
            parts.append(f"`{key}`: {value}")
    return "; ".join(parts) if parts else "none: every clip of each split"


def _presets_description(recipe: dict) -> str:
    presets = (recipe.get("filters") or {}).get("presets")
    if presets:
        return f"only {', '.join(f'`{p}`' for p in ([presets] if isinstance(presets, str) else presets))}"
    return ("all five of SOUSA's room and processing presets (clean studio, practice room, gym, garage, marching "
            "field), in training and evaluation alike")


def _hyperparameters(recipe: dict, task) -> list[tuple[str, str]]:
    recipe_keys = {field.name for field in fields(Recipe)}
    unused = {"classification": {"regression_loss", "huber_delta", "target_weights"},
              "regression": {"class_weights", "target_weights"}, "multitask": {"class_weights"},
              "strokes": {"class_weights", "regression_loss", "huber_delta", "target_weights"}}[task.kind]
    unused |= {key for key in ("temporal_blocks", "temporal_gru", "aux_strokes", "use_tempo", "rhythm_patterns",
                               "pattern_evidence", "pattern_matches", "feature_extractor_config")
                if not recipe.get(key)}
    if recipe.get("regression_loss") != "huber":
        unused.add("huber_delta")
    if recipe.get("training_mode") != "lora":
        unused.add("lora")
    rows = [(key, recipe[key]) for key in RECIPE_HYPERPARAMETERS
            if key not in unused and recipe.get(key) not in (None, {}, [])]
    rows += [(key, value) for key, value in recipe.items() if key not in recipe_keys and key not in NOT_HYPERPARAMETERS]
    return [(key, f"`{json.dumps(value) if isinstance(value, (dict, list)) else value}`") for key, value in rows]


def _markdown_table(header: list[str], rows) -> str:
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(str(cell) for cell in line) + " |" for line in lines)


def _tier_order(tier: str) -> int:
    return SKILL_TIERS.index(tier) if tier in SKILL_TIERS else len(SKILL_TIERS)


def _format(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.4f}" if isinstance(value, float) else str(value)
