"""A local Hugging Face Hub stand-in for the push/pull tests.

It speaks the parts of the Hub's HTTP protocol that `huggingface_hub` (2.x) uses,
read off the client's own source: repo create (409 with `url` when it exists),
`validate-yaml`, preupload (`regular`/`lfs` upload modes and the remote oid), the
LFS batch endpoint with its PUT and verify actions, ndjson commits, tags, branches,
refs, repo info by revision, tree listing, `resolve` with `X-Repo-Commit`/`ETag`/
`X-Linked-Etag` headers and Range requests, and errors carrying `X-Error-Code`.

Writes need a bearer token the server knows; reads of public repos do not. Two
faults can be injected: `corrupt()` flips bytes of a stored file (same size, so
only a hash check notices) and `drop()` closes the connection half-way through
reading a request body, the way a dying network does.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

# What a fresh Hub repo's .gitattributes routes through LFS, plus binary sniffing.
_LFS_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.onnx", "*.png", "*.jpg", "*.jpeg", "*.gz", "*.zip")
_LFS_MIN_SIZE = 10 * 1024 * 1024
_SHA1 = re.compile(r"^[0-9a-f]{40}$")


def git_blob_oid(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass
class StoredFile:
    content: bytes
    lfs: bool
    sha256: str  # of the content as committed; corrupt() changes the bytes, not this

    @property
    def git_oid(self) -> str:
        return git_blob_oid(lfs_pointer(self.sha256, len(self.content)) if self.lfs else self.content)


@dataclass
class Commit:
    sha: str
    parent: str | None
    files: dict[str, StoredFile]
    title: str
    date: str


@dataclass
class Repo:
    repo_id: str
    private: bool
    owner: str
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        sha = self.branches.get(revision) or self.tags.get(revision)
        if sha is None and _SHA1.match(revision) and revision in self.commits:
            sha = revision
        return self.commits.get(sha) if sha else None


class HubError(Exception):
    def __init__(self, status: int, code: str | None, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


@dataclass
class _Fault:
    method: str
    pattern: str
    times: int


class HubState:
    """Everything the fake Hub holds, guarded by one lock."""

    def __init__(self, tokens: dict[str, str]) -> None:
        self.tokens = dict(tokens)  # token -> user name
        self.repos: dict[str, Repo] = {}
        self.lfs: dict[str, bytes] = {}
        self.lock = threading.RLock()
        self.faults: list[_Fault] = []
        self.requests: list[tuple[str, str]] = []
        self.users_seen: set[str] = set()
        self._counter = 0

    def new_sha(self, seed: str) -> str:
        self._counter += 1
        return hashlib.sha1(f"{seed}\0{self._counter}\0{time.time_ns()}".encode()).hexdigest()

    def take_fault(self, method: str, path: str) -> bool:
        with self.lock:
            for fault in self.faults:
                if fault.times > 0 and fault.method == method and re.search(fault.pattern, path):
                    fault.times -= 1
                    return True
        return False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass

    # -- plumbing ------------------------------------------------------------

    @property
    def state(self) -> HubState:
        return self.server.state

    @property
    def base(self) -> str:
        return f"http://{self.server.server_address[0]}:{self.server.server_address[1]}"

    def _read_body(self, drop: bool = False) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
                if drop:
                    raise ConnectionAbortedError
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if drop:
            self.rfile.read(length // 2)
            raise ConnectionAbortedError
        return self.rfile.read(length) if length else b""

    def _user(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            user = self.state.tokens.get(auth[len("Bearer ") :])
            if user is None:
                raise HubError(401, None, "Invalid credentials in Authorization header")
            self.state.users_seen.add(user)
            return user
        return None

    def _require_user(self) -> str:
        user = self._user()
        if user is None:
            raise HubError(401, None, "You must be authenticated to access this resource.")
        return user

    _drop_response = False

    def _send(
        self,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self._drop_response:  # headers out, then the line dies before any of the body
            self.wfile.flush()
            self.close_connection = True
            self._drop_response = False
            return
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, value: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(value).encode(), headers)

    def _dispatch(self) -> None:
        split = urlsplit(self.path)
        raw_path, query = split.path, parse_qs(split.query)
        self.state.requests.append((self.command, raw_path))
        drop = self.state.take_fault(self.command, raw_path)
        if drop and self.command == "GET":
            self._drop_response = True
            drop = False
        try:
            body = self._read_body(drop) if self.command in ("POST", "PUT") else b""
        except (ConnectionAbortedError, ConnectionResetError):
            self.close_connection = True
            self.connection.close()  # mid-body: the client sees the connection die
            return
        try:
            with self.state.lock:
                self._route(raw_path, query, body)
        except HubError as err:
            headers = {"X-Error-Message": err.message, **err.headers}
            if err.code:
                headers["X-Error-Code"] = err.code
            self._json(err.status, {"error": err.message}, headers)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _dispatch

    # -- routing -------------------------------------------------------------

    def _route(self, path: str, query: dict[str, list[str]], body: bytes) -> None:
        method = self.command
        if path == "/api/repos/create" and method == "POST":
            return self._create_repo(json.loads(body))
        if path == "/api/repos/delete" and method == "DELETE":
            return self._delete_repo(json.loads(body or b"{}"))
        if path == "/api/validate-yaml" and method == "POST":
            return self._validate_yaml(json.loads(body))
        if path == "/api/whoami-v2":
            user = self._require_user()
            return self._json(200, {"type": "user", "name": user, "orgs": []})
        if path.startswith("/lfs-objects/"):
            return self._lfs_object(path.split("/")[-1], body)
        if path == "/lfs-verify" and method == "POST":
            info = json.loads(body)
            if info["oid"] not in self.state.lfs:
                raise HubError(404, None, f"LFS object {info['oid']} not found")
            return self._json(200, {"success": True})
        m = re.match(r"^/api/models/([^/]+/[^/]+)(?:/(.*))?$", path)
        if m:
            return self._api(m.group(1), m.group(2) or "", query, body)
        m = re.match(r"^/([^/]+/[^/]+)\.git/info/lfs/objects/batch$", path)
        if m and method == "POST":
            return self._lfs_batch(m.group(1), json.loads(body))
        m = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
        if m and method in ("GET", "HEAD"):
            return self._resolve(m.group(1), unquote(m.group(2)), unquote(m.group(3)))
        raise HubError(404, None, f"No route for {method} {path}")

    def _repo(self, repo_id: str, write: bool = False) -> Repo:
        repo = self.state.repos.get(repo_id)
        user = self._user()
        if repo is None or (repo.private and user is None):
            # The Hub answers 401 for a private repo without auth, so as not to leak its existence.
            raise HubError(401 if user is None else 404, "RepoNotFound", "Repository not found")
        if write:
            if user is None:
                raise HubError(401, None, "You must be authenticated to write to a repository.")
            if user != repo.owner:
                raise HubError(403, None, f"You don't have the rights to write to {repo_id}")
        return repo

    def _commit(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return commit

    def _api(self, repo_id: str, rest: str, query: dict[str, list[str]], body: bytes) -> None:
        method = self.command
        parts = rest.split("/", 1) if rest else [""]
        head, tail = parts[0], (parts[1] if len(parts) > 1 else "")
        if head == "" and method == "GET":
            repo = self._repo(repo_id)
            return self._repo_info(repo, self._commit(repo, "main"))
        if head == "revision" and method == "GET":
            repo = self._repo(repo_id)
            return self._repo_info(repo, self._commit(repo, unquote(tail)))
        if head == "refs" and method == "GET":
            repo = self._repo(repo_id)

            def ref(kind: str, name: str, sha: str) -> dict:
                return {"name": name, "ref": f"refs/{kind}/{name}", "targetCommit": sha}

            return self._json(
                200,
                {
                    "branches": [ref("heads", n, s) for n, s in sorted(repo.branches.items())],
                    "tags": [ref("tags", n, s) for n, s in sorted(repo.tags.items())],
                    "converts": [],
                    **({"pullRequests": []} if "include_prs" in query else {}),
                },
            )
        if head == "tree" and method == "GET":
            repo = self._repo(repo_id)
            rev, _, sub = tail.partition("/")
            return self._tree(
                repo,
                self._commit(repo, unquote(rev)),
                unquote(sub),
                query.get("recursive", ["False"])[0].lower() == "true",
            )
        if head == "preupload" and method == "POST":
            repo = self._repo(repo_id, write=True)
            return self._preupload(repo, unquote(tail), json.loads(body))
        if head == "commit" and method == "POST":
            repo = self._repo(repo_id, write=True)
            return self._create_commit(repo, unquote(tail), body)
        if head == "tag":
            repo = self._repo(repo_id, write=True)
            if method == "POST":
                return self._create_tag(repo, unquote(tail), json.loads(body))
            if method == "DELETE":
                return self._delete_ref(repo.tags, unquote(tail), "tag")
        if head == "branch":
            repo = self._repo(repo_id, write=True)
            if method == "POST":
                return self._create_branch(repo, unquote(tail), json.loads(body or b"{}"))
            if method == "DELETE":
                if unquote(tail) == "main":
                    raise HubError(403, None, "Cannot delete the default branch")
                return self._delete_ref(repo.branches, unquote(tail), "branch")
        raise HubError(404, None, f"No route for {method} /api/models/{repo_id}/{rest}")

    # -- repos ---------------------------------------------------------------

    def _create_repo(self, payload: dict[str, Any]) -> None:
        user = self._require_user()
        owner = payload.get("organization") or user
        repo_id = f"{owner}/{payload['name']}"
        url = f"{self.base}/{repo_id}"
        if repo_id in self.state.repos:
            raise_409 = {"error": "You already created this model repo", "url": url}
            return self._json(409, raise_409, {"X-Error-Message": raise_409["error"]})
        if owner != user:
            raise HubError(403, None, f"You cannot create a repo in {owner!r}")
        repo = Repo(repo_id, private=payload.get("visibility") == "private" or bool(payload.get("private")), owner=user)
        initial = Commit(
            self.state.new_sha(repo_id), None, {".gitattributes": _gitattributes()}, "initial commit", _now()
        )
        repo.commits[initial.sha] = initial
        repo.branches["main"] = initial.sha
        self.state.repos[repo_id] = repo
        self._json(200, {"url": url, "name": repo_id, "id": repo_id})

    def _delete_repo(self, payload: dict[str, Any]) -> None:
        repo_id = f"{payload.get('organization') or self._require_user()}/{payload['name']}"
        self._repo(repo_id, write=True)
        del self.state.repos[repo_id]
        self._json(200, {})

    def _validate_yaml(self, payload: dict[str, Any]) -> None:
        import yaml

        content: str = payload.get("content", "")
        if content.startswith("---"):
            front = content.split("---", 2)[1]
            try:
                data = yaml.safe_load(front)
            except yaml.YAMLError as exc:
                return self._json(400, {"errors": [{"message": f"Invalid YAML: {exc}"}], "warnings": []})
            if data is not None and not isinstance(data, dict):
                return self._json(400, {"errors": [{"message": "Metadata must be a mapping"}], "warnings": []})
        self._json(200, {"errors": [], "warnings": []})

    def _repo_info(self, repo: Repo, commit: Commit) -> None:
        card = _card_data(commit.files.get("README.md"))
        self._json(
            200,
            {
                "id": repo.repo_id,
                "modelId": repo.repo_id,
                "author": repo.owner,
                "sha": commit.sha,
                "private": repo.private,
                "disabled": False,
                "gated": False,
                "lastModified": commit.date,
                "tags": list(card.get("tags") or []),
                "library_name": card.get("library_name"),
                "pipeline_tag": card.get("pipeline_tag"),
                "cardData": card or None,
                "siblings": [{"rfilename": p} for p in sorted(commit.files)],
            },
        )

    def _tree(self, repo: Repo, commit: Commit, sub: str, recursive: bool) -> None:
        prefix = sub.rstrip("/") + "/" if sub else ""
        entries: dict[str, dict[str, Any]] = {}
        for path, f in sorted(commit.files.items()):
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix) :]
            if "/" in rest and not recursive:
                folder = prefix + rest.split("/")[0]
                entries[folder] = {
                    "type": "directory",
                    "path": folder,
                    "oid": hashlib.sha1(folder.encode()).hexdigest(),
                    "size": 0,
                }
                continue
            if recursive:
                for i, _ in enumerate(rest.split("/")[:-1]):
                    folder = prefix + "/".join(rest.split("/")[: i + 1])
                    entries[folder] = {
                        "type": "directory",
                        "path": folder,
                        "oid": hashlib.sha1(folder.encode()).hexdigest(),
                        "size": 0,
                    }
            entry: dict[str, Any] = {"type": "file", "path": path, "size": len(f.content), "oid": f.git_oid}
            if f.lfs:
                entry["lfs"] = {
                    "oid": f.sha256,
                    "size": len(f.content),
                    "pointerSize": len(lfs_pointer(f.sha256, len(f.content))),
                }
            entries[path] = entry
        if sub and not entries:
            raise HubError(404, "EntryNotFound", f"{sub} does not exist on {commit.sha}")
        self._json(200, list(entries.values()))

    # -- uploads -------------------------------------------------------------

    def _preupload(self, repo: Repo, revision: str, payload: dict[str, Any]) -> None:
        commit = self._commit(repo, revision)
        out = []
        for item in payload["files"]:
            sample = base64.b64decode(item["sample"])
            lfs = _is_lfs(item["path"], item["size"], sample)
            existing = commit.files.get(item["path"])
            oid = None
            if existing is not None:
                oid = existing.sha256 if existing.lfs else git_blob_oid(existing.content)
            out.append(
                {"path": item["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid}
            )
        self._json(200, {"files": out, "commitOid": commit.sha})

    def _lfs_batch(self, repo_id: str, payload: dict[str, Any]) -> None:
        self._repo(repo_id, write=True)
        objects = []
        for obj in payload["objects"]:
            entry: dict[str, Any] = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.state.lfs:
                entry["actions"] = {
                    "upload": {"href": f"{self.base}/lfs-objects/{obj['oid']}", "header": {}},
                    "verify": {"href": f"{self.base}/lfs-verify", "header": {}},
                }
            objects.append(entry)
        self._json(200, {"transfer": "basic", "objects": objects})

    def _lfs_object(self, oid: str, body: bytes) -> None:
        if self.command != "PUT":
            raise HubError(405, None, "Only PUT")
        if hashlib.sha256(body).hexdigest() != oid:
            raise HubError(400, None, f"Uploaded content does not hash to {oid}")
        self.state.lfs[oid] = body
        self._send(200, b"", {"ETag": f'"{oid}"'})

    def _create_commit(self, repo: Repo, revision: str, body: bytes) -> None:
        if revision not in repo.branches:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision} (commits go to a branch)")
        parent = repo.commits[repo.branches[revision]]
        files = dict(parent.files)
        header: dict[str, Any] = {}
        for line in body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                header = value
            elif key == "file":
                content = base64.b64decode(value["content"])
                files[value["path"]] = StoredFile(content, False, hashlib.sha256(content).hexdigest())
            elif key == "lfsFile":
                content = self.state.lfs.get(value["oid"])
                if content is None:
                    raise HubError(422, None, f"LFS object {value['oid']} for {value['path']} was never uploaded")
                files[value["path"]] = StoredFile(content, True, value["oid"])
            elif key == "deletedFile":
                if value["path"] not in files:
                    raise HubError(404, "EntryNotFound", f"A file with this name doesn't exist: {value['path']}")
                del files[value["path"]]
            elif key == "deletedFolder":
                files = {p: f for p, f in files.items() if not p.startswith(value["path"].rstrip("/") + "/")}
            else:
                raise HubError(400, None, f"Unsupported commit operation {key!r}")
        if header.get("parentCommit") and header["parentCommit"] != parent.sha:
            raise HubError(412, None, "A commit has happened since the parent commit. Please retry.")
        commit = Commit(self.state.new_sha(repo.repo_id), parent.sha, files, header.get("summary", ""), _now())
        repo.commits[commit.sha] = commit
        repo.branches[revision] = commit.sha
        self._json(
            200,
            {
                "commitUrl": f"{self.base}/{repo.repo_id}/commit/{commit.sha}",
                "commitOid": commit.sha,
                "success": True,
                "pullRequestUrl": None,
            },
        )

    # -- refs ----------------------------------------------------------------

    def _create_tag(self, repo: Repo, revision: str, payload: dict[str, Any]) -> None:
        commit = self._commit(repo, revision)
        tag = payload["tag"]
        if tag in repo.tags:
            raise HubError(409, None, f"Tag {tag} already exists")
        repo.tags[tag] = commit.sha
        self._json(200, {})

    def _create_branch(self, repo: Repo, branch: str, payload: dict[str, Any]) -> None:
        if branch in repo.branches:
            raise HubError(409, None, f"Reference already exists: refs/heads/{branch}")
        commit = self._commit(repo, payload.get("startingPoint") or "main")
        repo.branches[branch] = commit.sha
        self._json(200, {})

    def _delete_ref(self, refs: dict[str, str], name: str, kind: str) -> None:
        if name not in refs:
            raise HubError(404, "RevisionNotFound", f"No {kind} named {name}")
        del refs[name]
        self._json(200, {})

    # -- downloads -----------------------------------------------------------

    def _resolve(self, repo_id: str, revision: str, path: str) -> None:
        repo = self._repo(repo_id)
        commit = self._commit(repo, revision)
        stored = commit.files.get(path)
        if stored is None:
            raise HubError(404, "EntryNotFound", f"{path} does not exist on {revision}", {"X-Repo-Commit": commit.sha})
        content = stored.content
        headers = {"X-Repo-Commit": commit.sha, "Accept-Ranges": "bytes", "ETag": f'"{stored.git_oid}"'}
        if stored.lfs:
            headers.update({"X-Linked-Etag": f'"{stored.sha256}"', "X-Linked-Size": str(len(content))})
        status = 200
        ranged = re.match(r"bytes=(\d+)-(\d*)$", self.headers.get("Range", ""))
        if ranged and self.command == "GET":
            start = int(ranged.group(1))
            end = int(ranged.group(2)) if ranged.group(2) else len(content) - 1
            headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
            content, status = content[start : end + 1], 206
        self._send(status, content, headers, content_type="application/octet-stream")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: HubState


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def _gitattributes() -> StoredFile:
    content = "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in _LFS_PATTERNS).encode()
    return StoredFile(content, False, hashlib.sha256(content).hexdigest())


def _is_lfs(path: str, size: int, sample: bytes) -> bool:
    name = path.rsplit("/", 1)[-1]
    if any(fnmatch.fnmatch(name, p) for p in _LFS_PATTERNS) or size >= _LFS_MIN_SIZE:
        return True
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return b"\0" in sample


def _card_data(readme: StoredFile | None) -> dict[str, Any]:
    import yaml

    if readme is None:
        return {}
    text = readme.content.decode("utf-8", "replace")
    if not text.startswith("---"):
        return {}
    try:
        data = yaml.safe_load(text.split("---", 2)[1])
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


class HubServer:
    """A running fake Hub on 127.0.0.1; `url` is what HF_ENDPOINT should say."""

    def __init__(self, tokens: dict[str, str] | None = None) -> None:
        self.state = HubState(tokens or {})
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.state = self.state
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-hub", daemon=True)

    @property
    def token(self) -> str:
        """The first token the server accepts (what tests put in HF_TOKEN)."""
        return next(iter(self.state.tokens))

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- test helpers --------------------------------------------------------

    def file(self, repo_id: str, path: str, revision: str = "main") -> bytes:
        with self.state.lock:
            commit = self.state.repos[repo_id].resolve(revision)
            assert commit is not None, revision
            return commit.files[path].content

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        with self.state.lock:
            commit = self.state.repos[repo_id].resolve(revision)
            assert commit is not None, revision
            return {p: f.content for p, f in commit.files.items()}

    def refs(self, repo_id: str) -> tuple[dict[str, str], dict[str, str]]:
        """(branches, tags) of a repo, name -> commit sha."""
        with self.state.lock:
            repo = self.state.repos[repo_id]
            return dict(repo.branches), dict(repo.tags)

    def corrupt(self, repo_id: str, path: str, revision: str = "main") -> None:
        """Flip the bytes of a stored file in place (same size, same advertised hash)."""
        with self.state.lock:
            commit = self.state.repos[repo_id].resolve(revision)
            assert commit is not None, revision
            stored = commit.files[path]
            flipped = bytes(b ^ 0xFF for b in stored.content[:64]) + stored.content[64:]
            stored.content = flipped  # shared by every commit holding this file, like a bad disk
            if stored.lfs:
                self.state.lfs[stored.sha256] = flipped

    def drop(self, method: str, pattern: str, times: int = 1) -> None:
        """Break the next `times` matching requests: for PUT/POST the connection closes half-way through
        reading the request body; for GET it closes after the response headers, before the body."""
        with self.state.lock:
            self.state.faults.append(_Fault(method, pattern, times))

    def clear_faults(self) -> None:
        with self.state.lock:
            self.state.faults.clear()

    def count(self, method: str, pattern: str) -> int:
        return sum(1 for m, p in self.state.requests if m == method and re.search(pattern, p))


# -- pytest fixtures (import them into a test module to use them) ---------------

TEST_USER = "alice"
TEST_TOKEN = "hf_loradockTESTsecret0123456789abcdef"


@pytest.fixture
def hub_server() -> Iterator[HubServer]:
    server = HubServer({TEST_TOKEN: TEST_USER}).start()
    yield server
    server.stop()


@pytest.fixture
def hub(hub_server: HubServer, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> HubServer:
    """Point huggingface_hub (already imported, constants read) at the fake Hub, online, with its own cache."""
    from huggingface_hub import constants, hf_api
    from huggingface_hub.utils import _http

    cache = tmp_path / "hf" / "hub"
    env = {
        "HF_ENDPOINT": hub_server.url,
        "HF_HUB_OFFLINE": "0",
        "HF_HUB_DISABLE_XET": "1",
        "HF_TOKEN": TEST_TOKEN,
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_CACHE": str(cache),
        "TRANSFORMERS_OFFLINE": "0",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(constants, "ENDPOINT", hub_server.url)
    monkeypatch.setattr(
        constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub_server.url + "/{repo_id}/resolve/{revision}/{filename}"
    )
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf" / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "hf" / "stored_tokens"))
    # Module-level helpers (`huggingface_hub.file_exists`, used by PEFT) share an HfApi made at import time.
    monkeypatch.setattr(hf_api.api, "endpoint", hub_server.url)
    _http.close_session()  # a client made while offline must not be reused
    return hub_server


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """huggingface_hub's own backoff sleeps (1, 2, 4 s...) become no-ops; what it retries is unchanged."""
    import time as _time
    import types

    from huggingface_hub import file_download
    from huggingface_hub.utils import _http

    fake = types.SimpleNamespace(**{k: getattr(_time, k) for k in dir(_time) if not k.startswith("_")})
    fake.sleep = lambda seconds: None
    monkeypatch.setattr(_http, "time", fake)
    monkeypatch.setattr(file_download, "time", fake)


