"""A local stand-in for the Hugging Face Hub HTTP API, for tests on machines without access to huggingface.co.

The real, unmocked ``huggingface_hub`` client (checked against 2.4.0) works against it once ``HF_ENDPOINT`` points at
``hub.endpoint``. It covers what pushing and pulling a model needs: ``whoami``, ``create_repo``/``delete_repo``,
``repo_info``/``repo_exists``/``list_repo_files``/``list_repo_tree``, ``upload_file``/``upload_folder`` (with
``delete_patterns``), ``hf_hub_download``/``snapshot_download`` and therefore ``from_pretrained``.

How it differs from the real Hub:

* the preupload endpoint answers "regular" for every file, so contents travel inline (base64) in the commit payload:
  neither Git LFS nor Xet is involved, and the server never sends Xet headers, so downloads are plain HTTP GETs;
* one branch (``main``); every commit keeps a full snapshot, so files can also be fetched by commit sha;
* no pull requests, tags, gating, discussions or Spaces runtime.

As on the Hub, a new repo holds a ``.gitattributes`` file, so ``hub.files(repo_id)`` includes it.

``huggingface_hub`` reads ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` when it is imported, so drive it from a subprocess::

    with HubStandIn(tokens={"hf_test_token": "tester"}) as hub:
        env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path),
               "HF_TOKEN": "hf_test_token"}
        subprocess.run([sys.executable, "-c", code], env=env, check=True)
        hub.files("tester/model")   # {"config.json": b"...", ...}

Run ``python tests/hub_stand_in.py --port 0 --token hf_test_token=tester`` to serve it by hand.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_BRANCH = "main"
# URL prefix of each repo type, as in the Hub's web and /resolve URLs ("datasets/user/name").
REPO_TYPE_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
API_REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
API_SUBROUTES = {"revision", "tree", "paths-info", "preupload", "commit"}
REPO_NAME_PATTERN = re.compile(r"^(?!.*(--|\.\.))[A-Za-z0-9][\w.-]{0,95}$")

# The start of the .gitattributes the Hub puts in every new repo.
DEFAULT_GITATTRIBUTES = b"".join(
    f"*.{ext} filter=lfs diff=lfs merge=lfs -text\n".encode()
    for ext in ("7z", "arrow", "bin", "bz2", "ckpt", "ftz", "gz", "h5", "joblib", "lfs", "mlmodel", "model",
                "msgpack", "npy", "npz", "onnx", "ot", "parquet", "pb", "pickle", "pkl", "pt", "pth", "rar",
                "safetensors", "tar", "tflite", "tgz", "wasm", "xz", "zip", "zst")
)

INVALID_TOKEN = "Invalid credentials in Authorization header"
NO_TOKEN = "Invalid username or password."


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob: what the Hub uses as ``oid``/``ETag`` of a non-LFS file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Commit:
    oid: str
    title: str
    description: str
    author: str
    date: str
    files: dict[str, bytes]  # full snapshot of the repo after this commit


@dataclass
class Repo:
    repo_id: str
    repo_type: str
    private: bool
    created_at: str
    commits: list[Commit]  # oldest first
    uid: str = field(default_factory=lambda: uuid.uuid4().hex[:24])

    @property
    def namespace(self) -> str:
        return self.repo_id.split("/")[0]

    @property
    def key(self) -> str:
        return REPO_TYPE_PREFIXES[self.repo_type] + self.repo_id

    @property
    def head(self) -> Commit:
        return self.commits[-1]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # path and query string, as sent
    headers: dict[str, str]  # names lower-cased
    body: bytes
    status: int  # of the answer


class HubError(Exception):
    """An error answer in the Hub's format: JSON ``{"error": ...}`` plus ``X-Error-Code``/``X-Error-Message``."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: Mapping[str, str] | None = None,
                 **extra_body):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = dict(headers or {})
        self.body = {"error": message, **extra_body}


def _repo_not_found() -> HubError:
    # What the Hub answers both for a missing repo and for a private one the caller cannot see.
    return HubError(404, "Repository not found", code="RepoNotFound")


