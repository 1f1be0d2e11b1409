"""A small Hugging Face Hub on 127.0.0.1: the subset of the Hub HTTP API that the stock ``huggingface_hub`` client
uses to create repos, commit files and download snapshots, with in-memory storage.

Nothing on PyPI implements the write side of the Hub API (see ../shared/HUB.md), so metanlp's push/pull tests run
the real client code against this server. What it speaks (checked against huggingface_hub 2.4's ``hf_api.py``,
``_commit_api.py``, ``file_download.py`` and ``_snapshot_download.py``):

- ``GET /api/whoami-v2``; ``POST /api/repos/create`` (409 when the repo exists); ``POST /api/validate-yaml``;
- ``GET /api/models/{repo}[/revision/{rev}]`` (``sha``, ``siblings``); ``GET .../tree/{rev}[/{path}]``;
  ``POST .../paths-info/{rev}``; ``POST .../branch/{branch}``;
- ``POST .../preupload/{rev}``: every file is ``"regular"``, so the client sends the bytes base64-encoded inside the
  commit (``"lfs"`` would make huggingface_hub >= 1.0 upload through Xet, which only the real hub speaks);
- ``POST .../commit/{rev}`` (NDJSON; applied all at once, ``parentCommit`` checked: 412 when stale);
- ``GET|HEAD /{repo}/resolve/{rev}/{path}`` with ``X-Repo-Commit``, ``ETag`` (git blob sha1) and ``Content-Length``.

Tokens: ``Authorization: Bearer <token>``; an unknown token gets 401 on every request (as on the hub), anonymous or
other users' requests to a private repo get 401/404 ``RepoNotFound``, writes by non-owners 403. Errors carry the
hub's ``X-Error-Code`` headers (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``) so the client raises its
typed exceptions. Two switches simulate failures: ``state.fail_next_commit`` drops the connection after reading a
commit (an interrupted upload), ``state.corrupt_downloads`` flips the last byte of every downloaded file.

As a script (for manual end-to-end checks)::

    python tests/hub_server.py --port 8765        # tokens: hf_alice_token (user alice), hf_bob_token (user bob)
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import sys
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

#: token -> user name.
TOKENS = {"hf_alice_token": "alice", "hf_bob_token": "bob"}
GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n"
INVALID_CREDENTIALS = "Invalid credentials in Authorization header"


def git_blob_sha(data: bytes) -> str:
    """The git object id of a blob (what the hub reports as a regular file's ``oid`` and ``ETag``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Commit:
    sha: str
    parent: str | None
    files: dict[str, bytes]
    message: str
    date: str


@dataclass
class Repo:
    owner: str
    private: bool
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)

    def resolve(self, rev: str) -> Commit | None:
        return self.commits.get(self.branches.get(rev, rev))

    def add_commit(self, branch: str, files: dict[str, bytes], message: str) -> Commit:
        parent = self.branches.get(branch)
        blobs = {p: git_blob_sha(b) for p, b in sorted(files.items())}
        body = json.dumps({"parent": parent, "files": blobs, "message": message, "n": len(self.commits)})
        date = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        commit = Commit(hashlib.sha1(body.encode()).hexdigest(), parent, dict(files), message, date)
        self.commits[commit.sha] = commit
        self.branches[branch] = commit.sha
        return commit


@dataclass
class HubState:
    """Everything the server stores; tests may read it and flip the failure switches."""

    tokens: dict[str, str] = field(default_factory=lambda: dict(TOKENS))
    repos: dict[str, Repo] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    fail_next_commit: bool = False
    corrupt_downloads: bool = False
    requests: list[str] = field(default_factory=list)


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str = "", headers: dict | None = None, **body: str) -> None:
        super().__init__(message)
        self.status, self.code, self.headers, self.body = status, code, dict(headers or {}), body


REPO = r"(?P<repo>[^/]+/[^/]+)"
REV = r"(?P<rev>[^/]+)"
ROUTES = [
    ("GET", r"/api/whoami-v2", "whoami"),
    ("POST", r"/api/repos/create", "create_repo"),
    ("POST", r"/api/validate-yaml", "validate_yaml"),
    ("GET", rf"/api/models/{REPO}(?:/revision/{REV})?", "model_info"),
    ("GET", rf"/api/models/{REPO}/tree/{REV}(?:/(?P<path>.+))?", "tree"),
    ("POST", rf"/api/models/{REPO}/paths-info/{REV}", "paths_info"),
    ("POST", rf"/api/models/{REPO}/preupload/{REV}", "preupload"),
    ("POST", rf"/api/models/{REPO}/commit/{REV}", "commit"),
    ("POST", rf"/api/models/{REPO}/branch/{REV}", "create_branch"),
    ("GET", rf"/{REPO}/resolve/{REV}/(?P<path>.+)", "resolve"),
    ("HEAD", rf"/{REPO}/resolve/{REV}/(?P<path>.+)", "resolve"),
]


