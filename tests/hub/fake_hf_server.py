"""A small in-memory stand-in for the Hugging Face Hub HTTP API, enough for the real ``huggingface_hub`` client
(unpatched) to create repos, commit folders, download snapshots and list models by tag.

It answers: POST /api/repos/create (public or private), POST /api/validate-yaml, POST
/api/models/{repo}/preupload/{rev} (every file "regular", so contents travel base64 in the commit: no LFS/Xet
server needed), POST /api/models/{repo}/commit/{branch}[?create_pr=1] (NDJSON; a pull request is a
``refs/pr/N`` ref), POST /api/models/{repo}/branch/{branch}, GET /api/models/{repo}[/revision/{rev}], GET
/api/models/{repo}/tree/{rev}[/{path}], GET /api/models/{repo}/commits/{rev}, GET /api/models?filter=...,
HEAD/GET /{repo}/resolve/{rev}/{path} (with X-Repo-Commit and ETag). Errors carry X-Error-Code like the Hub,
so the client raises RepositoryNotFoundError / RevisionNotFoundError / EntryNotFoundError.

Switches imitate servers that speak the API only partly or differently (such as olah, a self-hosted mirror
serving repos from git): ``answers`` gives a fixed answer to every GET/HEAD whose path matches a pattern (no
listing endpoint, a 5xx, a body that is not JSON, "repo not found" for an unknown revision), ``post_answers``
the same for POST (a read-only server), and
``commit_authors_by_name`` / ``sizes_in_repo_info`` change the shape of two answers the way olah does, and
``page_size`` splits the model listing into pages linked by ``Link: <...>; rel="next"`` as the Hub does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"


def git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Commit:
    oid: str
    title: str
    message: str
    parent: str | None
    files: dict[str, bytes]
    date: str


@dataclass
class Repo:
    commits: dict[str, Commit] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    private: bool = False

    def resolve(self, rev: str) -> Commit | None:
        oid = self.refs.get(rev, rev)
        return self.commits.get(oid)


class FakeHub:
    """The server's state plus the server itself (``start`` / ``stop``); ``url`` is the endpoint."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, for assertions
        # Path regex (full match, no query) -> (status, body, headers) answered to GET/HEAD instead of the route.
        self.answers: dict[str, tuple[int, bytes, dict[str, str]]] = {}
        # The same for POST (a read-only mirror refuses uploads).
        self.post_answers: dict[str, tuple[int, bytes, dict[str, str]]] = {}
        # Commit history authors as {"name": ...} (olah) instead of the Hub's {"user": ...}; titles end in "\n".
        self.commit_authors_by_name = False
        # Whether repo info lists each file's size (?blobs=true); olah leaves sizes out.
        self.sizes_in_repo_info = True
        # Models per page of the listing (None: one page), the next page named by a Link header as on the Hub.
        self.page_size: int | None = None
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def start(self) -> "FakeHub":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def commit(self, repo_id: str, title: str, changes: dict[str, bytes | None], message: str = "",
               branch: str = "main") -> str:
        """Apply ``{path: bytes or None (delete)}`` as a new commit on ``branch`` (also used by tests to plant
        files)."""
        with self.lock:
            repo = self.repos[repo_id]
            parent = repo.refs.get(branch)
            files = dict(repo.commits[parent].files) if parent else {}
            for path, data in changes.items():
                if data is None:
                    files = {p: d for p, d in files.items() if p != path and not p.startswith(path.rstrip("/") + "/")}
                else:
                    files[path] = data
            oid = hashlib.sha1(f"{repo_id}{parent}{title}{time.time_ns()}".encode()).hexdigest()
            date = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
            repo.commits[oid] = Commit(oid, title, message, parent, files, date)
            repo.refs[branch] = oid
            return oid

    def create(self, repo_id: str, private: bool = False) -> bool:
        with self.lock:
            if repo_id in self.repos:
                return False
            self.repos[repo_id] = Repo(private=private)
        self.commit(repo_id, "initial commit", {".gitattributes": GITATTRIBUTES})
        return True


def _card_data(files: dict[str, bytes]) -> dict:
    text = files.get("README.md", b"").decode("utf-8", "replace")
    match = re.match(r"^---\n(.*?)\n---", text, re.S)
    data = yaml.safe_load(match.group(1)) if match else None
    return data if isinstance(data, dict) else {}