class HubStandIn:
    """The Hub's HTTP API on ``http://127.0.0.1:<port>``, served from a daemon thread while the context is open.

    Args:
        tokens: access token -> user name; requests must carry ``Authorization: Bearer <token>``.
        orgs: organisation -> member user names; members may write to the organisation's namespace.
    """

    def __init__(self, tokens: Mapping[str, str] | None = None, orgs: Mapping[str, Iterable[str]] | None = None,
                 host: str = "127.0.0.1", port: int = 0):
        self.tokens = dict(tokens or {})
        self.orgs = {org: set(members) for org, members in (orgs or {}).items()}
        self.repos: dict[str, Repo] = {}  # keyed like Hub URLs: "user/name", "datasets/user/name"
        self.requests: list[RecordedRequest] = []
        self._lock = threading.RLock()
        self._address = (host, port)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> HubStandIn:
        handler = type("Handler", (_HubRequestHandler,), {"hub": self})
        self._server = ThreadingHTTPServer(self._address, handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="hub-stand-in", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> HubStandIn:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def endpoint(self) -> str:
        if self._server is None:
            raise RuntimeError("the Hub stand-in is not running; use it as a context manager or call start()")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # ------------------------------------------------------------------ inspection and seeding

    def client_env(self, home: Path | str, token: str | None = None, **extra: str) -> dict[str, str]:
        """Environment for a client process pointed at this stand-in (huggingface_hub reads HF_ENDPOINT and
        HF_HUB_OFFLINE at import time, so the client must be a fresh process)."""
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("HF_", "HUGGINGFACE_")) and key != "TRANSFORMERS_OFFLINE"}
        env.update(HF_ENDPOINT=self.endpoint, HF_HUB_OFFLINE="0", HF_HOME=str(home), HF_HUB_DISABLE_PROGRESS_BARS="1",
                   HF_HUB_DISABLE_TELEMETRY="1", NO_PROXY="127.0.0.1,localhost", **extra)
        if token is not None:
            env["HF_TOKEN"] = token
        return env

    def repo(self, repo_id: str, repo_type: str = "model") -> Repo:
        return self.repos[REPO_TYPE_PREFIXES[repo_type] + repo_id]

    def files(self, repo_id: str, repo_type: str = "model", revision: str | None = None) -> dict[str, bytes]:
        """The files of a repo at ``revision`` (default: the head of main), path -> bytes."""
        with self._lock:
            repo = self.repo(repo_id, repo_type)
            return dict(self._commit_at(repo, revision or DEFAULT_BRANCH).files)

    def add_repo(self, repo_id: str, files: Mapping[str, bytes] | None = None, *, private: bool = False,
                 repo_type: str = "model") -> Repo:
        """Create a repo directly (no HTTP, no permission check), optionally with a first commit of ``files``."""
        with self._lock:
            repo = self._create_repo(repo_id, repo_type, private, author=repo_id.split("/")[0])
            if files:
                self._commit(repo, dict(files), set(), "Add files", "", author=repo.namespace)
            return repo

    # ------------------------------------------------------------------ state changes (hold the lock)

    def _create_repo(self, repo_id: str, repo_type: str, private: bool, author: str) -> Repo:
        now = _now()
        first = Commit(self._new_oid(repo_id, "initial commit"), "initial commit", "", author, now,
                       {".gitattributes": DEFAULT_GITATTRIBUTES})
        repo = Repo(repo_id=repo_id, repo_type=repo_type, private=private, created_at=now, commits=[first])
        self.repos[repo.key] = repo
        return repo

    def _commit(self, repo: Repo, added: dict[str, bytes], deleted: set[str], title: str, description: str,
                author: str) -> Commit:
        files = {path: data for path, data in repo.head.files.items() if path not in deleted}
        files.update(added)
        commit = Commit(self._new_oid(repo.head.oid, title), title, description, author, _now(), files)
        repo.commits.append(commit)
        return commit

    @staticmethod
    def _new_oid(*parts: str) -> str:
        return hashlib.sha1("\0".join([*parts, uuid.uuid4().hex]).encode()).hexdigest()

    @staticmethod
    def _commit_at(repo: Repo, revision: str) -> Commit:
        if revision == DEFAULT_BRANCH:
            return repo.head
        if re.fullmatch(r"[0-9a-f]{7,40}", revision):
            for commit in reversed(repo.commits):
                if commit.oid.startswith(revision):
                    return commit
        raise HubError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")

    # ------------------------------------------------------------------ permissions

    def can_write(self, user: str | None, namespace: str) -> bool:
        return user is not None and (user == namespace or user in self.orgs.get(namespace, ()))

    def _readable_repo(self, repo_type: str, repo_id: str, user: str | None) -> Repo:
        repo = self.repos.get(REPO_TYPE_PREFIXES[repo_type] + repo_id)
        if repo is None or (repo.private and not self.can_write(user, repo.namespace)):
            raise _repo_not_found()
        return repo

    def _writable_repo(self, repo_type: str, repo_id: str, user: str | None) -> Repo:
        if user is None:
            raise HubError(401, NO_TOKEN)
        repo = self._readable_repo(repo_type, repo_id, user)
        if not self.can_write(user, repo.namespace):
            raise HubError(403, f"You don't have the rights to write to {repo_type} repo '{repo_id}'")
        return repo

    # ------------------------------------------------------------------ JSON views

    def _repo_info(self, repo: Repo, commit: Commit, blobs: bool) -> dict:
        siblings = []
        for path, data in sorted(commit.files.items()):
            sibling: dict = {"rfilename": path}
            if blobs:
                sibling.update(size=len(data), blobId=git_blob_sha1(data))
            siblings.append(sibling)
        info = {
            "_id": repo.uid, "id": repo.repo_id, "author": repo.namespace, "sha": commit.oid,
            "lastModified": commit.date, "createdAt": repo.created_at, "private": repo.private, "gated": False,
            "disabled": False, "downloads": 0, "likes": 0, "tags": [], "siblings": siblings,
            "usedStorage": sum(len(data) for data in commit.files.values()),
        }
        if repo.repo_type == "model":
            info["modelId"] = repo.repo_id
        return info

    def _last_commit(self, repo: Repo, commit: Commit, path: str) -> dict:
        """The newest commit up to ``commit`` that changed ``path`` (a file or a folder)."""
        def snapshot(c: Commit) -> dict[str, bytes]:
            return {p: d for p, d in c.files.items() if p == path or p.startswith(path + "/")}

        index = repo.commits.index(commit)
        while index > 0 and snapshot(repo.commits[index - 1]) == snapshot(repo.commits[index]):
            index -= 1
        last = repo.commits[index]
        return {"id": last.oid, "title": last.title, "date": last.date}

    def _path_entries(self, repo: Repo, commit: Commit, folder: str, recursive: bool, expand: bool) -> list[dict]:
        prefix = folder.strip("/") + "/" if folder.strip("/") else ""
        folders: set[str] = set()
        entries = []
        for path, data in sorted(commit.files.items()):
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix):].split("/")
            for depth in range(1, len(parts) if recursive else min(len(parts), 2)):
                folders.add(prefix + "/".join(parts[:depth]))
            if recursive or len(parts) == 1:
                entries.append(self._file_entry(repo, commit, path, data, expand))
        if prefix and not entries and not folders:
            raise HubError(404, f"Entry not found: {folder}", code="EntryNotFound")
        entries += [self._folder_entry(repo, commit, path, expand) for path in sorted(folders)]
        return sorted(entries, key=lambda entry: entry["path"])

    def _file_entry(self, repo: Repo, commit: Commit, path: str, data: bytes, expand: bool) -> dict:
        entry = {"type": "file", "oid": git_blob_sha1(data), "size": len(data), "path": path}
        if expand:
            entry["lastCommit"] = self._last_commit(repo, commit, path)
        return entry

    def _folder_entry(self, repo: Repo, commit: Commit, path: str, expand: bool) -> dict:
        listing = "".join(f"{p}\0{git_blob_sha1(d)}\n" for p, d in sorted(commit.files.items())
                          if p.startswith(path + "/"))
        entry = {"type": "directory", "oid": hashlib.sha1(listing.encode()).hexdigest(), "size": 0, "path": path}
        if expand:
            entry["lastCommit"] = self._last_commit(repo, commit, path)
        return entry


