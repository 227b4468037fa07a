"""Manual check of the hub commands against a second, independent implementation of the Hub's HTTP API: olah
(https://github.com/vtuber-plan/olah, on PyPI), a self-hosted mirror that serves repos from local git repos.

Not a test (pytest does not collect this file) and not a CI dependency: olah is installed into a scratch
virtual environment of its own, so its dependencies never touch the project's::

    python3 -m venv /tmp/olah-venv && /tmp/olah-venv/bin/pip install olah
    python tests/hub/olah_check.py [--olah /tmp/olah-venv/bin/olah-cli] [--chat]

It builds git repos holding adapter packages (the IMU plugin's bundled adapter when the plugin is installed,
with two commits and a tag; a repo whose config is not JSON; a repo without a config), serves them with olah
on 127.0.0.1 in offline mode, runs ``anymal hub pull/info/ls/push`` and ``load_adapter`` (and, with ``--chat``,
``anymal chat --adapter``) against it through ``HF_ENDPOINT``, and prints one line per command. It exits 1 if
any command printed a traceback or ended with an exit code other than the one expected. The regression tests
that imitate olah's differences without olah are in test_hub_servers.py and test_hub_cli.py.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GIT_ENV = {"GIT_AUTHOR_NAME": "olah check", "GIT_AUTHOR_EMAIL": "check@example.invalid",
           "GIT_COMMITTER_NAME": "olah check", "GIT_COMMITTER_EMAIL": "check@example.invalid"}


def _git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=repo, env={**os.environ, **GIT_ENV}, check=True, capture_output=True,
                         text=True)
    return out.stdout.strip()


def _package_source(work: Path) -> Path:
    """The IMU plugin's bundled adapter (so ``--chat`` can use it), else a tiny package like the tests build."""
    try:
        from importlib.resources import files

        bundled = Path(str(files("anymal_plugin_imu") / "adapters" / "imu-linear"))
        if (bundled / "anymal_adapter.json").is_file():
            return bundled
    except ImportError:
        pass
    sys.path.insert(0, str(ROOT))
    from adapters_hub import save_adapter_package
    from tests.hub.conftest import make_config, make_tensors

    folder = work / "tiny-package"
    save_adapter_package(folder, make_config(), make_tensors())
    return folder


def build_mirror(work: Path) -> dict[str, str]:
    """git repos under ``work/mirrors/models/<org>/<name>`` (olah's layout); returns facts the checks use."""
    models = work / "mirrors" / "models"
    source = _package_source(work)
    imu = models / "lab" / "imu"
    shutil.copytree(source, imu)
    _git(imu, "init", "-q", "-b", "main")
    _git(imu, "add", "-A")
    _git(imu, "commit", "-q", "-m", "Add IMU adapter v1")
    _git(imu, "tag", "v1")
    v1 = _git(imu, "rev-parse", "HEAD")
    with open(imu / "README.md", "a", encoding="utf-8") as f:
        f.write("\nSecond revision.\n")
    _git(imu, "commit", "-q", "-am", "Update the model card")
    broken = models / "lab" / "broken"
    shutil.copytree(source, broken)
    (broken / "anymal_adapter.json").write_text("{not json")
    plain = models / "lab" / "plain"
    plain.mkdir(parents=True)
    (plain / "README.md").write_text("---\ntags: [anymal-adapter]\n---\nNot an adapter.\n")
    for repo in (broken, plain):
        _git(repo, "init", "-q", "-b", "main")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", "init")
    return {"v1": v1, "head": _git(imu, "rev-parse", "HEAD"), "source": str(source)}