def _make_handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep test output clean
            pass

        # -- plumbing ---------------------------------------------------------------------------------
        def _send(self, status: int, body: bytes = b"", headers: dict | None = None, content_type="application/json"):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, obj, headers: dict | None = None):
            self._send(status, json.dumps(obj).encode(), headers)

        def _error(self, status: int, code: str | None, message: str):
            self._json(status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message} if code else {})

        def _fixed_answer(self, answers: dict[str, tuple[int, bytes, dict[str, str]]], path: str) -> bool:
            """Send the fixed answer of the first pattern matching ``path``; False when none matches."""
            for pattern, (status, body, headers) in answers.items():
                if re.fullmatch(pattern, path):
                    self._send(status, body, headers, content_type="text/plain")
                    return True
            return False

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _repo(self, repo_id: str) -> Repo | None:
            repo = hub.repos.get(repo_id)
            if repo is None:
                self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
            return repo

        def _commit(self, repo: Repo, rev: str) -> Commit | None:
            commit = repo.resolve(unquote(rev))
            if commit is None:
                self._error(404, "RevisionNotFound", f"Invalid rev id: {unquote(rev)}")
            return commit

        def _model_json(self, repo_id: str, commit: Commit, blobs: bool) -> dict:
            card = _card_data(commit.files)
            tags = list(card.get("tags") or [])
            siblings = []
            for path, data in sorted(commit.files.items()):
                entry = {"rfilename": path}
                if blobs and hub.sizes_in_repo_info:
                    entry.update(size=len(data), blobId=git_blob_sha(data))
                siblings.append(entry)
            return {"id": repo_id, "modelId": repo_id, "sha": commit.oid, "private": hub.repos[repo_id].private,
                    "tags": tags,
                    "library_name": card.get("library_name"), "cardData": card, "siblings": siblings,
                    "lastModified": commit.date, "author": repo_id.split("/")[0],
                    "downloads": 0, "likes": 0}  # the Hub always sends both; huggingface_hub < 0.24 needs them

        # -- dispatch ---------------------------------------------------------------------------------
        def do_HEAD(self):
            self.do_GET()

        def do_GET(self):
            parts = urlsplit(self.path)
            path, query = unquote(parts.path), parse_qs(parts.query)
            hub.requests.append((self.command, parts.path))
            if self._fixed_answer(hub.answers, path):
                return
            if path == "/api/models":
                return self._list_models(query)
            m = re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/(.+))?", parts.path)
            if m:
                repo = self._repo(unquote(m.group(1)))
                commit = repo and self._commit(repo, m.group(2) or "main")
                if commit:
                    self._json(200, self._model_json(unquote(m.group(1)), commit, "blobs" in query))
                return
            m = re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/([^/]+)(/.*)?", parts.path)
            if m:
                return self._tree(unquote(m.group(1)), m.group(2), unquote(m.group(3) or "/").strip("/"))
            m = re.fullmatch(r"/api/models/([^/]+/[^/]+)/commits/([^/]+)", parts.path)
            if m:
                return self._commits(unquote(m.group(1)), m.group(2))
            m = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", parts.path)
            if m:
                return self._resolve(unquote(m.group(1)), m.group(2), unquote(m.group(3)))
            self._error(404, None, f"fake hub: no route for GET {parts.path}")

        def do_POST(self):
            parts = urlsplit(self.path)
            hub.requests.append(("POST", parts.path))
            body = self._body()
            if self._fixed_answer(hub.post_answers, parts.path):
                return
            if parts.path == "/api/repos/create":
                payload = json.loads(body)
                repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
                # huggingface_hub 2.x sends "visibility", earlier versions "private".
                private = payload.get("visibility") == "private" or bool(payload.get("private"))
                if hub.create(repo_id, private=private):
                    return self._json(200, {"url": f"{hub.url}/{repo_id}", "name": repo_id})
                # Like the Hub, the conflict answer carries the url: the client reads it with exist_ok=True.
                return self._json(409, {"error": "You already created this model repo", "url": f"{hub.url}/{repo_id}"})
            if parts.path == "/api/validate-yaml":
                return self._json(200, {"errors": [], "warnings": []})
            m = re.fullmatch(r"/api/models/([^/]+/[^/]+)/preupload/([^/]+)", parts.path)
            if m:
                if self._repo(unquote(m.group(1))) is None:
                    return
                files = json.loads(body)["files"]
                return self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                                  for f in files]})
            m = re.fullmatch(r"/api/models/([^/]+/[^/]+)/commit/([^/]+)", parts.path)
            if m:
                create_pr = parse_qs(parts.query).get("create_pr") == ["1"]
                return self._commit_ndjson(unquote(m.group(1)), unquote(m.group(2)), body, create_pr)
            m = re.fullmatch(r"/api/models/([^/]+/[^/]+)/branch/([^/]+)", parts.path)
            if m:
                return self._create_branch(unquote(m.group(1)), unquote(m.group(2)), body)
            self._error(404, None, f"fake hub: no route for POST {parts.path}")

        # -- endpoints --------------------------------------------------------------------------------
        def _create_branch(self, repo_id: str, branch: str, body: bytes):
            repo = self._repo(repo_id)
            if repo is None:
                return
            if branch in repo.refs:
                return self._error(409, None, f"Reference already exists: {branch}")
            start = (json.loads(body or b"{}") or {}).get("startingPoint") or "main"
            commit = self._commit(repo, start)
            if commit:
                with hub.lock:
                    repo.refs[branch] = commit.oid
                self._json(200, {})

        def _commit_ndjson(self, repo_id: str, rev: str, body: bytes, create_pr: bool = False):
            repo = self._repo(repo_id)
            if repo is None:
                return
            if rev not in repo.refs:
                return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
            pr_url = None
            if create_pr:  # like the Hub: a pull request is a new ref refs/pr/N, starting at the target branch
                with hub.lock:
                    number = 1 + sum(1 for ref in repo.refs if ref.startswith("refs/pr/"))
                    rev = f"refs/pr/{number}"
                    repo.refs[rev] = repo.refs["main"]
                pr_url = f"{hub.url}/{repo_id}/discussions/{number}"
            header, changes = {}, {}
            for line in body.splitlines():
                if not line.strip():
                    continue
                item = json.loads(line)
                key, value = item["key"], item["value"]
                if key == "header":
                    header = value
                elif key == "file":
                    changes[value["path"]] = base64.b64decode(value["content"])
                elif key in ("deletedFile", "deletedFolder"):
                    changes[value["path"]] = None
                else:
                    return self._error(400, None, f"fake hub: unsupported commit operation {key}")
            oid = hub.commit(repo_id, header.get("summary", ""), changes, header.get("description", ""), branch=rev)
            self._json(200, {"success": True, "commitOid": oid, "commitUrl": f"{hub.url}/{repo_id}/commit/{oid}",
                             "commitMessage": header.get("summary", ""), "pullRequestUrl": pr_url})

        def _tree(self, repo_id: str, rev: str, prefix: str):
            repo = self._repo(repo_id)
            commit = repo and self._commit(repo, rev)
            if not commit:
                return
            recursive = "recursive" in urlsplit(self.path).query
            entries, folders = [], set()
            for path, data in sorted(commit.files.items()):
                if prefix and not path.startswith(prefix + "/"):
                    continue
                rest = path[len(prefix) + 1:] if prefix else path
                if "/" in rest and not recursive:
                    folders.add((prefix + "/" if prefix else "") + rest.split("/")[0])
                    continue
                parents = path.split("/")[:-1]
                for i in range(len(prefix.split("/")) if prefix else 0, len(parents)):
                    folders.add("/".join(parents[: i + 1]))
                entries.append({"type": "file", "oid": git_blob_sha(data), "size": len(data), "path": path})
            entries += [{"type": "directory", "oid": "0" * 40, "size": 0, "path": f} for f in sorted(folders)]
            self._json(200, entries)

        def _commits(self, repo_id: str, rev: str):
            repo = self._repo(repo_id)
            commit = repo and self._commit(repo, rev)
            out = []
            while commit:
                if hub.commit_authors_by_name:
                    out.append({"id": commit.oid, "title": commit.title + "\n", "message": "",
                                "authors": [{"name": "tester", "avatar": None}], "date": commit.date})
                else:
                    out.append({"id": commit.oid, "title": commit.title, "message": commit.message,
                                "authors": [{"user": "tester"}], "date": commit.date})
                commit = repo.commits.get(commit.parent) if commit.parent else None
            if repo and out:
                self._json(200, out)

        def _resolve(self, repo_id: str, rev: str, path: str):
            repo = self._repo(repo_id)
            commit = repo and self._commit(repo, rev)
            if not commit:
                return
            data = commit.files.get(path)
            if data is None:
                return self._error(404, "EntryNotFound", f"{path} does not exist on {rev}")
            self._send(200, data, {"X-Repo-Commit": commit.oid, "ETag": f'"{git_blob_sha(data)}"'},
                       content_type="application/octet-stream")

        def _list_models(self, query: dict):
            wanted = query.get("filter", [])
            out = []
            for repo_id, repo in sorted(hub.repos.items()):
                commit = repo.resolve("main")
                card = _card_data(commit.files)
                have = set(card.get("tags") or []) | {card.get("library_name")}
                if all(w in have for w in wanted):
                    out.append({"id": repo_id, "modelId": repo_id, "sha": commit.oid, "tags": sorted(have - {None})})
            if hub.page_size is None:
                return self._json(200, out)
            start = int(query.get("cursor", ["0"])[0])
            end = start + hub.page_size
            filters = "&".join(f"filter={w}" for w in wanted)
            link = {"Link": f'<{hub.url}/api/models?{filters}&cursor={end}>; rel="next"'} if end < len(out) else {}
            self._json(200, out[start:end], link)

    return Handler


class ResettingEndpoint:
    """A port that accepts every connection and resets it at once, counting the connections: a hub that gives
    no answer at all, where a test can see how often the client tried (a closed port counts nothing)."""

    def __init__(self) -> None:
        self.connections = 0
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.05)
        self._stopped = threading.Event()
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            self.connections += 1
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = reset
            conn.close()

    def start(self) -> "ResettingEndpoint":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
        self._sock.close()
