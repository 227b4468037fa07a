"""``--llm org/name`` without a network: the local Hugging Face cache first, then one quick question to the Hub,
and an error that names the fix within seconds (huggingface_hub's retries took 49 s).

The end-to-end cases run ``LLM.load`` in a child process, because huggingface_hub reads ``HF_ENDPOINT``,
``HF_HOME`` and ``HF_HUB_OFFLINE`` when it is imported. Endpoints are local: a closed port, or a server that
records each request and hangs up. Nothing here reaches the network.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from anymal_host import hub_access

# What the child runs: each id in argv, loaded in turn; prints one JSON line per id.
CHILD = textwrap.dedent("""
    import json, sys, time
    from anymal_host.llm import LLM
    for repo in sys.argv[1:]:
        start = time.monotonic()
        try:
            llm = LLM.load(repo, progress=False)
            result = {"ok": True, "hidden_size": llm.hidden_size}
        except Exception as e:
            result = {"ok": False, "error": type(e).__name__, "message": str(e)}
        result["seconds"] = time.monotonic() - start
        print(json.dumps(result), flush=True)
""")


def closed_port() -> int:
    """A local port nothing listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HangUpServer:
    """Accepts connections, reads each request's first line and hangs up without an answer: every request
    fails, and every try is recorded."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.requests: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def asked_about(self, repo: str) -> list[str]:
        """The requests that concerned ``repo`` (huggingface_hub also fetches, once a day and without retries,
        its list of AI agent harnesses from the endpoint: that one is not about the model)."""
        return [line for line in self.requests if f"/{repo}/" in line]

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                try:
                    self.requests.append(conn.recv(4096).split(b"\r\n", 1)[0].decode("latin-1"))
                except OSError:
                    self.requests.append("")

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def hang_up():
    server = HangUpServer()
    yield server
    server.close()


@pytest.fixture
def hf_home(tmp_path) -> Path:
    """An HF_HOME whose hub cache holds ``org/tiny`` (the tiny LLaMA) in huggingface_hub's layout: a snapshot
    folder named by its commit, and ``refs/main`` pointing at it."""
    from anymal_host.testing import tiny_llm

    commit = "0" * 40
    repo = tmp_path / "hf" / "hub" / "models--org--tiny"
    snapshot = repo / "snapshots" / commit
    tiny = tiny_llm()
    tiny.model.save_pretrained(snapshot)
    tiny.tokenizer.save_pretrained(snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return tmp_path / "hf"


def load_in_child(tmp_path: Path, endpoint: str, *repos: str, offline: bool = False,
                  hf_home: Path | None = None) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_", "HUGGINGFACE_"))}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(hf_home or tmp_path / "hf-empty"), ANYMAL_HOME=str(tmp_path / "home"),
               OMP_NUM_THREADS="1", NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    done = subprocess.run([sys.executable, "-c", CHILD, *repos], env=env, capture_output=True, text=True, timeout=300)
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(results) == len(repos), done.stderr[-3000:]
    return results


def test_an_unreachable_hub_fails_in_seconds_and_names_the_fix(tmp_path):
    endpoint = f"http://127.0.0.1:{closed_port()}"
    [result] = load_in_child(tmp_path, endpoint, "org/x")
    assert result["error"] == "LLMLoadError"
    message = result["message"]
    assert f"cannot reach the Hugging Face Hub at {endpoint} to download the LLM 'org/x'" in message
    assert "not in the local cache" in message
    for fix in ("Connect to the network", "HF_ENDPOINT", "HF_HUB_OFFLINE=1", "local folder", "leave --llm out"):
        assert fix in message
    assert result["seconds"] < 15  # was 49 s of retries; generous, the child's imports are not counted


def test_the_hub_is_asked_once_without_retries(tmp_path, hang_up):
    [result] = load_in_child(tmp_path, hang_up.url, "org/x")
    assert result["error"] == "LLMLoadError" and "cannot reach the Hugging Face Hub" in result["message"]
    assert hang_up.asked_about("org/x") == ["HEAD /org/x/resolve/main/config.json HTTP/1.1"]  # no retries
    # (huggingface_hub alone tried each file six times, with back-off)


def test_a_cached_model_loads_without_asking_the_hub(tmp_path, hang_up, hf_home):
    cached, missing = load_in_child(tmp_path, hang_up.url, "org/tiny", "org/missing", hf_home=hf_home)
    assert cached == {**cached, "ok": True, "hidden_size": 32}
    assert missing["error"] == "LLMLoadError"
    assert hang_up.asked_about("org/tiny") == []
    assert len(hang_up.asked_about("org/missing")) == 1


def test_offline_mode_uses_the_cache_and_never_connects(tmp_path, hang_up, hf_home):
    cached, missing = load_in_child(tmp_path, hang_up.url, "org/tiny", "org/missing", offline=True, hf_home=hf_home)
    assert cached["ok"] is True
    assert missing["error"] == "LLMLoadError"
    assert missing["message"].startswith("HF_HUB_OFFLINE is set, so the LLM 'org/missing' can only come from the "
                                         "local Hugging Face cache, and it is not in it")
    assert "Unset HF_HUB_OFFLINE" in missing["message"] and "local folder" in missing["message"]
    assert hang_up.requests == []


class FakeHub(BaseHTTPRequestHandler):
    """Just enough of the Hub's HTTP API for transformers to download one repo: ``resolve`` (HEAD and GET, with
    the commit and ETag headers), the repo's info and an empty file tree."""

    folder: Path
    commit = "1" * 40
    requests: list[str]

    def do_HEAD(self) -> None:
        self.requests.append(f"HEAD {self.path}")
        self._file(body=False)

    def do_GET(self) -> None:
        self.requests.append(f"GET {self.path}")
        if "/tree/" in self.path:
            self._json([])
        elif self.path.startswith("/api/models/"):
            self._json({"id": "org/tiny", "sha": self.commit, "siblings": []})
        else:
            self._file(body=True)

    def _file(self, body: bool) -> None:
        _, _, _, action, _, *name = self.path.split("?")[0].split("/")  # /org/tiny/resolve/REV/NAME
        path = self.folder / "/".join(name)
        if action != "resolve" or not path.is_file():
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("X-Repo-Commit", self.commit)
            self.end_headers()
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("X-Repo-Commit", self.commit)
        self.send_header("ETag", f'"{hashlib.sha1(data).hexdigest()}"')
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def _json(self, value: object) -> None:
        data = json.dumps(value).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