def tiny_png(path: Any) -> Any:
    """A valid 1x1 PNG, enough to stand in for a training plot."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + chunk(b"IEND", b"")
    )
    return path


@pytest.fixture
def sentiment_versions(registry: Any, make_peft_folder: Any, tmp_path: Any) -> Any:
    """sentiment@1 and sentiment@2 (aliased production, with metadata and a loss plot), as training would leave them."""
    from loradock.adapters.base import base_info
    from loradock.registry import DEFAULT_BASE, VersionInfo

    base = base_info(DEFAULT_BASE)
    for seed in (0, 1):
        info = VersionInfo(
            base_model=DEFAULT_BASE,
            base_fingerprint=base["base_fingerprint"],
            data={
                "source": "sample:sentiment",
                "fingerprint": f"data{seed}",
                "train_size": 40,
                "eval_size": 10,
                "text_column": "text",
                "label_column": "label",
            },
            metrics={
                "accuracy": 0.8 + seed / 10,
                "macro_f1": 0.75 + seed / 10,
                "eval_loss": 0.5,
                "train_loss": 0.6,
                "per_class": {
                    "negative": {"precision": 0.8, "recall": 0.9, "f1": 0.85, "support": 5},
                    "positive": {"precision": 0.9, "recall": 0.8, "f1": 0.85, "support": 5},
                },
                "confusion_matrix": [[4, 1], [1, 4]],
            },
            train_args={"lr": 5e-4, "epochs": 1, "r": 8, "seed": seed},
            description=f"sentiment run {seed}",
            tags=["demo"],
            provenance={"source": "train"},
            extra={"trainable_params": 1234, "device": "cpu"},
        )
        registry.register("sentiment", make_peft_folder(seed=seed), info, aliases=["production"] if seed else [])
    registry.add_artifact("sentiment@2", "plot", "loss", {"loss.png": tiny_png(tmp_path / "loss.png")}, {"dpi": 72})
    return registry
