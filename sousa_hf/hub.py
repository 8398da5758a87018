"""Pushing a trained SOUSA model to the Hub: exactly the files a user of the model needs.

    sousa-hf push runs/skill4-hubert --repo-id USER/sousa-skill4-hubert [--private] [--dry-run OUT_DIR]

The repository gets the weights (safetensors), `config.json` with its `auto_map` (and
`custom_pipelines` for classifiers), the feature extractor's config with the adapter settings, the
remote code those name, the model card made from the run, the recipe and `results.json` with the
per-tier/preset/rudiment breakdowns. Checkpoints, optimizer states and `training_args.bin` stay
local. `SousaTrainer.push_to_hub` (a recipe with `push_to_hub: true`) uploads the same folder.
"""

from __future__ import annotations

import importlib
import json
import logging
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from huggingface_hub import HfApi, constants, get_session, get_token
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled
from transformers.dynamic_module_utils import get_relative_import_files

from .data.errors import SousaDataError
from .model_card import make_model_card

logger = logging.getLogger(__name__)

# Besides the weights, config and remote code: what a user of the model wants next to it.
RUN_FILES = ("preprocessor_config.json", "recipe.yaml", "results.json")
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
HUB_MODEL_ID = re.compile(r"^([A-Za-z0-9][\w.-]*/)?[\w.-]+$")  # also the namespace-less legacy ids (gpt2)


class SousaHubError(SousaDataError):
    """A push that cannot go ahead: no token, a refused token, an existing repository, a bad repo id."""


def upload_files(model_dir: str | Path) -> list[Path]:
    """The files of `model_dir` (relative paths) that belong in the model's Hub repository."""
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise SousaHubError(f"{model_dir} holds no config.json; pass a training run's output folder")
    weights = sorted(model_dir.glob("model*.safetensors")) + sorted(model_dir.glob("model.safetensors.index.json"))
    if not weights:
        raise SousaHubError(f"{model_dir} holds no safetensors weights (model.safetensors); re-save the model with "
                            "save_pretrained (safetensors is its default)")
    config = json.loads((model_dir / "config.json").read_text())
    code = {f"{ref.split('--')[-1].rsplit('.', 1)[0]}.py" for ref in (config.get("auto_map") or {}).values()}
    code |= {f"{task['impl'].rsplit('.', 1)[0]}.py" for task in (config.get("custom_pipelines") or {}).values()}
    extractor = model_dir / "preprocessor_config.json"
    if extractor.is_file():
        for ref in (json.loads(extractor.read_text()).get("auto_map") or {}).values():
            code.add(f"{ref.split('--')[-1].rsplit('.', 1)[0]}.py")
    for name in list(code):  # and what that code imports (Transformers copied it beside the model)
        if (model_dir / name).is_file():
            code |= {Path(path).name for path in get_relative_import_files(str(model_dir / name))}
    missing = sorted(name for name in code if not (model_dir / name).is_file())
    if missing:
        raise SousaHubError(f"{model_dir} lacks the remote code its config names: {', '.join(missing)}; re-save the "
                            "model with sousa_hf imported")
    files = [path.relative_to(model_dir) for path in weights]
    files += [Path(name) for name in ("config.json", *sorted(code), *RUN_FILES) if (model_dir / name).is_file()]
    if (model_dir / "metrics").is_dir():
        files += sorted(path.relative_to(model_dir) for path in (model_dir / "metrics").iterdir() if path.is_file())
    return files


