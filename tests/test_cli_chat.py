"""`anymal chat` as llm's users expect it: the prompt from stdin, sampling options checked by click, a SQLite
log of every exchange, continuing a logged conversation (-c / --cid), an interactive session (-i), and
`anymal logs`. Runs in-process against the tiny LLaMA saved to a folder (`--llm DIR`) and the toy plugin."""

from __future__ import annotations

import io
import json
import sys
from dataclasses import dataclass

import pytest
from click.testing import CliRunner

from anymal_host.cli import main

from anymal_host import plugins
from anymal_host.cli import cli
from anymal_host.logs import LogStore


@pytest.fixture
def log_path(registry, monkeypatch, tmp_path):
    monkeypatch.setattr(plugins, "_registry", registry)
    monkeypatch.setenv("ANYMAL_HOME", str(tmp_path / "home"))
    path = tmp_path / "logs.db"
    monkeypatch.setenv("ANYMAL_LOGS_PATH", str(path))
    yield path
    plugins.reset_registry()


@pytest.fixture
def toy_package(tiny_dir, registry, tmp_path):
    """A toy adapter package trained for the same weights the CLI loads from ``tiny_dir``."""
    import torch

    from adapters_hub import save_adapter_package
    from anymal_host import LLM, ModalityAdapter

    from .conftest import toy_config

    torch.manual_seed(1)
    adapter = ModalityAdapter.from_config(toy_config(LLM.load(str(tiny_dir))), registry)
    save_adapter_package(tmp_path / "toy", adapter.config, adapter.weights_for_saving())
    return str(tmp_path / "toy")


@dataclass
class Run:
    exit_code: int
    output: str  # stdout and stderr, as a user sees them


