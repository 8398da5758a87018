"""A training run's output folder: whether a new run may write to it, resume in it, or finds its model there.

The folder is the record of the model it holds: `recipe.yaml` says how that model was trained, and the
card and the upload are made from it. So a run into a folder that already holds a finished model is
refused unless its recipe is that model's (then there is nothing to train), a crashed run resumes only
under a recipe that agrees on what the model and data are, and a checkpoint that cannot be read is
named before training starts rather than failing inside `Trainer`.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import zipfile
from pathlib import Path

from safetensors import safe_open
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

from .data.errors import SousaDataError
from .recipe import Recipe, changed_identity_keys, changed_keys, read_saved_recipe

WEIGHT_FILES = ("model.safetensors", "adapter_model.safetensors")
# Trainer's torch.save files in a checkpoint (zip archives whose members carry CRCs).
STATE_FILES = ("optimizer.pt", "scheduler.pt", "rng_state.pth", "training_args.bin")


def check_output_dir(output_dir: str | Path) -> None:
    """`output_dir` is, or can be made as, a folder this process can write to (it is not created here); the
    error says that it is `output_dir`."""
    path = Path(output_dir)
    hint = "set output_dir to a folder you can write to (--set output_dir=runs/NAME)"
    if path.exists() and not path.is_dir():
        raise SousaDataError(f"output_dir {str(path)!r} is a file, not a folder; {hint}")
    existing = next(p for p in (path, *path.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise SousaDataError(f"output_dir {str(path)!r} cannot be made: {str(existing)!r} is a file; {hint}")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise SousaDataError(f"output_dir {str(path)!r} cannot be written to ({str(existing)!r}: "
                             f"{err.strerror or err}); {hint}") from err


def holds_finished_model(output_dir: str | Path) -> bool:
    """Whether `output_dir` holds a saved model (what a finished run leaves beside its checkpoints)."""
    return any((Path(output_dir) / name).is_file() for name in WEIGHT_FILES)


def finished_run(recipe: Recipe, training: dict, output_dir: str | Path) -> dict | None:
    """The `results.json` of the finished run of this very recipe in `output_dir`, or `None` if there is none.

    A folder holding a model made by another recipe (or by none) is refused: training into it would replace
    the record of that model. The same recipe over a model whose report is missing (a run that crashed while
    evaluating) returns `None`, so that the run resumes and writes it.
    """
    if not holds_finished_model(output_dir):
        return None
    earlier = read_saved_recipe(output_dir)
    where = f"{output_dir} holds a finished model"
    if not earlier:
        raise SousaDataError(f"{where} without the recipe.yaml that made it; train into another output_dir "
                             "(--set output_dir=...) or delete that folder")
    changed = changed_keys(recipe, training, earlier)
    if changed:
        raise SousaDataError(
            f"{where} trained with another recipe ({', '.join(changed)}); a run into that folder would replace the "
            "record of that model: train into another output_dir (--set output_dir=...), or delete it to retrain")
    if not recipe.resume:
        raise SousaDataError(f"{where} of this recipe and the recipe says resume: false; train into another "
                             "output_dir (--set output_dir=...) or delete it to retrain")
    results = Path(output_dir) / "results.json"
    return json.loads(results.read_text()) if results.is_file() else None


def resume_checkpoint(recipe: Recipe, output_dir: str | Path) -> str | None:
    """The last checkpoint in `output_dir` to resume from, if the recipe resumes and there is one.

    A checkpoint of a run whose `recipe.yaml` differs in what the model or data is (task, backbone,
    data, ...) is refused: Trainer would load its weights into a different model without a word. So is
    one that cannot be read (a crash while saving, a truncated copy), naming the checkpoint before it.
    """
    output_dir = str(output_dir)
    checkpoint = get_last_checkpoint(output_dir) if os.path.isdir(output_dir) else None
    if checkpoint is None:
        return None
    if not recipe.resume:
        # Trainer would keep the old run's higher-numbered checkpoints and rotate the new run's away.
        raise SousaDataError(f"{output_dir} holds checkpoints of an earlier run and the recipe says resume: false; "
                             "train into another output_dir (--set output_dir=...) or delete them first")
    earlier = read_saved_recipe(output_dir)
    if earlier:
        changed = changed_identity_keys(recipe, earlier)
        if changed:
            raise SousaDataError(
                f"{output_dir} holds checkpoints of a run whose recipe differs in {', '.join(changed)}; train into "
                "another output_dir (--set output_dir=...), or delete them to start over there")
    check_checkpoint(checkpoint)
    return checkpoint


def check_checkpoint(checkpoint: str | Path) -> None:
    """Raise, naming the file and what to do, when a checkpoint cannot be resumed from."""
    checkpoint = Path(checkpoint)
    problem = _checkpoint_problem(checkpoint)
    if problem is None:
        return
    earlier = sorted((p for p in checkpoint.parent.glob(f"{PREFIX_CHECKPOINT_DIR}-*") if p != checkpoint
                      and _step(p) < _step(checkpoint)), key=_step)
    fix = (f"delete it (rm -r {checkpoint}) to resume from {earlier[-1].name}, the one before" if earlier
           else f"delete it (rm -r {checkpoint}) to start the run over")
    raise SousaDataError(f"cannot resume from {checkpoint}: it is incomplete or corrupt ({problem}); {fix}")


def _checkpoint_problem(checkpoint: Path) -> str | None:
    state = checkpoint / "trainer_state.json"
    try:
        json.loads(state.read_text())["global_step"]
    except (OSError, ValueError, KeyError) as err:
        return f"trainer_state.json: {type(err).__name__}: {err}"
    weights = [checkpoint / name for name in WEIGHT_FILES if (checkpoint / name).is_file()]
    if not weights:
        return f"no {' or '.join(WEIGHT_FILES)}"
    for path in weights:
        try:
            with safe_open(str(path), framework="pt") as file:
                list(file.keys())
        except Exception as err:  # safetensors raises its own SafetensorError for a truncated file
            return f"{path.name}: {err}"
    for name in STATE_FILES:
        path = checkpoint / name
        if path.is_file():
            try:
                with zipfile.ZipFile(path) as archive:
                    broken = archive.testzip()
            except (OSError, zipfile.BadZipFile) as err:
                return f"{name}: {err}"
            if broken is not None:
                return f"{name}: its entry {broken} fails its checksum"
    return None


def _step(checkpoint: Path) -> int:
    match = re.fullmatch(rf"{PREFIX_CHECKPOINT_DIR}-(\d+)", checkpoint.name)
    return int(match.group(1)) if match else -1
