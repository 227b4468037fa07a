"""The ``anymal`` command line (run in-process with click's runner, the same code as the console script)."""

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from anymal_host import plugins
from anymal_host.cli import cli, main


@pytest.fixture(autouse=True)
def only_default_plugins(monkeypatch):
    monkeypatch.setenv("ANYMAL_LOAD_PLUGINS", "")
    plugins.reset_registry()
    yield
    plugins.reset_registry()


def test_help_explains_the_commands():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in ("chat", "plugins", "modalities"):
        assert command in result.output
    chat_help = CliRunner().invoke(cli, ["chat", "--help"])
    assert "--attach" in chat_help.output and "--llm" in chat_help.output and "ANYMAL_LLM" in chat_help.output


def test_plugins_lists_the_default_projectors():
    result = CliRunner().invoke(cli, ["plugins"])
    assert result.exit_code == 0
    assert "anymal_host.default_plugins.projectors (default)" in result.output
    assert "projector: linear, mlp, perceiver" in result.output


def test_modalities_without_plugins_says_what_to_install():
    result = CliRunner().invoke(cli, ["modalities"])
    assert "pip install anymal-plugin-imu" in result.output


def test_chat_attachment_of_unknown_type_is_one_readable_line(tmp_path, capsys):
    image = tmp_path / "cat.png"
    image.write_bytes(b"\x89PNG")
    with pytest.raises(SystemExit) as exit_info:
        main(["chat", "--llm", "/no/such/llm", "--attach", str(image), "What is this?"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err


def test_chat_refused_by_a_safety_check_is_one_readable_line(tmp_path, capsys, monkeypatch):
    words = tmp_path / "blocked.txt"
    words.write_text("bomb\n")
    monkeypatch.setenv("ANYMAL_SAFETY_WORDS", str(words))
    with pytest.raises(SystemExit) as exit_info:  # refused before the LLM is even loaded
        main(["chat", "--llm", "/no/such/llm", "How do I build a bomb?"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: refused by check_input_text of plugin 'anymal_host.default_plugins.safety': "
                          "the request contains the blocked term 'bomb'")
    listing = CliRunner().invoke(cli, ["plugins"]).output
    assert "anymal_host.default_plugins.safety (default)" in listing and "check_input_text" in listing


def test_serve_refuses_to_open_the_server_without_an_api_key(monkeypatch):
    monkeypatch.delenv("ANYMAL_API_KEY", raising=False)
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "reachable from other machines: give an API key" in result.output
    assert "--api-key" in CliRunner().invoke(cli, ["serve", "--help"]).output


def test_chat_missing_attachment_file():
    result = CliRunner().invoke(cli, ["chat", "--attach", "/no/file.csv", "hi"])
    assert result.exit_code != 0 and "does not exist" in result.output


@pytest.mark.e2e
def test_console_script_answers_with_the_default_llm():
    result = subprocess.run([sys.executable, "-m", "anymal_host.cli", "chat", "What is the capital of France?"],
                            capture_output=True, text=True, timeout=300, env={**__import__("os").environ, "ANYMAL_LOAD_PLUGINS": ""})
    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout


def test_plugin_adds_a_command_and_cannot_replace_one(registry):
    import click
    from anymal_host import hookimpl
    from anymal_host.cli import make_cli

    class CommandPlugin:
        @hookimpl
        def register_commands(self, cli):
            @cli.command(name="toy-stats")
            def toy_stats():
                """Print toy statistics."""
                click.echo("toy: 2 channels")

            @cli.command(name="chat")
            def hijack():
                click.echo("hijacked")

    registry.add_plugin(CommandPlugin(), name="command-plugin")
    group = make_cli(registry)
    assert CliRunner().invoke(group, ["toy-stats"]).output == "toy: 2 channels\n"
    assert group.commands["chat"] is cli.commands["chat"]
    error = registry.plugins["command-plugin"].errors[0]
    assert "command 'chat' from plugin 'command-plugin' is already registered by anymal (built-in)" in error
    assert "toy-stats" not in cli.commands  # the base group is untouched


def test_shell_completion_as_the_readme_documents_it():
    env = {**os.environ, "_ANYMAL_COMPLETE": "bash_complete", "COMP_WORDS": "anymal chat --st", "COMP_CWORD": "2"}
    done = subprocess.run([sys.executable, "-m", "anymal_host.cli"], env=env, capture_output=True, text=True)
    assert done.stdout.split() == ["plain,--stream"]
    env.update(_ANYMAL_COMPLETE="bash_source")
    script = subprocess.run([sys.executable, "-m", "anymal_host.cli"], env=env, capture_output=True, text=True).stdout
    assert "_anymal_completion()" in script and "complete -o nosort -F _anymal_completion" in script
