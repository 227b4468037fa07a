"""Can an LLM be fetched from the Hugging Face Hub right now? Asked once, quickly, before transformers is let
loose on the network.

huggingface_hub retries a refused or timed-out connection five times with back-off for every file it asks
for, so ``--llm org/name`` without a network waited about 49 s before transformers said it could not connect.
:func:`hub_unreachable` asks the endpoint one question with a short timeout and no retries instead. It honours
what huggingface_hub honours: ``HF_ENDPOINT``, ``HF_HUB_OFFLINE`` (and ``TRANSFORMERS_OFFLINE``), proxies.
"""

from __future__ import annotations

from urllib.parse import quote

__all__ = ["PROBE_TIMEOUT_S", "hub_endpoint", "hub_offline", "hub_unreachable"]

# Long enough for a slow but working link (the Hub answers a HEAD in well under a second), short enough
# that a black-holed network is reported within seconds.
PROBE_TIMEOUT_S = 5.0


def hub_endpoint() -> str:
    """The Hub address huggingface_hub downloads from (``$HF_ENDPOINT``, read when it was imported)."""
    from huggingface_hub import constants

    return constants.ENDPOINT


def hub_offline() -> bool:
    """Whether huggingface_hub was told not to use the network (``HF_HUB_OFFLINE=1`` or
    ``TRANSFORMERS_OFFLINE=1``)."""
    from huggingface_hub import constants

    is_offline = getattr(constants, "is_offline_mode", None)
    return bool(is_offline() if callable(is_offline) else constants.HF_HUB_OFFLINE)


def hub_unreachable(repo_id: str, revision: str | None = None, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why the Hub cannot be reached for ``repo_id``, or None when it answers. One HEAD request for the
    repo's ``config.json``, through huggingface_hub's own HTTP client (so its proxy and certificate settings
    apply) and without its retries. Any HTTP answer counts as reachable, 404 and 401 included: whether the
    repo exists is transformers' question, and its own error says it better."""
    import httpx2
    from huggingface_hub.utils import get_session

    url = f"{hub_endpoint()}/{repo_id}/resolve/{quote(revision or 'main', safe='')}/config.json"
    try:
        get_session().head(url, timeout=timeout, follow_redirects=False)
    except (httpx2.HTTPError, httpx2.InvalidURL, OSError, ValueError) as e:
        return str(e) or type(e).__name__
    return None