class HubHandler(BaseHTTPRequestHandler):
    """One request; the server object carries the :class:`HubState` as ``server.state``."""

    server_version = "metanlp-test-hub/1.0"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet: tests read state.requests
        pass

    do_GET = do_HEAD = do_POST = lambda self: self._dispatch()  # noqa: E731

    # -- plumbing ---------------------------------------------------------------------------------------------------
    @property
    def state(self) -> HubState:
        return self.server.state  # type: ignore[attr-defined]

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        self.query = parse_qs(url.query)
        self.body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) if self.command == "POST" else b""
        self.state.requests.append(f"{self.command} {url.path}")
        try:
            for method, pattern, name in ROUTES:
                m = re.fullmatch(pattern, url.path)
                if method == self.command and m:
                    args = {k: unquote(v) for k, v in m.groupdict().items() if v is not None}
                    self.user = self._user()
                    with self.state.lock:
                        result = getattr(self, name)(**args)
                    if result is not None:
                        self._send(200, json.dumps(result).encode())
                    return
            raise ApiError(404, f"no such endpoint: {self.command} {url.path}")
        except ApiError as e:
            headers = {"X-Error-Message": str(e), **e.headers}
            if e.code:
                headers["X-Error-Code"] = e.code
            self._send(e.status, json.dumps({"error": str(e), **e.body}).encode(), headers)

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None, ctype: str = "") -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Type", ctype or "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self) -> dict:
        try:
            return json.loads(self.body or b"{}")
        except json.JSONDecodeError as e:
            raise ApiError(400, f"body is not JSON: {e}") from e

    def _user(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        if not auth:
            return None
        token = auth.removeprefix("Bearer ").strip()
        if token not in self.state.tokens:
            raise ApiError(401, INVALID_CREDENTIALS)
        return self.state.tokens[token]

    def _base(self) -> str:
        return f"http://{self.headers.get('Host', '127.0.0.1')}"

    def _repo(self, repo: str, write: bool = False) -> Repo:
        r = self.state.repos.get(repo)
        if r is None or (r.private and self.user != r.owner):
            raise ApiError(401 if self.user is None else 404, "Repository not found", "RepoNotFound")
        if write and self.user != r.owner:
            raise ApiError(403, f"You don't have the rights to write to {repo}")
        return r

    def _commit(self, repo: Repo, rev: str) -> Commit:
        commit = repo.resolve(rev)
        if commit is None:
            raise ApiError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return commit

    @staticmethod
    def _entries(commit: Commit, prefix: str = "", recursive: bool = True) -> list[dict]:
        """Tree entries (files and folders) under ``prefix``, sorted by path."""
        entries: dict[str, dict] = {}
        for path, data in commit.files.items():
            if prefix and not path.startswith(prefix + "/"):
                continue
            rest = path[len(prefix) + 1 :] if prefix else path
            parts = rest.split("/")
            for i in range(1, len(parts)):  # the folders on the way
                folder = "/".join(([prefix] if prefix else []) + parts[:i])
                tree_id = git_blob_sha(folder.encode())
                entries[folder] = {"type": "directory", "path": folder, "oid": tree_id, "size": 0}
                if not recursive:
                    break
            if recursive or len(parts) == 1:
                entries[path] = {"type": "file", "path": path, "oid": git_blob_sha(data), "size": len(data)}
        return [entries[k] for k in sorted(entries)]

    # -- endpoints --------------------------------------------------------------------------------------------------
    def whoami(self) -> dict:
        if self.user is None:
            raise ApiError(401, INVALID_CREDENTIALS)
        token = {"displayName": "test", "role": "write"}
        return {"type": "user", "name": self.user, "fullname": self.user, "orgs": [], "auth": {"accessToken": token}}

    def create_repo(self) -> dict:
        if self.user is None:
            raise ApiError(401, INVALID_CREDENTIALS)
        payload = self._json()
        if payload.get("type") not in (None, "model"):
            raise ApiError(400, f"this test hub only stores model repos, not {payload['type']!r}")
        namespace = payload.get("organization") or self.user
        if namespace != self.user:
            raise ApiError(403, f"You don't have the rights to create a repo under the namespace {namespace!r}")
        repo_id = f"{namespace}/{payload['name']}"
        if repo_id in self.state.repos:
            raise ApiError(409, "You already created this model repo", url=f"{self._base()}/{repo_id}")
        private = bool(payload.get("private")) or payload.get("visibility") == "private"
        repo = self.state.repos[repo_id] = Repo(owner=self.user, private=private)
        repo.add_commit("main", {".gitattributes": GITATTRIBUTES}, "initial commit")
        return {"url": f"{self._base()}/{repo_id}", "name": repo_id, "id": repo_id}

    def validate_yaml(self) -> dict:
        return {"errors": [], "warnings": []}

    def model_info(self, repo: str, rev: str = "main") -> dict:
        r = self._repo(repo)
        commit = self._commit(r, rev)
        blobs = self.query.get("blobs", ["False"])[0].lower() == "true"
        siblings = [
            {"rfilename": p, **({"size": len(d), "blobId": git_blob_sha(d)} if blobs else {})}
            for p, d in sorted(commit.files.items())
        ]
        info = {"id": repo, "modelId": repo, "author": r.owner, "sha": commit.sha, "private": r.private}
        return {
            **info,
            "disabled": False,
            "gated": False,
            "lastModified": commit.date,
            "tags": [],
            "siblings": siblings,
        }

    def tree(self, repo: str, rev: str, path: str = "") -> list[dict]:
        commit = self._commit(self._repo(repo), rev)
        recursive = self.query.get("recursive", ["False"])[0].lower() == "true"
        entries = self._entries(commit, path.strip("/"), recursive)
        if path and not entries:
            raise ApiError(404, f"{path} does not exist on {rev}", "EntryNotFound")
        return entries

    def paths_info(self, repo: str, rev: str) -> list[dict]:
        commit = self._commit(self._repo(repo), rev)
        form = self._json() if self.headers.get("Content-Type", "").startswith("application/json") else None
        paths = form["paths"] if form else parse_qs(self.body.decode()).get("paths", [])
        every = {e["path"]: e for e in self._entries(commit)}
        return [every[p] for p in paths if p in every]

    def preupload(self, repo: str, rev: str) -> dict:
        commit = self._commit(self._repo(repo, write=True), rev)
        files = self._json().get("files", [])
        out = []
        for f in files:
            old = commit.files.get(f["path"])
            oid = git_blob_sha(old) if old is not None else None
            out.append({"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": oid})
        return {"files": out, "commitOid": commit.sha}

    def commit(self, repo: str, rev: str) -> dict | None:
        r = self._repo(repo, write=True)
        head = self._commit(r, rev)
        if rev not in r.branches:
            raise ApiError(400, f"can only commit to a branch, {rev!r} is not one")
        if self.state.fail_next_commit:  # an interrupted upload: the body arrived, no answer ever comes back
            self.state.fail_next_commit = False
            self.close_connection = True
            return None
        lines = [json.loads(line) for line in self.body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise ApiError(400, "commit payload must start with a header line")
        header = lines[0]["value"]
        if header.get("parentCommit") not in (None, head.sha):
            raise ApiError(412, "A commit has happened since. Please refresh and try again.")
        files = dict(head.files)
        for op in lines[1:]:
            key, value = op["key"], op["value"]
            if key == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                if files.pop(value["path"], None) is None:
                    raise ApiError(404, f"A file with this name doesn't exist: {value['path']}", "EntryNotFound")
            elif key == "deletedFolder":
                files = {p: d for p, d in files.items() if not p.startswith(value["path"].rstrip("/") + "/")}
            else:
                raise ApiError(400, f"unsupported commit operation {key!r} (this test hub stores regular files only)")
        new = r.add_commit(rev, files, header.get("summary", ""))
        return {"success": True, "commitOid": new.sha, "commitUrl": f"{self._base()}/{repo}/commit/{new.sha}",
                "hookOutput": "", "pullRequestUrl": None}  # fmt: skip

    def create_branch(self, repo: str, rev: str) -> dict:
        r = self._repo(repo, write=True)
        if rev in r.branches:
            raise ApiError(409, f"Reference already exists: {rev}")
        start = self._commit(r, self._json().get("startingPoint") or "main")
        r.branches[rev] = start.sha
        return {}

    def resolve(self, repo: str, rev: str, path: str) -> None:
        commit = self._commit(self._repo(repo), rev)
        if path not in commit.files:
            raise ApiError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": commit.sha})
        data = commit.files[path]
        headers = {"X-Repo-Commit": commit.sha, "ETag": f'"{git_blob_sha(data)}"', "Accept-Ranges": "none"}
        if self.state.corrupt_downloads and data:
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        self._send(200, data, headers, "application/octet-stream")


class LocalHub:
    """A :class:`ThreadingHTTPServer` on 127.0.0.1 serving :class:`HubHandler` from a background thread.

    Example:
        >>> hub = LocalHub().start()
        >>> import urllib.request, json
        >>> req = urllib.request.Request(hub.url + "/api/whoami-v2", headers={"Authorization": "Bearer hf_bob_token"})
        >>> json.load(urllib.request.urlopen(req))["name"]
        'bob'
        >>> hub.stop()
    """

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self.state = HubState()
        self.httpd = ThreadingHTTPServer((host, port), HubHandler)
        self.httpd.state = self.state  # type: ignore[attr-defined]
        self.url = f"http://{host}:{self.httpd.server_port}"
        self.thread: threading.Thread | None = None

    def start(self) -> LocalHub:
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="local-hub", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self.thread is not None:
            self.thread.join(timeout=5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A local Hugging Face Hub (HTTP API subset) for metanlp's tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    hub = LocalHub(args.port, args.host)
    tokens = ", ".join(f"{t} ({u})" for t, u in hub.state.tokens.items())
    sys.stdout.write(f"serving a test hub at {hub.url}  tokens: {tokens}\n")
    sys.stdout.flush()
    try:
        hub.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        hub.httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
