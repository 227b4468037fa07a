"""The FastAPI application of ``anymal serve``: OpenAI's Chat Completions API over one :class:`AnymalHost`.

Endpoints: ``POST /v1/chat/completions`` (plain or ``stream: true``), ``GET /v1/models``, ``GET /v1/adapters``,
``POST /v1/adapters`` (hot-load ``{"ref", "name"}``), ``DELETE /v1/adapters/{name}``, ``GET /health`` and
``GET /metrics`` (Prometheus text). Errors are OpenAI's JSON shape, ``{"error": {"message", "type", "param",
"code"}}``, with the status that fits: 400 bad parts, 401 no or wrong key, 404 unknown model or adapter, 413 too
large, 503 (with ``Retry-After``) when the queue is full, 504 on timeout.

Per-request adapters: the extension field ``"anymal": {"adapters": {"image": "my-image-adapter"}}`` (the
``openai`` client's ``extra_body``) picks the adapter for each modality; other modalities use the active one.
Every completion carries the same field back, naming the adapter that encoded each modality's attachments.
Streaming sends the answer as chunks once the output safety checks have passed it, so a refused answer is
never partly sent.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Mapping

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from ..errors import (AdapterNotFoundError, AnymalError, InvalidSignalError, UnknownModalityError,
                      UnsupportedAttachmentError)
from .batcher import Batcher, GenerationSettings, QueueFullError
from .config import ServeConfig
from .parts import PartError, to_host_messages

__all__ = ["create_app", "run_server", "ApiError"]

_EXTENSION = "anymal"


class ApiError(Exception):
    """An error answered in OpenAI's JSON shape."""

    def __init__(self, status: int, message: str, *, kind: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.param, self.code = status, message, kind, param, code
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


class _Metrics:
    """Prometheus series of one server (its own registry, so several apps in one process do not clash)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("anymal_requests", "HTTP requests answered", ["endpoint", "status"],
                                registry=self.registry)
        self.latency = Histogram("anymal_request_seconds", "Chat completion latency, arrival to answer",
                                 registry=self.registry, buckets=(.05, .1, .25, .5, 1, 2, 5, 10, 30, 60, 120, 300))
        self.batch_size = Histogram("anymal_batch_size", "Requests per LLM batch", registry=self.registry,
                                    buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32))
        self.queue_depth = Gauge("anymal_queue_depth", "Requests waiting for the LLM", registry=self.registry)
        self.swaps = Counter("anymal_adapter_swaps", "Adapters loaded or unloaded over HTTP", ["action"],
                             registry=self.registry)
        self.refusals = Counter("anymal_refusals", "Requests refused by a safety check", ["check"],
                                registry=self.registry)

    def text(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


def _error_for(exc: BaseException) -> ApiError:
    """The API error for an exception raised while preparing or answering a request."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, PartError):
        return ApiError(exc.status, str(exc), param=exc.param, code="invalid_content_part")
    if isinstance(exc, AdapterNotFoundError):
        return ApiError(404, str(exc), code="adapter_not_found")
    if isinstance(exc, InvalidSignalError):
        return ApiError(400, str(exc), code="invalid_attachment")
    if isinstance(exc, (UnsupportedAttachmentError, UnknownModalityError)):
        return ApiError(400, str(exc), code="unsupported_attachment")
    if isinstance(exc, (AnymalError, ValueError)):
        return ApiError(400, str(exc))
    return ApiError(500, f"internal error: {type(exc).__name__}: {exc}", kind="server_error")


def _settings(body: Mapping[str, Any], config: ServeConfig) -> GenerationSettings:
    def number(name: str, low: float, high: float) -> float | None:
        value = body.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise ApiError(400, f"{name} must be a number from {low:g} to {high:g}", param=name)
        return float(value)

    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is None:
        max_tokens = config.default_max_tokens
    limit = config.max_tokens_limit
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= limit:
        raise ApiError(400, f"max_tokens must be a whole number from 1 to {config.max_tokens_limit}",
                       param="max_tokens")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ApiError(400, "seed must be a whole number", param="seed")
    n = body.get("n", 1)
    if n != 1:
        raise ApiError(400, "n must be 1: this server answers each request once", param="n")
    return GenerationSettings(max_tokens=max_tokens, temperature=number("temperature", 0, 2),
                              top_p=number("top_p", 0, 1), seed=seed)


def _stops(body: Mapping[str, Any]) -> list[str]:
    stop = body.get("stop")
    if stop is None:
        return []
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or len(stops) > 4 or not all(isinstance(s, str) and s for s in stops):
        raise ApiError(400, "stop must be a string or a list of at most 4 non-empty strings", param="stop")
    return stops


def _cut_at_stop(text: str, stops: list[str], finish: str) -> tuple[str, str]:
    cuts = [text.find(s) for s in stops if s in text]
    return (text[:min(cuts)], "stop") if cuts else (text, finish)


def create_app(host: Any, config: ServeConfig | None = None) -> Any:
    """The FastAPI app serving ``host`` (an :class:`~anymal_host.AnymalHost`) under ``config``."""
    config = config or ServeConfig()
    config.check()
    metrics = _Metrics()
    state: dict[str, Any] = {"batcher": None, "model": None, "closing": False}

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        # The LLM loads before the first request is taken, so /health says "ok" only when answers can be given.
        state["model"] = await asyncio.to_thread(lambda: host.llm.name)
        state["batcher"] = Batcher(host, max_batch_size=config.max_batch_size, batch_window_ms=config.batch_window_ms,
                                   max_queue=config.max_queue, on_batch=metrics.batch_size.observe)
        yield
        state["closing"] = True  # requests in flight finish; new ones are refused
        await asyncio.to_thread(state["batcher"].close)

    app = FastAPI(title="anymal", version=_version(), lifespan=lifespan,
                  description="OpenAI-compatible Chat Completions over a frozen LLM with modality adapters")

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        metrics.requests.labels(request.url.path, str(exc.status)).inc()
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.middleware("http")
    async def limits_and_auth(request: Request, call_next: Any) -> Any:
        path = request.url.path
        try:
            if state["closing"]:
                raise ApiError(503, "the server is shutting down", kind="server_error", headers={"Retry-After": "5"})
            length = request.headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > config.max_body_bytes):
                raise ApiError(413, f"the request body is over this server's limit of {config.max_body_bytes >> 20} "
                                    "MiB: send smaller attachments", code="request_too_large")
            if path.startswith("/v1/") or path == "/metrics":
                _authorize(request, config, manage=path.startswith("/v1/adapters") and request.method != "GET")
        except ApiError as exc:
            metrics.requests.labels(path, str(exc.status)).inc()
            return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)
        response = await call_next(request)
        if path != "/metrics":
            metrics.requests.labels(path, str(response.status_code)).inc()
        return response

    async def read_json(request: Request) -> dict[str, Any]:
        body = bytearray()
        async for chunk in request.stream():  # bodies without a Content-Length are bounded as they arrive
            body += chunk
            if len(body) > config.max_body_bytes:
                raise ApiError(413, "the request body is over this server's limit of "
                                    f"{config.max_body_bytes >> 20} MiB", code="request_too_large")
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"the request body is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ApiError(400, "the request body must be a JSON object")
        return data

    @app.get("/health")
    async def health() -> dict[str, Any]:
        batcher = state["batcher"]
        return {"status": "ok", "model": state["model"], "queue_depth": batcher.depth if batcher else 0,
                "adapters": sorted(host.adapters)}

    @app.get("/metrics")
    async def prometheus() -> Response:
        metrics.queue_depth.set(state["batcher"].depth if state["batcher"] else 0)
        return Response(metrics.text(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": state["model"], "object": "model", "created": 0,
                                            "owned_by": "anymal"}]}

    @app.get("/v1/adapters")
    async def list_adapters() -> dict[str, Any]:
        rows = await asyncio.to_thread(host.list_adapters)
        return {"object": "list", "data": rows}

    @app.post("/v1/adapters")
    async def load_adapter(request: Request) -> JSONResponse:
        body = await read_json(request)
        ref, name = body.get("ref"), body.get("name")
        if not isinstance(ref, str) or not ref or (name is not None and not isinstance(name, str)):
            raise ApiError(400, "send {\"ref\": \"<adapter ref>\", \"name\": \"<optional name>\"}", param="ref")
        try:
            loaded = await asyncio.to_thread(host.load_adapter, ref, name)
        except Exception as exc:
            raise _error_for(exc) from None
        metrics.swaps.labels("load").inc()
        row = next((r for r in host.list_adapters(include_bundled=False) if r["name"] == loaded), {"name": loaded})
        return JSONResponse(row, status_code=201)

    @app.delete("/v1/adapters/{name}")
    async def unload_adapter(name: str) -> dict[str, Any]:
        try:
            await asyncio.to_thread(host.unload_adapter, name)
        except Exception as exc:
            raise _error_for(exc) from None
        metrics.swaps.labels("unload").inc()
        return {"name": name, "deleted": True}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        started = time.perf_counter()
        body = await read_json(request)
        model = body.get("model")
        if model is not None and model not in (state["model"], "default"):
            raise ApiError(404, f"model {model!r} is not served here: use {state['model']!r} (GET /v1/models)",
                           param="model", code="model_not_found")
        settings, stops = _settings(body, config), _stops(body)
        extension = body.get(_EXTENSION) or {}
        adapters = extension.get("adapters", {}) if isinstance(extension, Mapping) else None
        if not isinstance(adapters, Mapping) or not all(isinstance(v, str) for v in adapters.values()):
            raise ApiError(400, f"{_EXTENSION}.adapters must map modality names to adapter names",
                           param=f"{_EXTENSION}.adapters")
        for modality, adapter in adapters.items():
            slot = host.adapters.get(adapter)
            if slot is None:
                loaded = ", ".join(host.adapters) or "none"
                raise ApiError(404, f"no adapter named {adapter!r} is loaded (loaded: {loaded}): load it with "
                                    "POST /v1/adapters", param=f"{_EXTENSION}.adapters", code="adapter_not_found")
            if slot.adapter.config.modality != modality:
                raise ApiError(400, f"adapter {adapter!r} is for {slot.adapter.config.modality!r}, not {modality!r}",
                               param=f"{_EXTENSION}.adapters")

        def prepare() -> Any:
            messages = to_host_messages(body.get("messages"), host.registry, adapters=adapters,
                                        allow_remote_urls=config.allow_remote_urls,
                                        max_attachment_bytes=config.max_body_bytes)
            return host.prepare(messages)

        try:
            prepared = await asyncio.wait_for(asyncio.to_thread(prepare), config.request_timeout_s)
            future = state["batcher"].submit(prepared, settings)
            remaining = config.request_timeout_s - (time.perf_counter() - started)
            answer = await asyncio.wait_for(asyncio.wrap_future(future), max(remaining, 0.001))
        except QueueFullError as exc:
            raise ApiError(503, f"the server is busy ({exc}): retry shortly", kind="server_error",
                           headers={"Retry-After": "1"}) from None
        except asyncio.TimeoutError:
            raise ApiError(504, f"the request took longer than {config.request_timeout_s:g} s", kind="server_error",
                           code="timeout") from None
        except Exception as exc:
            raise _error_for(exc) from None
        metrics.latency.observe(time.perf_counter() - started)
        text, finish = _cut_at_stop(answer.text, stops, answer.finish_reason)
        if answer.refusal is not None:
            metrics.refusals.labels(answer.refusal.check).inc()
        completion = {
            "id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": state["model"],
            _EXTENSION: {"adapters": prepared.adapters},  # which adapter encoded each modality's attachments
            "usage": {"prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens,
                      "total_tokens": answer.prompt_tokens + answer.completion_tokens,
                      "prompt_tokens_details": {"attachment_tokens": answer.attachment_tokens}},
        }
        refusal = str(answer.refusal.reason) if answer.refusal is not None else None
        if body.get("stream"):
            options = body.get("stream_options") or {}
            return StreamingResponse(_chunks(completion, text, finish, refusal, bool(options.get("include_usage"))),
                                     media_type="text/event-stream")
        return {**completion, "object": "chat.completion", "system_fingerprint": None,
                "choices": [{"index": 0, "finish_reason": finish, "logprobs": None,
                             "message": {"role": "assistant", "content": text if refusal is None else None,
                                         "refusal": refusal}}]}

    return app


