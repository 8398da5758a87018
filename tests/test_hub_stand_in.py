"""The Hub stand-in against the real huggingface_hub client and transformers.

huggingface_hub reads HF_ENDPOINT and HF_HUB_OFFLINE at import time and the suite runs with HF_HUB_OFFLINE=1, so every
client step runs in a fresh interpreter pointed at the stand-in.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .hub_stand_in import DEFAULT_GITATTRIBUTES, HubStandIn

TOKEN, USER = "hf_test_token", "tester"
OTHER_TOKEN, OTHER_USER = "hf_other_token", "other"

# Prepended to every client script: errors are reported as data so that a test can assert on them.
PRELUDE = """
import json
from huggingface_hub import HfApi, hf_hub_download, snapshot_download

def outcome(call):
    try:
        value = call()
    except Exception as error:
        response = getattr(error, "response", None)
        return {"error": type(error).__name__, "status": getattr(response, "status_code", None)}
    return {"value": value}

api = HfApi()
"""


@pytest.fixture
def hub():
    with HubStandIn(tokens={TOKEN: USER, OTHER_TOKEN: OTHER_USER}) as hub:
        yield hub


def run_client(hub: HubStandIn, code: str, home: Path, token: str | None = TOKEN, **extra_env: str):
    """Run ``code`` against ``hub`` in a subprocess; it reports by assigning ``result``, returned here."""
    env = hub.client_env(home, token, **extra_env)
    script = PRELUDE + textwrap.dedent(code) + "\nprint('RESULT=' + json.dumps(result))\n"
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"client failed:\n{done.stderr[-4000:]}"
    return json.loads(done.stdout.rsplit("RESULT=", 1)[1])


def test_whoami(hub, tmp_path):
    result = run_client(hub, "result = [outcome(lambda: api.whoami()['name']), "
                             "outcome(lambda: api.whoami(token='hf_wrong'))]", tmp_path)
    assert result == [{"value": USER}, {"error": "HfHubHTTPError", "status": 401}]
    assert hub.requests[0].path == "/api/whoami-v2"
    assert hub.requests[0].headers["authorization"] == f"Bearer {TOKEN}"


def test_create_repo(hub, tmp_path):
    result = run_client(hub, f"""
        url = api.create_repo("{USER}/fresh")
        result = {{
            "url": [url, url.repo_id],
            "again": outcome(lambda: api.create_repo("{USER}/fresh")),
            "exist_ok": outcome(lambda: api.create_repo("{USER}/fresh", exist_ok=True).repo_id),
            "exists": [api.repo_exists("{USER}/fresh"), api.repo_exists("{USER}/missing")],
            "info": [api.model_info("{USER}/fresh").sha, api.repo_info("{USER}/fresh").private],
            "files": api.list_repo_files("{USER}/fresh"),
            "wrong_token": outcome(lambda: api.create_repo("{USER}/other", token="hf_wrong")),
            "no_token": outcome(lambda: api.create_repo("{USER}/other", token=False)),
            "other_namespace": outcome(lambda: api.create_repo("someone/else")),
            "missing_info": outcome(lambda: api.model_info("{USER}/missing")),
        }}
    """, tmp_path)
    assert result["url"] == [f"{hub.endpoint}/{USER}/fresh", f"{USER}/fresh"]
    assert result["again"] == {"error": "HfHubHTTPError", "status": 409}
    assert result["exist_ok"] == {"value": f"{USER}/fresh"}
    assert result["exists"] == [True, False]
    assert result["info"] == [hub.repo(f"{USER}/fresh").head.oid, False]
    assert result["files"] == [".gitattributes"]
    assert result["wrong_token"] == {"error": "HfHubHTTPError", "status": 401}
    assert result["no_token"] == {"error": "HfHubHTTPError", "status": 401}
    assert result["other_namespace"] == {"error": "HfHubHTTPError", "status": 403}
    assert result["missing_info"] == {"error": "RepositoryNotFoundError", "status": 404}
    assert set(hub.repos) == {f"{USER}/fresh"}
    assert hub.files(f"{USER}/fresh") == {".gitattributes": DEFAULT_GITATTRIBUTES}


@pytest.mark.parametrize("disable_xet", ["0", "1"], ids=["xet-installed", "xet-disabled"])
def test_upload_and_download_round_trip(hub, tmp_path, disable_xet):
    # upload_folder takes a different code path when hf_xet is importable (a streamed multi-commit pipeline) than
    # with HF_HUB_DISABLE_XET=1 (create_commit): both must stay off Xet and LFS.
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello hub\n")
    (folder / "old.txt").write_text("to be deleted\n")
    (folder / "sub").mkdir()
    weights = hashlib.sha256(b"seed").digest() * (2 * 1024 * 1024 // 32) + b"\x00\xff"  # ~2 MB of binary
    (folder / "sub" / "weights.bin").write_bytes(weights)
    repo = f"{USER}/data"

    first = run_client(hub, f"""
        api.create_repo("{repo}")
        info = api.upload_folder(folder_path=r"{folder}", repo_id="{repo}", commit_message="first")
        result = {{"oid": info.oid, "files": sorted(api.list_repo_files("{repo}"))}}
    """, tmp_path / "home", HF_HUB_DISABLE_XET=disable_xet)
    assert first["files"] == [".gitattributes", "notes.txt", "old.txt", "sub/weights.bin"]
    assert first["oid"] == hub.repo(repo).head.oid
    files = hub.files(repo)
    assert files["sub/weights.bin"] == weights
    assert files["notes.txt"] == b"hello hub\n"

    (folder / "old.txt").unlink()
    (folder / "new.txt").write_text("new\n")
    second = run_client(hub, f"""
        info = api.upload_folder(folder_path=r"{folder}", repo_id="{repo}", commit_message="second",
                                 delete_patterns="*.txt")
        api.upload_file(path_or_fileobj=b"single", path_in_repo="single.txt", repo_id="{repo}")
        result = {{"oid": info.oid, "files": sorted(api.list_repo_files("{repo}"))}}
    """, tmp_path / "home", HF_HUB_DISABLE_XET=disable_xet)
    assert second["oid"] != first["oid"]
    assert second["files"] == [".gitattributes", "new.txt", "notes.txt", "single.txt", "sub/weights.bin"]
    assert [c.title for c in hub.repo(repo).commits] == ["initial commit", "first", "second",
                                                          "Upload single.txt with huggingface_hub"]
    assert hub.files(repo, revision=first["oid"])["old.txt"] == b"to be deleted\n"

    commit_posts = [r for r in hub.requests if r.method == "POST" and "/commit/" in r.path]
    assert all(r.headers["content-type"] == "application/x-ndjson" for r in commit_posts)
    assert not [r for r in hub.requests if "xet" in r.path or "lfs" in r.path.lower()]

    # Downloads from an empty cache, anonymously (the repo is public).
    downloaded = run_client(hub, f"""
        result = {{
            "file": hf_hub_download("{repo}", "sub/weights.bin"),
            "old": hf_hub_download("{repo}", "old.txt", revision="{first['oid']}"),
            "snapshot": snapshot_download("{repo}"),
            "missing": outcome(lambda: hf_hub_download("{repo}", "nope.txt")),
            "missing_repo": outcome(lambda: hf_hub_download("{USER}/nope", "config.json")),
        }}
    """, tmp_path / "fresh-home", token=None)
    assert Path(downloaded["file"]).read_bytes() == weights
    assert Path(downloaded["old"]).read_text() == "to be deleted\n"
    snapshot = Path(downloaded["snapshot"])
    assert sorted(str(p.relative_to(snapshot)) for p in snapshot.rglob("*") if p.is_file()) == second["files"]
    assert {str(p.relative_to(snapshot)): p.read_bytes() for p in snapshot.rglob("*") if p.is_file()} == hub.files(repo)
    assert downloaded["missing"] == {"error": "RemoteEntryNotFoundError", "status": 404}
    assert downloaded["missing_repo"] == {"error": "RepositoryNotFoundError", "status": 404}


def test_private_repo_needs_its_owner_token(hub, tmp_path):
    repo = f"{USER}/secret"
    run_client(hub, f"""
        api.create_repo("{repo}", private=True)
        api.upload_file(path_or_fileobj=b"42", path_in_repo="answer.txt", repo_id="{repo}")
        result = None
    """, tmp_path)
    assert hub.repo(repo).private
    probe = f"""
        result = [api.repo_exists("{repo}"), outcome(lambda: hf_hub_download("{repo}", "answer.txt")),
                  outcome(lambda: api.list_repo_files("{repo}"))]
    """
    owner = run_client(hub, probe, tmp_path / "owner")
    assert owner[0] is True and Path(owner[1]["value"]).read_bytes() == b"42"
    assert owner[2] == {"value": [".gitattributes", "answer.txt"]}
    hidden = [False, {"error": "RepositoryNotFoundError", "status": 404}, {"error": "RepositoryNotFoundError",
                                                                           "status": 404}]
    assert run_client(hub, probe, tmp_path / "anonymous", token=None) == hidden
    assert run_client(hub, probe, tmp_path / "other", token=OTHER_TOKEN) == hidden
    # A token the Hub does not know is refused outright, even for public content.
    wrong = run_client(hub, f"result = outcome(lambda: hf_hub_download('{repo}', 'answer.txt'))", tmp_path / "wrong",
                       token="hf_wrong")
    assert wrong == {"error": "HfHubHTTPError", "status": 401}
    # Someone else's token cannot write there either (the repo is not even visible to them).
    other_write = run_client(hub, f"""
        result = outcome(lambda: api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="{repo}"))
    """, tmp_path / "other", token=OTHER_TOKEN)
    assert other_write == {"error": "RepositoryNotFoundError", "status": 404}
    assert set(hub.files(repo)) == {".gitattributes", "answer.txt"}


def test_tiny_bert_round_trip_with_transformers(hub, tmp_path):
    # One interpreter (importing torch dominates the run time); the load goes through an empty cache_dir.
    saved, cache = tmp_path / "saved", tmp_path / "fresh-cache"
    result = run_client(hub, f"""
        import torch
        from transformers import AutoConfig, AutoModel, BertConfig, BertModel
        torch.manual_seed(0)
        config = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                            vocab_size=99)
        BertModel(config).save_pretrained(r"{saved}")
        api.create_repo("{USER}/tiny-bert")
        api.upload_folder(folder_path=r"{saved}", repo_id="{USER}/tiny-bert", commit_message="tiny bert")

        config = AutoConfig.from_pretrained("{USER}/tiny-bert", cache_dir=r"{cache}")
        model = AutoModel.from_pretrained("{USER}/tiny-bert", cache_dir=r"{cache}")
        local = AutoModel.from_pretrained(r"{saved}")
        remote_state, local_state = model.state_dict(), local.state_dict()
        result = {{
            "config": [config.model_type, config.hidden_size, config.vocab_size],
            "class": type(model).__name__,
            "equal": remote_state.keys() == local_state.keys()
                     and all(torch.equal(remote_state[k], local_state[k]) for k in local_state),
        }}
    """, tmp_path / "home")
    assert result == {"config": ["bert", 32, 99], "class": "BertModel", "equal": True}
    files = hub.files(f"{USER}/tiny-bert")
    assert set(files) == {".gitattributes", "config.json", "model.safetensors"}
    assert files["model.safetensors"] == (saved / "model.safetensors").read_bytes()
    assert any(cache.rglob("model.safetensors")), "the weights were not downloaded into the empty cache"
    assert ("GET", f"/{USER}/tiny-bert/resolve/{hub.repo(f'{USER}/tiny-bert').head.oid}/model.safetensors", 200) in {
        (r.method, r.path, r.status) for r in hub.requests}
    # The token went only into Authorization headers: never into a URL, and never into an uploaded file.
    repo_requests = [r for r in hub.requests if "tiny-bert" in r.path or r.path == "/api/repos/create"]
    assert all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in repo_requests)
    assert all(TOKEN not in r.path for r in hub.requests)
    assert all(TOKEN.encode() not in data for data in files.values())
