"""How an answer is generated: the sampling settings a request carries, and streaming an answer as the LLM
writes it, every prefix checked by the output safety hooks before it is shown.

Shared by ``anymal chat`` (``--temperature``, ``--top-p``, ``--seed``, ``--stream``), the server (OpenAI's
``temperature``, ``top_p``, ``seed``) and :meth:`anymal_host.AnymalHost.stream`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator

__all__ = ["GenerationSettings", "AnswerStream"]


@dataclass(frozen=True)
class GenerationSettings:
    """What decides how a request is generated; a server batches requests together only when these are equal."""

    max_tokens: int  # longest answer, in tokens
    temperature: float | None = None  # None or 0: greedy decoding; above 0: sampling at this temperature
    top_p: float | None = None  # nucleus sampling mass (only with a temperature)
    seed: int | None = None  # seeds torch's generator before sampling, so a seeded answer repeats

    def generate_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``model.generate`` these settings mean (the seed is applied separately)."""
        if not self.temperature:
            return {"do_sample": False}
        kwargs: dict[str, Any] = {"do_sample": True, "temperature": float(self.temperature)}
        if self.top_p is not None:
            kwargs["top_p"] = float(self.top_p)
        return kwargs

    def apply_seed(self) -> None:
        """Seed torch's generator when a seed is set (call right before generating)."""
        if self.seed is not None:
            import torch

            torch.manual_seed(self.seed)


class AnswerStream:
    """An answer as it is generated: iterate for the text pieces; afterwards ``answer`` holds the whole
    :class:`~anymal_host.host.Answer` (text, finish reason, token counts).

    ``run(streamer, stop)`` generates in a worker thread, feeding ``streamer`` (transformers'
    ``TextIteratorStreamer``) and stopping early once ``stop`` is set. ``check(text)`` returns a refusal or
    None: it sees every prefix of the answer before that prefix is yielded, so nothing a check would refuse is
    ever shown; a refusal stops generation and raises :class:`~anymal_host.safety.ContentRefusedError` (the
    pieces yielded before it all passed). ``finish(text)`` builds the final Answer.
    """

    def __init__(self, streamer: Any, run: Callable[[threading.Event], Any], check: Callable[[str], Any],
                 finish: Callable[[str], Any], adapters: dict[str, str] | None = None) -> None:
        self.adapters = dict(adapters or {})  # the adapter that encoded each modality's attachments
        self._streamer = streamer
        self._run = run
        self._check = check
        self._finish = finish
        self.answer: Any = None

    def __iter__(self) -> Iterator[str]:
        from .safety import ContentRefusedError

        stop = threading.Event()
        failure: list[BaseException] = []

        def work() -> None:
            try:
                self._run(stop)
            except BaseException as exc:  # re-raised in the caller's thread below
                failure.append(exc)
                self._streamer.end()

        worker = threading.Thread(target=work, name="anymal-stream", daemon=True)
        worker.start()
        text = ""
        try:
            for piece in self._streamer:
                if not text:
                    piece = piece.lstrip()  # the answer is shown stripped, as generate returns it
                if not piece:
                    continue
                refusal = self._check(text + piece)
                if refusal is not None:
                    stop.set()
                    raise ContentRefusedError(refusal)
                text += piece
                yield piece
        finally:
            stop.set()  # a caller that stops iterating early stops the generation too
            worker.join()
        if failure:
            raise failure[0]
        self.answer = self._finish(text.rstrip())