def prepare_upload(model_dir: str | Path, out_dir: str | Path, repo_id: str) -> Path:
    """Write the folder that `push` uploads: the model's files and its card (`README.md`).

    `out_dir` must not exist or be empty (this is `sousa-hf push --dry-run OUT_DIR`).
    """
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    check_repo_id(repo_id)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise SousaHubError(f"{out_dir} exists and is not empty; pass a new folder")
    files = upload_files(model_dir)
    card = make_model_card(model_dir, repo_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in files:
        (out_dir / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(model_dir / name, out_dir / name)
    card.save(out_dir / "README.md")
    return out_dir


def push_model(model_dir: str | Path, repo_id: str, *, private: bool = False, exist_ok: bool = False,
               token: str | None = None, commit_message: str = "Upload SOUSA model") -> str:
    """Create `repo_id` (unless it exists and `exist_ok`) and upload the model folder to it.

    The commit makes the repository hold exactly that folder: files from an earlier push that the new
    model does not have are deleted. Returns the repository's URL.
    """
    check_repo_id(repo_id)
    api = HfApi(token=require_token(token))
    with hub_errors(repo_id):
        exists = api.repo_exists(repo_id)
        if exists and not exist_ok:
            raise SousaHubError(f"{repo_id} already exists on the Hub; pass --exist-ok to push a new commit to it "
                                "(the files it holds that this model lacks are deleted) or choose another --repo-id")
        url = api.create_repo(repo_id, private=private, exist_ok=True)
        if exists:
            logger.info("%s exists: pushing a new commit to it", repo_id)
        with tempfile.TemporaryDirectory() as scratch:
            folder = prepare_upload(model_dir, Path(scratch) / "upload", repo_id)
            api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message=commit_message,
                              delete_patterns="*")
    return str(url)


def check_push_target(output_dir: str | Path, hub_model_id: str | None, *, token: str | None = None,
                      exist_ok: bool = False) -> str:
    """Before a training run that pushes at the end: the token works and the repository is free.

    The repository is `hub_model_id`, or `output_dir`'s name, in the token's namespace when it names
    none (as `Trainer` chooses it). One that exists and already holds files is refused unless
    `exist_ok`; an empty one (made by a run that crashed before its push) is reused. Returns the repo id.
    """
    api = HfApi(token=require_token(token))
    name = hub_model_id or Path(output_dir).absolute().name
    with hub_errors(name):
        repo_id = name if "/" in name else f"{api.whoami()['name']}/{name}"
        if not REPO_ID.match(repo_id):
            raise SousaHubError(f"push_to_hub would push to {repo_id!r}, which is not a Hub repo id; set hub_model_id "
                                "to USER/NAME (it defaults to output_dir's folder name)")
        if api.repo_exists(repo_id) and not exist_ok:
            held = [path for path in api.list_repo_files(repo_id) if path != ".gitattributes"]
            if held:
                raise SousaHubError(
                    f"{repo_id} already exists on the Hub and holds {len(held)} file(s); set hub_exist_ok: true "
                    "(--set hub_exist_ok=true) to replace them with this run's model, or choose another hub_model_id")
    return repo_id


def check_hub_strategy(hub_strategy: str) -> None:
    """Only `end`: Trainer's other strategies upload `output_dir` while it holds a half-written run (no card,
    `training_args.bin`, checkpoints), commits that are not loadable models."""
    value = getattr(hub_strategy, "value", hub_strategy)
    if value != "end":
        raise SousaHubError(f"hub_strategy {value!r} is not supported: Trainer's intermediate pushes upload output_dir "
                            "while training (no model card or report, checkpoints); the suite pushes the finished, "
                            "loadable model once at the end: set hub_strategy: end (the default)")


@contextmanager
def hub_errors(repo_id: str) -> Iterator[None]:
    """Hub failures a user can fix (a refused token, no network) as one-line `SousaHubError`s."""
    try:
        yield
    except HfHubHTTPError as err:
        raise SousaHubError(explain_hub_error(err, repo_id)) from err
    except OfflineModeIsEnabled as err:
        raise SousaHubError(f"cannot reach the Hub for {repo_id}: offline mode is on (HF_HUB_OFFLINE=1); unset it "
                            "to push") from err
    except Exception as err:
        if not isinstance(err, _transport_errors()):
            raise
        # Connection refused, DNS, timeouts, after huggingface_hub's own retries.
        raise SousaHubError(f"cannot reach the Hub at {constants.ENDPOINT} for {repo_id} ({type(err).__name__}: "
                            f"{err}); check the network connection and HF_ENDPOINT, then run again") from err


def _transport_errors() -> tuple[type[Exception], ...]:
    """The network errors of the HTTP client huggingface_hub uses (httpx, or httpx2 in recent releases)."""
    client = importlib.import_module(type(get_session()).__module__.split(".")[0])
    return (client.TransportError, ConnectionError, TimeoutError)


def require_token(token: str | None = None) -> str:
    """`token`, or the one `hf auth login` or `HF_TOKEN` gives; a clear error when there is none."""
    token = token or get_token()
    if not token:
        raise SousaHubError("no Hugging Face token: run `hf auth login` or set the HF_TOKEN environment variable "
                            "to a token with write access")
    return token


def check_model_source(source: str) -> None:
    """A saved model's folder or a Hub id; a path that is neither, or a folder without a model, is an error."""
    if Path(source).is_dir():
        folder = Path(source)
        if not (folder / "config.json").is_file() or not any(folder.glob("model*.safetensors")):
            held = "is empty" if not any(folder.iterdir()) else "holds no saved model (config.json and " \
                "model.safetensors)"
            raise SousaDataError(f"{source!r} {held}; pass the output folder of a finished training run (a run that "
                                 "crashed keeps its weights in checkpoint-* folders: resume it to finish)")
        return
    if Path(source).exists() or source.startswith((".", "/", "~")) or not HUB_MODEL_ID.match(source):
        raise SousaDataError(f"{source!r} is neither a folder holding a saved model nor a Hub id (USER/NAME); "
                             "pass a training run's output folder")


def check_repo_id(repo_id: str) -> None:
    if not REPO_ID.match(repo_id or ""):
        raise SousaHubError(f"--repo-id must be USER/NAME (or ORG/NAME), got {repo_id!r}")


def explain_hub_error(err: HfHubHTTPError, repo_id: str) -> str:
    status = err.response.status_code if err.response is not None else None
    if status == 401:
        return "the Hub refused the token (401); check it with `hf auth whoami` or set a valid HF_TOKEN"
    if status == 403:
        return f"the token may not write to {repo_id} (403): use your own namespace or a token with write access"
    return f"pushing to {repo_id} failed: {err}"
