"""``anymal chat``: one answer, a streamed answer, a continued conversation, or an interactive session that
keeps the LLM loaded; every exchange logged in SQLite (:mod:`anymal_host.logs`) unless logging is off."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from .cli_common import echo_warnings

__all__ = ["chat"]

LLM_HELP = ("LLM to use: a Hub id (org/name) or a local folder (/abs/path or ./path; a bare org/name that is "
            "also a folder is refused as ambiguous). Default: $ANYMAL_LLM, else the embedded "
            "SmolLM2-135M-Instruct (converted once into $ANYMAL_HOME).")

_INTERACTIVE_HELP = """Chatting with {llm}. Each message is answered with the conversation so far.
  !attach PATH   attach a file to your next message (repeatable)
  !reset         start a new conversation
  exit, quit     end (or Ctrl-D)"""


@click.command()
@click.argument("prompt", required=False)
@click.option("-a", "--attach", "attachments", multiple=True, type=click.Path(dir_okay=False),
              help="A file to attach (repeatable); its modality is chosen by file type.")
@click.option("--modality", help="Modality of every --attach file, when the file type is ambiguous.")
@click.option("--adapter", "adapters", multiple=True, help="Adapter ref to load first (repeatable): "
              "org/name[@rev], hf://org/name[@rev], file:///path or a folder.")
@click.option("--llm", default=None, help=LLM_HELP)
@click.option("--quantize", type=click.Choice(["4bit", "8bit"]), default=None,
              help="Load the LLM with bitsandbytes (pip install 'anymal[quantize]').")
@click.option("--max-new-tokens", default=64, show_default=True, type=click.IntRange(1, 4096),
              help="Longest answer in tokens.")
@click.option("--system", default=None, help="A system message to put first.")
@click.option("--temperature", type=click.FloatRange(0, 2), default=None,
              help="Sample at this temperature (0 or unset: greedy, the same answer every time).")
@click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Nucleus sampling: keep the smallest set of tokens with this probability mass (needs --temperature).")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=None, help="Seed sampling, so an answer repeats.")
@click.option("--stream", is_flag=True, help="Print the answer as it is generated.")
@click.option("-i", "--interactive", is_flag=True, help="Keep the LLM loaded and chat turn after turn.")
@click.option("-c", "--continue", "continue_", is_flag=True, help="Continue the most recent logged conversation.")
@click.option("--cid", default=None, help="Continue the logged conversation with this id (see `anymal logs`).")
@click.option("--log/--no-log", "log", default=None,
              help="Log this exchange (default: on, unless `anymal logs off`).")
@click.option("--force", is_flag=True, help="Load adapters trained for another LLM anyway (warns).")
def chat(prompt: str | None, attachments: tuple[str, ...], modality: str | None, adapters: tuple[str, ...],
         llm: str | None, quantize: str | None, max_new_tokens: int, system: str | None, temperature: float | None,
         top_p: float | None, seed: int | None, stream: bool, interactive: bool, continue_: bool, cid: str | None,
         log: bool | None, force: bool) -> None:
    """Answer PROMPT with the LLM, looking at any attached signals.

    PROMPT '-' (or no PROMPT with text piped in) reads the prompt from stdin. With -i, PROMPT (if any) is the
    first message of an interactive session. -c / --cid continue a logged conversation: its earlier turns and
    their attachments (read again, refused if changed) come first.

    \b
    Examples:
      anymal chat "What is the capital of France?"
      anymal chat -a walk.csv "What is the person doing?"
      cat question.txt | anymal chat -
      anymal chat -c "And how fast?"
      anymal chat -i -a photo.jpg

    Same as AnymalHost(llm).chat(PROMPT, attachments=[...]) in Python (AnymalHost.stream for --stream).
    """
    from .generation import GenerationSettings

    if top_p is not None and not temperature:
        raise click.BadParameter("top-p only applies when sampling: add --temperature (above 0)",
                                 param_hint="--top-p")
    if continue_ and cid:
        raise click.BadParameter("use either -c (the latest conversation) or --cid ID", param_hint="--cid")
    prompt = _read_prompt(prompt, interactive)
    for path in attachments:
        if not Path(path).is_file():
            raise click.BadParameter(f"{path} does not exist or is not a file", param_hint="--attach")
    settings = GenerationSettings(max_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed)
    session = _Session(llm=llm, quantize=quantize, adapters=adapters, force=force, settings=settings, stream=stream,
                       system=system, log=log, continue_id=cid, continue_latest=continue_)
    if not interactive:
        session.turn(prompt or "", list(attachments), modality)
        return
    session.interact(prompt, list(attachments), modality)


def _read_prompt(prompt: str | None, interactive: bool) -> str | None:
    """PROMPT as given; '-' or none with piped input: stdin. No prompt on a terminal without -i is an error."""
    if prompt == "-" or (prompt is None and not interactive and not sys.stdin.isatty()):
        text = sys.stdin.read().strip()
        if not text:
            raise click.UsageError("the prompt read from stdin is empty: pipe some text in, or give PROMPT")
        return text
    if prompt is None and not interactive:
        raise click.UsageError("give a PROMPT, pipe one in (`... | anymal chat -`), or chat interactively with -i")
    return prompt


class _Session:
    """One host, one conversation: the turns so far, logged as they happen."""

    def __init__(self, *, llm: str | None, quantize: str | None, adapters: tuple[str, ...], force: bool,
                 settings: Any, stream: bool, system: str | None, log: bool | None, continue_id: str | None,
                 continue_latest: bool) -> None:
        from .host import AnymalHost
        from .llm import LLMOptions
        from .logs import LogStore, logging_enabled

        self.host = AnymalHost(llm, llm_options=LLMOptions(quantization=quantize))
        for ref in adapters:
            with echo_warnings():
                name = self.host.load_adapter(ref, force=force)
            click.echo(f"loaded adapter {name} from {ref}", err=True)
        self.settings = settings
        self.stream = stream
        self.system = system
        self.messages: list[dict[str, Any]] = []
        self.conversation_id: str | None = None
        wants_log = logging_enabled() if log is None else log
        self.store = LogStore() if (wants_log or continue_id or continue_latest) else None
        self.logging = wants_log
        if continue_latest or continue_id:
            self._resume(continue_id)

    def _resume(self, conversation_id: str | None) -> None:
        from .logs import LogError

        assert self.store is not None
        conversation_id = conversation_id or self.store.latest_conversation_id()
        if conversation_id is None:
            raise LogError(f"no logged conversation to continue in {self.store.path}: leave out -c, or turn logging "
                           "on (`anymal logs on`) so that the next one is kept")
        conversation = self.store.conversation(conversation_id)
        self.messages = conversation.messages()
        if self.messages and self.messages[0]["role"] == "system":
            if self.system is None:
                self.system = self.messages[0]["content"]
            self.messages = self.messages[1:]
        self.conversation_id = conversation.id

    def turn(self, prompt: str, attachments: list[str], modality: str | None) -> str:
        """Answer one user message (with its attachments) after the conversation so far; print and log it."""
        from .logs import LoggedAttachment
        from .prompt import Attachment
        from .safety import ContentRefusedError

        logged = [LoggedAttachment.of(path, modality) for path in attachments]
        parts: list[Any] = [Attachment(source=a.path, modality=modality) for a in logged]
        user = {"role": "user", "content": [*parts, prompt]}
        conversation = ([{"role": "system", "content": self.system}] if self.system else []) + self.messages + [user]
        started = time.perf_counter()
        self.settings.apply_seed()
        if self.stream:
            answer, adapters = self._streamed(conversation)
        else:
            request = self.host.prepare(conversation)
            answer = self.host.answer([request], max_new_tokens=self.settings.max_tokens,
                                      **self.settings.generate_kwargs())[0]
            adapters = request.adapters
            if answer.refusal is None:
                click.echo(answer.text)
        self._log(prompt, logged, adapters, answer, started)
        if answer.refusal is not None:
            raise ContentRefusedError(answer.refusal)
        self.messages += [user, {"role": "assistant", "content": answer.text}]
        return answer.text

    def _streamed(self, conversation: list[dict[str, Any]]) -> tuple[Any, dict[str, str]]:
        from .host import Answer
        from .safety import ContentRefusedError

        pieces = self.host.stream(conversation, max_new_tokens=self.settings.max_tokens,
                                  **self.settings.generate_kwargs())
        shown = ""
        try:
            for piece in pieces:
                shown += piece
                click.echo(piece, nl=False)
                sys.stdout.flush()
        except ContentRefusedError as refused:
            if shown:
                click.echo()
            return Answer("", "content_filter", refused.refusal), pieces.adapters
        click.echo()
        return pieces.answer, pieces.adapters

    def _log(self, prompt: str, attachments: list[Any], adapters: dict[str, str], answer: Any,
             started: float) -> None:
        if not self.logging or self.store is None:
            return
        if self.conversation_id is None:
            self.conversation_id = self.store.new_conversation(prompt, self.host.llm_name)
        options = {k: v for k, v in self.settings.__dict__.items() if v is not None}
        self.store.record(self.conversation_id, llm=self.host.llm_name, prompt=prompt, response=answer.text,
                          finish_reason=answer.finish_reason, system=self.system, attachments=attachments,
                          adapters=adapters, options=options, prompt_tokens=answer.prompt_tokens or None,
                          completion_tokens=answer.completion_tokens,
                          duration_ms=int((time.perf_counter() - started) * 1000))

    def interact(self, first: str | None, attachments: list[str], modality: str | None) -> None:
        """Read messages until exit / quit / end of input; the LLM stays loaded and the conversation grows.
        An error in one turn (a bad file, a refusal) is shown and the session goes on."""
        from .errors import AnymalError

        click.echo(_INTERACTIVE_HELP.format(llm=self.host.llm.name), err=True)
        pending = list(attachments)
        message = first
        while True:
            if message is None:
                try:
                    message = input("> ")
                except EOFError:
                    click.echo(err=True)
                    return
            text = message.strip()
            message = None
            if text in ("exit", "quit"):
                return
            if not text:
                continue
            if text.startswith("!attach "):
                path = text[len("!attach "):].strip()
                if Path(path).expanduser().is_file():
                    pending.append(str(Path(path).expanduser()))
                    click.echo(f"attached {path} to the next message", err=True)
                else:
                    click.echo(click.style("error: ", fg="red") + f"{path} does not exist or is not a file", err=True)
                continue
            if text == "!reset":
                self.messages, self.conversation_id, pending = [], None, []
                click.echo("new conversation", err=True)
                continue
            try:
                self.turn(text, pending, modality)
            except (AnymalError, ValueError, OSError) as exc:
                click.echo(click.style("error: ", fg="red") + str(exc), err=True)
            pending = []