@pytest.fixture
def chat(tiny_dir, capsys, monkeypatch):
    """Run `anymal chat --llm TINY --max-new-tokens 3 ARGS` through the console entry point (so errors print as
    users see them), with ``input`` as stdin."""

    def run(*args: str, input: str = "") -> Run:
        monkeypatch.setattr(sys, "stdin", io.StringIO(input))
        try:
            main(["chat", "--llm", str(tiny_dir), "--max-new-tokens", "3", *args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out = capsys.readouterr()
        return Run(code, out.out + out.err)

    return run


def logged(path) -> list:
    with LogStore(path) as store:
        return store.latest(0)


def test_prompt_from_stdin_with_a_dash(chat, tiny_dir, log_path):
    result = chat("-", input="hello from a pipe\n")
    assert result.exit_code == 0, result.output
    [response] = logged(log_path)
    assert response.prompt == "hello from a pipe" and response.llm == str(tiny_dir)
    assert response.response == result.output.strip() and response.options == {"max_tokens": 3}


def test_no_prompt_reads_piped_stdin_and_an_empty_pipe_is_an_error(chat, log_path):
    assert chat(input="piped\n").exit_code == 0
    assert logged(log_path)[0].prompt == "piped"
    empty = chat(input="")
    assert empty.exit_code == 2 and "the prompt read from stdin is empty" in empty.output


@pytest.mark.parametrize("args, message", [
    (["--max-new-tokens", "0"], "'--max-new-tokens': 0 is not in the range 1<=x<=4096"),
    (["--temperature", "3"], "'--temperature': 3.0 is not in the range 0<=x<=2"),
    (["--top-p", "0.9"], "top-p only applies when sampling: add --temperature"),
    (["--temperature", "1", "--top-p", "0"], "'--top-p': 0.0 is not in the range 0<x<=1"),
    (["--seed", "-1"], "'--seed': -1 is not in the range"),
    (["-c", "--cid", "abc"], "use either -c (the latest conversation) or --cid ID"),
], ids=["max-new-tokens", "temperature", "top-p-alone", "top-p-zero", "seed", "c-and-cid"])
def test_bad_options_are_usage_errors_without_a_traceback(chat, log_path, args, message):
    result = chat(*args, "hi")
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_a_seed_repeats_a_sampled_answer(chat, log_path):
    first = chat("--temperature", "1.5", "--seed", "7", "hi")
    second = chat("--temperature", "1.5", "--seed", "7", "hi")
    assert first.exit_code == second.exit_code == 0 and first.output == second.output
    assert logged(log_path)[0].options == {"max_tokens": 3, "temperature": 1.5, "seed": 7}


def test_continue_puts_the_earlier_turns_first(chat, log_path, tmp_path, toy_package):
    signal = tmp_path / "signal.toy"
    signal.write_text("1 2\n3 4\n5 6\n")
    assert chat("--adapter", toy_package, "--attach", str(signal), "--modality", "toy", "--system",
                "be brief", "first").exit_code == 0
    assert chat("--adapter", toy_package, "-c", "second").exit_code == 0
    first, second = logged(log_path)
    assert first.conversation_id == second.conversation_id
    assert second.system == "be brief"  # the conversation's system message carries on
    assert first.attachments[0].path == str(signal.resolve()) and first.attachments[0].modality == "toy"
    assert first.adapters == {"toy": "toy-meanpool"}
    with LogStore(log_path) as store:
        messages = store.conversation(first.conversation_id).messages()
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant"]
    # a later turn costs more prompt tokens: the LLM saw the earlier turn and its attachment
    assert second.prompt_tokens > first.prompt_tokens


def test_continuing_with_a_changed_attachment_is_refused(chat, log_path, tmp_path, toy_package):
    signal = tmp_path / "signal.toy"
    signal.write_text("1 2\n3 4\n5 6\n")
    assert chat("--adapter", toy_package, "--attach", str(signal), "--modality", "toy", "first").exit_code == 0
    signal.write_text("0 0\n")
    result = chat("-c", "second")
    assert result.exit_code == 1
    assert f"used the attachment {signal.resolve()}, which has changed since" in result.output
    signal.unlink()
    assert "which no longer exists" in chat("-c", "second").output
    assert len(logged(log_path)) == 1


def test_continue_without_a_log_and_an_unknown_cid(chat, log_path):
    result = chat("-c", "hi")
    assert result.exit_code == 1 and "no logged conversation to continue" in result.output
    assert chat("hi").exit_code == 0
    result = chat("--cid", "nope", "hi")
    assert result.exit_code == 1 and "no conversation 'nope'" in result.output and "anymal logs" in result.output


def test_logs_off_on_and_the_per_command_switch(chat, log_path):
    runner = CliRunner()
    assert runner.invoke(cli, ["logs", "off"]).output.strip() == "Logging is off."
    assert chat("not logged").exit_code == 0
    assert not log_path.exists()
    assert chat("--log", "logged anyway").exit_code == 0
    assert runner.invoke(cli, ["logs", "on"]).exit_code == 0
    assert chat("logged").exit_code == 0
    assert chat("--no-log", "skipped").exit_code == 0
    assert [r.prompt for r in logged(log_path)] == ["logged anyway", "logged"]
    status = runner.invoke(cli, ["logs", "status"]).output
    assert "Logging is on" in status and "2 responses in 2 conversations" in status
    assert runner.invoke(cli, ["logs", "path"]).output.strip() == str(log_path)


def test_logs_lists_and_prints_json(chat, log_path):
    runner = CliRunner()
    assert "Nothing logged yet" in runner.invoke(cli, ["logs"]).output
    assert runner.invoke(cli, ["logs", "--json"]).output.strip() == "[]"
    for prompt in ("one", "two", "three", "four"):
        assert chat(prompt).exit_code == 0
    shown = runner.invoke(cli, ["logs"]).output
    assert "prompt: one" not in shown and "prompt: two" in shown and "prompt: four" in shown
    rows = json.loads(runner.invoke(cli, ["logs", "-n", "0", "--json"]).output)
    assert [r["prompt"] for r in rows] == ["one", "two", "three", "four"]
    assert set(rows[0]) >= {"conversation_id", "llm", "attachments", "response", "finish_reason", "datetime_utc"}
    latest = json.loads(runner.invoke(cli, ["logs", "-c", "--json"]).output)
    assert [r["prompt"] for r in latest] == ["four"]


def test_a_log_from_a_newer_anymal_or_not_a_database_is_a_clear_error(chat, log_path):
    log_path.write_bytes(b"not sqlite at all" * 100)
    result = chat("hi")
    assert result.exit_code == 1 and f"cannot use the log {log_path}" in result.output and "--no-log" in result.output
    log_path.unlink()
    import sqlite3

    with sqlite3.connect(log_path) as db:
        db.execute("PRAGMA user_version = 99")
    result = chat("hi")
    assert result.exit_code == 1 and "written by a newer anymal (log schema 99" in result.output


def test_interactive_session_keeps_one_conversation(chat, log_path, tmp_path, toy_package):
    signal = tmp_path / "signal.toy"
    signal.write_text("1 2\n3 4\n5 6\n")
    lines = ["first", f"!attach {signal}", "!attach /no/such/file.toy", "second", "", "!reset", "third", "exit",
             "never read"]
    result = chat("-i", "--adapter", toy_package, "--modality", "toy", input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.output
    assert "/no/such/file.toy does not exist or is not a file" in result.output
    rows = logged(log_path)
    assert [r.prompt for r in rows] == ["first", "second", "third"]
    assert rows[0].conversation_id == rows[1].conversation_id != rows[2].conversation_id
    assert [len(r.attachments) for r in rows] == [0, 1, 0]


def test_interactive_session_survives_a_bad_turn_and_ends_at_end_of_input(chat, log_path, tmp_path, toy_package):
    bad = tmp_path / "bad.toy"
    bad.write_text("not numbers")
    result = chat("-i", "--adapter", toy_package, "--modality", "toy", "opening", input=f"!attach {bad}\nlook\nafter\n")
    assert result.exit_code == 0
    assert "error: " in result.output
    assert [r.prompt for r in logged(log_path)] == ["opening", "after"]


def test_json_listings_parse(log_path):
    runner = CliRunner()
    rows = json.loads(runner.invoke(cli, ["plugins", "--json"]).output)
    toy = next(r for r in rows if r["registered"].get("modality") == ["toy"])
    assert set(toy) == {"name", "version", "distribution", "hooks", "registered", "errors", "default"}
    modalities = json.loads(runner.invoke(cli, ["modalities", "--json"]).output)
    assert [m["name"] for m in modalities] == ["toy"]
    assert set(modalities[0]) >= {"plugin", "file_extensions", "media_types", "signal", "bundled_adapters", "examples"}
    assert json.loads(runner.invoke(cli, ["adapters", "--json"]).output) == []


def test_stream_prints_what_a_plain_answer_prints_and_logs_it(chat, log_path):
    streamed = chat("--stream", "--max-new-tokens", "6", "hello")
    plain = chat("--max-new-tokens", "6", "hello")
    assert streamed.exit_code == plain.exit_code == 0 and streamed.output == plain.output
    first, second = logged(log_path)
    assert first.response == second.response and first.completion_tokens == second.completion_tokens