class _HubRequestHandler(BaseHTTPRequestHandler):
    """Routes one request; ``hub`` is set on a per-server subclass."""

    hub: HubStandIn
    protocol_version = "HTTP/1.1"  # keep-alive, like the Hub; every answer carries a Content-Length
    server_version = "HubStandIn"

    def log_message(self, format: str, *args) -> None:
        pass

    # ------------------------------------------------------------------ plumbing

    def _handle(self) -> None:
        body = self._read_body()
        hub = self.hub
        url = urlsplit(self.path)
        self.query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        self.body = body
        self._response: tuple[int, bytes, dict[str, str]] = (500, b"", {})
        # Requests are answered one at a time against a consistent state; the (possibly large) answer is written
        # after the lock is released.
        with hub._lock:
            self.user: str | None = None
            try:
                self.user = self._authenticate()
                # Unquoted segment by segment: a revision such as "refs%2Fpr%2F1" stays one segment.
                self._route([unquote(part) for part in url.path.strip("/").split("/")])
            except HubError as error:
                headers = {"X-Error-Message": _header_safe(error.message), **error.headers}
                if error.code:
                    headers["X-Error-Code"] = error.code
                self._send_json(error.body, status=error.status, headers=headers)
            except Exception as error:  # a bug in the stand-in: answer rather than drop the connection
                self._send_json({"error": f"{type(error).__name__}: {error}"}, status=500)
            status, payload, headers = self._response
            hub.requests.append(RecordedRequest(self.command, self.path,
                                                {k.lower(): v for k, v in self.headers.items()}, body, status))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_HEAD = do_POST = do_DELETE = _handle

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _authenticate(self) -> str | None:
        header = self.headers.get("Authorization")
        if header is None:
            return None
        scheme, _, token = header.partition(" ")
        user = self.hub.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            # The Hub rejects an unknown token on every route, even for public content.
            raise HubError(401, INVALID_TOKEN)
        return user

    def _send(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        self._response = (status, body, dict(headers))

    def _send_json(self, payload, status: int = 200, headers: Mapping[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), {"Content-Type": "application/json; charset=utf-8",
                                                          **(headers or {})})

    def _json_body(self) -> dict:
        try:
            payload = json.loads(self.body or b"{}")
        except json.JSONDecodeError as error:
            raise HubError(400, f"Invalid JSON body: {error}") from error
        if not isinstance(payload, dict):
            raise HubError(400, "Invalid JSON body: expected an object")
        return payload

    # ------------------------------------------------------------------ routing

    def _route(self, parts: list[str]) -> None:
        method = self.command
        if parts[0] == "api":
            if parts[1:] == ["whoami-v2"] and method == "GET":
                return self._whoami()
            if parts[1:] == ["repos", "create"] and method == "POST":
                return self._create_repo()
            if parts[1:] == ["repos", "delete"] and method == "DELETE":
                return self._delete_repo()
            if parts[1:] == ["validate-yaml"] and method == "POST":  # README.md metadata check before a commit
                return self._send_json({"errors": [], "warnings": []})
            if parts[1:] == ["agent-harnesses"] and method == "GET":  # fetched by the client's agent detection
                return self._send_json({"standardEnvVars": [], "harnesses": {}})
            if len(parts) >= 3 and parts[1] in API_REPO_TYPES:
                return self._repo_api(API_REPO_TYPES[parts[1]], parts[2:])
        elif "resolve" in parts[1:4] and method in ("GET", "HEAD"):
            return self._resolve(parts)
        raise HubError(404, f"Sorry, we can't find the page you are looking for ({method} {self.path}).")

    def _repo_api(self, repo_type: str, rest: list[str]) -> None:
        # /api/{type}s/{namespace}/{name}[/{subroute}/{revision}[/{path}]]
        if len(rest) >= 2 and rest[1] not in API_SUBROUTES:
            repo_id, rest = "/".join(rest[:2]), rest[2:]
        else:
            repo_id, rest = rest[0], rest[1:]
        method = self.command
        if not rest and method == "GET":
            return self._info(repo_type, repo_id, DEFAULT_BRANCH)
        if len(rest) >= 2:
            subroute, revision, path = rest[0], rest[1], "/".join(rest[2:])
            if subroute == "revision" and method == "GET":
                return self._info(repo_type, repo_id, revision)
            if subroute == "tree" and method == "GET":
                return self._tree(repo_type, repo_id, revision, path)
            if subroute == "paths-info" and method == "POST":
                return self._paths_info(repo_type, repo_id, revision)
            if subroute == "preupload" and method == "POST":
                return self._preupload(repo_type, repo_id, revision)
            if subroute == "commit" and method == "POST":
                return self._create_commit(repo_type, repo_id, revision)
        raise HubError(404, f"Sorry, we can't find the page you are looking for ({method} {self.path}).")

    # ------------------------------------------------------------------ endpoints

    def _whoami(self) -> None:
        if self.user is None:
            raise HubError(401, NO_TOKEN)
        orgs = [{"type": "org", "name": org, "fullname": org, "roleInOrg": "write"}
                for org, members in sorted(self.hub.orgs.items()) if self.user in members]
        self._send_json({
            "type": "user", "id": hashlib.sha1(self.user.encode()).hexdigest()[:24], "name": self.user,
            "fullname": self.user, "email": f"{self.user}@example.com", "emailVerified": True, "isPro": False,
            "canPay": False, "orgs": orgs,
            "auth": {"type": "access_token", "accessToken": {"displayName": "hub-stand-in", "role": "write"}},
        })

    def _repo_payload(self) -> tuple[str, str, dict]:
        """The repo id and type named by a /api/repos/{create,delete} body (namespace defaults to the caller)."""
        if self.user is None:
            raise HubError(401, NO_TOKEN)
        payload = self._json_body()
        name, organization = payload.get("name"), payload.get("organization")
        repo_type = payload.get("type") or "model"
        if repo_type not in REPO_TYPE_PREFIXES:
            raise HubError(400, f"Invalid repo type: {repo_type}")
        if not isinstance(name, str) or not REPO_NAME_PATTERN.match(name):
            raise HubError(400, f"Invalid repo name: {name!r}")
        return f"{organization or self.user}/{name}", repo_type, payload

    def _create_repo(self) -> None:
        repo_id, repo_type, payload = self._repo_payload()
        namespace = repo_id.split("/")[0]
        if not self.hub.can_write(self.user, namespace):
            raise HubError(403, f'You don\'t have the rights to create a {repo_type} under the namespace "{namespace}"')
        url = f"{self.hub.endpoint}/{REPO_TYPE_PREFIXES[repo_type]}{repo_id}"
        if REPO_TYPE_PREFIXES[repo_type] + repo_id in self.hub.repos:
            # The Hub's answer to creating an existing repo; huggingface_hub turns it into an error unless exist_ok.
            raise HubError(409, f"You already created this {repo_type} repo", url=url)
        private = payload.get("visibility", "private" if payload.get("private") else "public") == "private"
        repo = self.hub._create_repo(repo_id, repo_type, private, author=self.user)
        self._send_json({"url": url, "name": repo_id, "id": repo.uid})

    def _delete_repo(self) -> None:
        repo_id, repo_type, _ = self._repo_payload()
        repo = self.hub._writable_repo(repo_type, repo_id, self.user)
        del self.hub.repos[repo.key]
        self._send_json({})

    def _info(self, repo_type: str, repo_id: str, revision: str) -> None:
        repo = self.hub._readable_repo(repo_type, repo_id, self.user)
        commit = self.hub._commit_at(repo, revision)
        self._send_json(self.hub._repo_info(repo, commit, blobs=self.query.get("blobs", "").lower() == "true"))

    def _tree(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        repo = self.hub._readable_repo(repo_type, repo_id, self.user)
        commit = self.hub._commit_at(repo, revision)
        recursive = self.query.get("recursive", "").lower() in ("true", "1")
        expand = self.query.get("expand", "").lower() in ("true", "1")
        self._send_json(self.hub._path_entries(repo, commit, path, recursive, expand))

    def _paths_info(self, repo_type: str, repo_id: str, revision: str) -> None:
        repo = self.hub._readable_repo(repo_type, repo_id, self.user)
        commit = self.hub._commit_at(repo, revision)
        form = parse_qs(self.body.decode())
        expand = form.get("expand", ["false"])[-1].lower() == "true"
        entries = []
        for path in dict.fromkeys(p.strip("/") for p in form.get("paths", [])):
            if path in commit.files:
                entries.append(self.hub._file_entry(repo, commit, path, commit.files[path], expand))
            elif any(p.startswith(path + "/") for p in commit.files):
                entries.append(self.hub._folder_entry(repo, commit, path, expand))
        self._send_json(entries)

    def _preupload(self, repo_type: str, repo_id: str, revision: str) -> None:
        repo = self.hub._writable_repo(repo_type, repo_id, self.user)
        commit = self.hub._commit_at(repo, revision)
        files = self._json_body().get("files") or []
        # "regular" for every file: the client then sends contents inline in the commit, so no LFS or Xet upload.
        # "oid" (git blob sha1 of the current version) lets the client skip unchanged files, as with the Hub.
        self._send_json({
            "files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                       "oid": git_blob_sha1(commit.files[f["path"]]) if f["path"] in commit.files else None}
                      for f in files],
            "commitOid": commit.oid,
        })

    def _create_commit(self, repo_type: str, repo_id: str, revision: str) -> None:
        hub = self.hub
        repo = hub._writable_repo(repo_type, repo_id, self.user)
        if self.query.get("create_pr") == "1":
            raise HubError(400, "Pull requests are not supported by the Hub stand-in")
        if revision != DEFAULT_BRANCH:
            raise HubError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
        header: dict = {}
        added: dict[str, bytes] = {}
        deleted: set[str] = set()
        for line in self.body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item.get("key"), item.get("value") or {}
            if key == "header":
                header = value
            elif key == "file":
                path = _valid_path(value.get("path"))
                content = value.get("content", "")
                added[path] = base64.b64decode(content) if value.get("encoding") == "base64" else content.encode()
                deleted.discard(path)
            elif key == "deletedFile":
                path = _valid_path(value.get("path"))
                if path not in repo.head.files and path not in added:
                    raise HubError(404, f"A file with this name doesn't exist: {path}", code="EntryNotFound")
                deleted.add(path)
                added.pop(path, None)
            elif key == "deletedFolder":
                folder = _valid_path((value.get("path") or "").rstrip("/"))
                for path in [*repo.head.files, *added]:
                    if path.startswith(folder + "/"):
                        deleted.add(path)
                        added.pop(path, None)
            elif key == "lfsFile":
                raise HubError(400, "LFS files are not supported by the Hub stand-in (it never asks for LFS)")
            else:
                raise HubError(400, f"Unknown commit operation: {key!r}")
        if not header.get("summary"):
            raise HubError(400, "The commit summary (title) is required")
        parent = header.get("parentCommit")
        if parent is not None and parent != repo.head.oid:
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        commit = hub._commit(repo, added, deleted, header["summary"], header.get("description", ""), self.user)
        self._send_json({
            "success": True, "commitOid": commit.oid, "pullRequestUrl": None, "hookOutput": "",
            "commitUrl": f"{hub.endpoint}/{repo.key}/commit/{commit.oid}",
        })

    def _resolve(self, parts: list[str]) -> None:
        # /[{datasets|spaces}/]{namespace}/{name}/resolve/{revision}/{path}
        repo_type = "model"
        if parts[0] in API_REPO_TYPES and parts[0] != "models":
            repo_type, parts = API_REPO_TYPES[parts[0]], parts[1:]
        index = parts.index("resolve")
        if len(parts) < index + 3:
            raise HubError(404, "Entry not found", code="EntryNotFound")
        repo = self.hub._readable_repo(repo_type, "/".join(parts[:index]), self.user)
        commit = self.hub._commit_at(repo, parts[index + 1])
        path = "/".join(parts[index + 2:])
        data = commit.files.get(path)
        headers = {"X-Repo-Commit": commit.oid, "Accept-Ranges": "bytes"}
        if data is None:
            raise HubError(404, "Entry not found", code="EntryNotFound", headers=headers)
        headers.update({"ETag": f'"{git_blob_sha1(data)}"', "Content-Type": "application/octet-stream"})
        status, start, end = 200, 0, len(data)
        range_header = self.headers.get("Range")
        if range_header:
            match = re.fullmatch(r"bytes=(\d*)-(\d*)", range_header.strip())
            if match is None or not any(match.groups()):
                raise HubError(416, "Invalid range", headers={"Content-Range": f"bytes */{len(data)}"})
            first, last = match.groups()
            start, end = ((int(first), min(int(last) + 1, len(data)) if last else len(data)) if first
                          else (max(len(data) - int(last), 0), len(data)))
            if start >= len(data) or start >= end:
                raise HubError(416, "Range not satisfiable", headers={"Content-Range": f"bytes */{len(data)}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(data)}"
        self._send(status, data[start:end], headers)


def _header_safe(text: str) -> str:
    return text.encode("ascii", "backslashreplace").decode()


def _valid_path(path) -> str:
    if not isinstance(path, str) or not path or path.startswith("/") or ".." in path.split("/"):
        raise HubError(400, f"Invalid path in repo: {path!r}")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--token", action="append", default=[], metavar="TOKEN=USER",
                        help="an accepted access token and its user (repeatable)")
    args = parser.parse_args()
    tokens = dict(item.split("=", 1) for item in args.token)
    with HubStandIn(tokens=tokens, host=args.host, port=args.port) as hub:
        print(hub.endpoint, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