def start_olah(olah: str, work: Path, port: int) -> subprocess.Popen:
    config = work / "olah.toml"
    config.write_text(f"""[basic]
host = "127.0.0.1"
port = {port}
repos-path = "{work / 'olah-repos'}"
mirrors-path = ["{work / 'mirrors'}"]
mirror-netloc = "127.0.0.1:{port}"
mirror-lfs-netloc = "127.0.0.1:{port}"

[accessibility]
offline = true
""")
    log = open(work / "olah.log", "w")
    proc = subprocess.Popen([olah, "-c", str(config)], cwd=work, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}/api/models/lab/imu/revision/main"
    for _ in range(120):
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return proc
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    stop(proc)
    raise SystemExit(f"olah did not come up on port {port}; see {work / 'olah.log'}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: olah and the workers it started, nothing else
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def run_checks(env: dict[str, str], facts: dict[str, str], chat: bool) -> bool:
    anymal = [sys.executable, "-m", "anymal_host.cli"]
    load = ("from anymal_host import AnymalHost; h = AnymalHost(); print('loaded', h.load_adapter('lab/imu'))")
    walking = Path(facts["source"]).parent.parent / "examples" / "walking.csv"
    # (command, expected exit code, what it shows)
    checks: list[tuple[list[str], int, str]] = [
        (anymal + ["hub", "pull", "lab/imu"], 0, "no @revision: main"),
        (anymal + ["hub", "pull", "lab/imu@v1"], 0, "a tag"),
        (anymal + ["hub", "pull", f"lab/imu@{facts['v1']}"], 0, "a commit"),
        (anymal + ["hub", "info", "lab/imu"], 0, "commit history read leniently"),
        (anymal + ["hub", "info", "lab/imu@v1"], 0, "info at a tag"),
        (anymal + ["hub", "ls"], 1, "no listing endpoint: unsupported"),
        (anymal + ["hub", "pull", "lab/imu@v9"], 1, "unknown revision"),
        (anymal + ["hub", "info", "lab/nope"], 1, "unknown repo"),
        (anymal + ["hub", "info", "lab/broken"], 1, "config not JSON"),
        (anymal + ["hub", "pull", "lab/plain"], 1, "not an adapter"),
        (anymal + ["hub", "push", facts["source"], "lab/pushed"], 1, "a read-only mirror: publishing unsupported"),
        ([sys.executable, "-c", load], 0, "load_adapter (loads the LLM)"),
    ]
    if chat and walking.is_file():
        checks.append((anymal + ["chat", "--adapter", "lab/imu", "--attach", str(walking), "--max-new-tokens", "24",
                                 "What is the person doing?"], 0, "chat with the pulled adapter"))
    ok = True
    for argv, expected, what in checks:
        out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
        text = out.stdout + out.stderr
        good = out.returncode == expected and "Traceback" not in text
        ok &= good
        shown = " ".join(a for a in argv[1:] if a not in ("-m", "anymal_host.cli"))[:80]
        print(f"{'ok ' if good else 'BAD'} rc={out.returncode} (want {expected})  {what}: `{shown}`")
        # Everything when it went wrong; else the answer's last line and anymal's own warnings.
        shown_lines = text.strip().splitlines() if not good or out.returncode else (
            out.stdout.strip().splitlines()[-1:] + [w for w in out.stderr.splitlines() if w.startswith("warning: ")])
        for line in shown_lines:
            print(f"      {line}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--olah", default="/tmp/olah-venv/bin/olah-cli", help="olah's olah-cli executable")
    parser.add_argument("--port", type=int, default=8091)
    parser.add_argument("--chat", action="store_true", help="also run `anymal chat --adapter lab/imu` (slow)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (printed) for inspection")
    args = parser.parse_args()
    if not Path(args.olah).exists():
        raise SystemExit(f"{args.olah} not found: python3 -m venv /tmp/olah-venv && /tmp/olah-venv/bin/pip install olah")
    work = Path(tempfile.mkdtemp(prefix="anymal-olah-"))
    facts = build_mirror(work)
    home = work / "anymal-home"
    home.mkdir()
    default_models = Path.home() / ".cache" / "anymal" / "models"
    if default_models.is_dir():  # reuse the converted default LLM instead of converting it again
        (home / "models").symlink_to(default_models, target_is_directory=True)
    env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{args.port}", "ANYMAL_HOME": str(home),
           "HF_HOME": str(work / "hf-home"), "HF_HUB_DISABLE_PROGRESS_BARS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    env.pop("HF_TOKEN", None)
    env.pop("ANYMAL_HUB", None)
    proc = start_olah(args.olah, work, args.port)
    try:
        ok = run_checks(env, facts, args.chat)
    finally:
        stop(proc)
        if args.keep:
            print(f"work folder: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("all commands answered or failed with one clear error" if ok else "SOME COMMANDS FAILED BADLY")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