def test_a_reachable_hub_downloads_once_then_the_cache_serves(tmp_path):
    from anymal_host.testing import tiny_llm

    tiny = tiny_llm()
    tiny.model.save_pretrained(tmp_path / "repo")
    tiny.tokenizer.save_pretrained(tmp_path / "repo")
    requests: list[str] = []
    handler = type("Hub", (FakeHub,), {"folder": tmp_path / "repo", "requests": requests})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        first, again = load_in_child(tmp_path, f"http://127.0.0.1:{server.server_port}", "org/tiny", "org/tiny")
    finally:
        server.shutdown()
        server.server_close()
    assert first == {**first, "ok": True, "hidden_size": 32} and again["ok"] is True
    probe = "HEAD /org/tiny/resolve/main/config.json"
    weights = [i for i, r in enumerate(requests) if r.startswith("GET ") and r.endswith("/model.safetensors")]
    assert requests.count(probe) == 1 and len(weights) == 1  # asked once, downloaded once: the second load
    assert requests.index(probe) < weights[0]  # came from the cache, and the download came after the probe


# ----- the probe on its own (in this process) -------------------------------------------------------------


def test_probe_reports_a_refused_connection(monkeypatch):
    monkeypatch.setattr(hub_access, "hub_endpoint", lambda: f"http://127.0.0.1:{closed_port()}")
    assert "refused" in hub_access.hub_unreachable("org/x").lower()


def test_probe_makes_one_attempt(monkeypatch, hang_up):
    monkeypatch.setattr(hub_access, "hub_endpoint", lambda: hang_up.url)
    assert hub_access.hub_unreachable("org/x", revision="v1.0") is not None
    assert hang_up.requests == ["HEAD /org/x/resolve/v1.0/config.json HTTP/1.1"]


def test_any_http_answer_means_reachable(monkeypatch):
    """A 404 (or 401) is the Hub answering: whether the repo exists is for transformers to say."""
    paths = []

    class NotFound(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            paths.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    monkeypatch.setattr(hub_access, "hub_endpoint", lambda: f"http://127.0.0.1:{server.server_port}")
    try:
        assert hub_access.hub_unreachable("org/x", revision="refs/pr/1") is None
    finally:
        thread.join(timeout=10)
        server.server_close()
    assert paths == ["/org/x/resolve/refs%2Fpr%2F1/config.json"]
