"""Concurrent requests -> LLM batches, on one worker thread that owns the LLM.

Each request arrives prepared (:meth:`AnymalHost.prepare`: checked, its attachments encoded with the adapters
of the snapshot it started with). The worker takes the first waiting request, waits up to ``batch_window_ms``
for more (up to ``max_batch_size``), and answers those that share their generation settings as one
:meth:`AnymalHost.answer` call. Requests with other settings are answered in the same round, group by group. A
seeded request is answered alone, so its seed alone decides its sampling.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

from ..generation import GenerationSettings

__all__ = ["GenerationSettings", "QueueFullError", "Batcher"]


class QueueFullError(RuntimeError):
    """More requests are waiting than the server takes: answer 503 with Retry-After."""


@dataclass
class _Job:
    request: Any  # PreparedRequest
    settings: GenerationSettings
    future: concurrent.futures.Future
    order: int


class Batcher:
    """Gathers prepared requests into batches and answers them on its worker thread."""

    def __init__(self, host: Any, *, max_batch_size: int, batch_window_ms: float, max_queue: int,
                 on_batch: Callable[[int], None] | None = None) -> None:
        self.host = host
        self.max_batch_size = max_batch_size
        self.window = batch_window_ms / 1000
        self.max_queue = max_queue
        self.on_batch = on_batch
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._counter = itertools.count()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="anymal-batcher", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        """Requests waiting for the LLM."""
        return self._queue.qsize()

    def submit(self, request: Any, settings: GenerationSettings) -> concurrent.futures.Future:
        """Queue a prepared request; its future resolves to the request's :class:`~anymal_host.host.Answer`."""
        if self._closing.is_set():
            raise QueueFullError("the server is shutting down")
        if self._queue.qsize() >= self.max_queue:
            raise QueueFullError(f"{self.max_queue} requests are already waiting")
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._queue.put(_Job(request, settings, future, next(self._counter)))
        return future

    def close(self, timeout: float | None = None) -> None:
        """Stop taking requests, answer those already queued, and stop the worker."""
        self._closing.set()
        self._queue.put(None)
        self._thread.join(timeout)

    # ----- the worker ------------------------------------------------------------------------------------

    def _gather(self, first: _Job) -> tuple[list[_Job], bool]:
        """``first`` and whatever else arrives within the window, up to the batch size; and whether the
        closing marker was seen."""
        jobs, deadline = [first], time.monotonic() + self.window
        while len(jobs) < self.max_batch_size:
            remaining = deadline - time.monotonic()
            try:
                job = self._queue.get(timeout=max(remaining, 0)) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return jobs, True
            jobs.append(job)
        return jobs, False

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                break
            jobs, stop = self._gather(first)
            groups: dict[tuple[GenerationSettings, int | None], list[_Job]] = {}
            for job in jobs:  # a seeded request is a group of its own
                key = (job.settings, job.order if job.settings.seed is not None else None)
                groups.setdefault(key, []).append(job)
            for group in groups.values():
                self._answer(group)
        while True:  # answer what was queued before the closing marker
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                self._answer([job])

    def _answer(self, group: list[_Job]) -> None:
        live = [job for job in group if job.future.set_running_or_notify_cancel()]
        if not live:
            return
        settings = live[0].settings
        try:
            settings.apply_seed()
            answers = self.host.answer([job.request for job in live], max_new_tokens=settings.max_tokens,
                                       **settings.generate_kwargs())
        except BaseException as exc:  # every waiting client gets the error, the worker keeps running
            for job in live:
                job.future.set_exception(exc)
            return
        if self.on_batch is not None:
            self.on_batch(len(live))
        for job, answer in zip(live, answers):
            job.future.set_result(answer)