async def _chunks(completion: dict[str, Any], text: str, finish: str, refusal: str | None,
                  include_usage: bool) -> AsyncIterator[bytes]:
    """Server-sent events in OpenAI's chunk format: the role, the text a word at a time, the finish reason,
    the usage when asked, then ``[DONE]``."""
    head = {"id": completion["id"], "object": "chat.completion.chunk", "created": completion["created"],
            "model": completion["model"], "system_fingerprint": None}

    def event(delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> bytes:
        choices = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
        return f"data: {json.dumps({**head, 'choices': choices, **extra})}\n\n".encode()

    yield event({"role": "assistant", "content": ""})
    if refusal is not None:
        yield event({"refusal": refusal})
    else:
        words = text.split(" ")
        for i, word in enumerate(words):
            yield event({"content": word if i == 0 else " " + word})
            await asyncio.sleep(0)
    yield event({}, finish)
    if include_usage:
        yield f"data: {json.dumps({**head, 'choices': [], 'usage': completion['usage']})}\n\n".encode()
    yield b"data: [DONE]\n\n"


def _authorize(request: Any, config: ServeConfig, *, manage: bool) -> None:
    if config.api_key is None:
        if manage:
            raise ApiError(401, "adapter management needs an API key: start the server with --api-key KEY (or "
                                "ANYMAL_API_KEY) and send Authorization: Bearer KEY", kind="authentication_error",
                           code="api_key_required")
        return
    sent = request.headers.get("authorization", "")
    scheme, _, token = sent.partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), config.api_key.encode()):
        raise ApiError(401, "missing or wrong API key: send Authorization: Bearer KEY", kind="authentication_error",
                       code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})


def _version() -> str:
    from .. import __version__

    return __version__


def run_server(host: Any, config: ServeConfig) -> None:
    """Serve until interrupted (SIGINT/SIGTERM: requests in flight finish, new ones are refused)."""
    import uvicorn

    config.check()
    uvicorn.run(create_app(host, config), host=config.host, port=config.port, log_level="info",
                timeout_graceful_shutdown=int(config.request_timeout_s))
