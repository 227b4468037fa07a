"""Server settings: safe by default (loopback only, bounded bodies, a bounded queue)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

__all__ = ["ServeConfig", "is_loopback"]


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server on this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class ServeConfig:
    """How ``anymal serve`` runs. Each field has a CLI option of the same name (``--max-batch-size``...)."""

    # Address to bind. Loopback by default: anything else needs api_key, so a host is never open by accident.
    host: str = "127.0.0.1"
    # TCP port.
    port: int = 8000
    # Bearer token clients must send (Authorization: Bearer KEY). Required to bind a non-loopback address, and
    # always required by the adapter-management endpoints (without one they are refused).
    api_key: str | None = None
    # Largest request body accepted; larger ones get 413 before they are read in full.
    max_body_bytes: int = 64 << 20
    # Requests gathered into one LLM batch at most.
    max_batch_size: int = 8
    # How long the batcher waits for more requests after the first of a batch arrives (milliseconds).
    batch_window_ms: float = 15.0
    # Requests waiting for the LLM at most; more get 503 with Retry-After.
    max_queue: int = 64
    # Seconds a request may take from arrival to answer; longer ones get 504 (the batch it is in still ends).
    request_timeout_s: float = 300.0
    # Whether image_url parts may name http(s) URLs, fetched by the server. Off: only data: URLs.
    allow_remote_urls: bool = False
    # Largest max_tokens / max_completion_tokens a request may ask for.
    max_tokens_limit: int = 1024
    # max_tokens when a request names none.
    default_max_tokens: int = 256

    def check(self) -> None:
        """Refuse settings that would be unsafe or cannot work, with the fix."""
        if not is_loopback(self.host) and not self.api_key:
            raise ValueError(f"binding {self.host} makes the server reachable from other machines: give an API key "
                             "(--api-key KEY or ANYMAL_API_KEY), or bind 127.0.0.1")
        for name in ("max_body_bytes", "max_batch_size", "max_queue", "max_tokens_limit", "default_max_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is not a TCP port (0-65535)")
        if self.batch_window_ms < 0 or self.request_timeout_s <= 0:
            raise ValueError("batch_window_ms must be >= 0 and request_timeout_s > 0")
