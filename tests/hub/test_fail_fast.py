"""A hub that gives no answer is reported at once, with what to do: one connection per operation (no retry loop;
huggingface_hub's own pagination retried five times with backoff, half a minute before `anymal hub ls` said
anything), an error naming the fixes (the network, --hub, HF_HUB_OFFLINE=1 for cached use), and the "no answer"
errors of every huggingface_hub generation's HTTP library recognised without importing any of them."""

from __future__ import annotations

import sys
import types

import pytest

from adapters_hub import HFHub, HubOfflineWarning, HubUnreachableError
from adapters_hub import hf_hub as hf_hub_module

from .conftest import closed_port_url

NO_ANSWER = r"cannot reach the hub at .* check the address \(\$HF_ENDPOINT or --hub\) and the network"


@pytest.mark.parametrize("operation", ["list", "info", "pull"])
def test_a_refused_connection_is_reported_with_the_fixes(tmp_path, operation):
    hub = HFHub(endpoint=closed_port_url(), token=False, cache_dir=tmp_path / "empty-cache")
    with pytest.raises(HubUnreachableError) as caught:
        {"list": lambda: hub.list(), "info": lambda: hub.info("lab/imu"), "pull": lambda: hub.pull("lab/imu")}[operation]()
    message = str(caught.value)
    assert "cannot reach the hub at http://127.0.0.1:" in message and "\n" not in message
    assert "HF_HUB_OFFLINE=1" in message or "not in the cache" in message  # pull: nothing cached to fall back on
    assert "--hub" in message


@pytest.mark.parametrize("operation", ["list", "info", "pull"])
def test_no_operation_retries_a_hub_that_does_not_answer(resetting_endpoint, tmp_path, operation):
    """Counted at the socket: every request the client makes, through any code path, is one connection."""
    hub = HFHub(endpoint=resetting_endpoint.url, token=False, cache_dir=tmp_path / "empty-cache")
    call = {"list": hub.list, "info": lambda: hub.info("lab/imu"), "pull": lambda: hub.pull("lab/imu")}[operation]
    with pytest.raises(HubUnreachableError, match="cannot reach the hub"):
        call()
    assert resetting_endpoint.connections == 1


def test_listing_error_names_hf_hub_offline_and_folder_hubs(resetting_endpoint):
    with pytest.raises(HubUnreachableError, match=NO_ANSWER) as caught:
        HFHub(endpoint=resetting_endpoint.url, token=False).list()
    assert "set HF_HUB_OFFLINE=1" in str(caught.value) and "folder hub (--hub /path/to/hub" in str(caught.value)


def test_publishing_error_does_not_suggest_the_cache(package, tmp_path):
    with pytest.raises(HubUnreachableError, match=NO_ANSWER) as caught:
        HFHub(endpoint=closed_port_url(), token=False, cache_dir=tmp_path / "c").push(package, "lab/imu")
    assert "HF_HUB_OFFLINE" not in str(caught.value)


@pytest.fixture
def offline_mode(monkeypatch):
    """HF_HUB_OFFLINE=1, as set before starting anymal. huggingface_hub 0.x decides offline mode when it makes its
    HTTP session, so its sessions are made again on the way in and out."""
    from huggingface_hub import constants
    from huggingface_hub import utils as hf_utils

    reset = getattr(hf_utils, "reset_sessions", lambda: None)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    reset()
    yield
    monkeypatch.undo()
    reset()


def test_hf_hub_offline_pulls_from_the_cache_without_a_warning(fake_hub, package, tmp_path, request, recwarn):
    hub = HFHub(endpoint=fake_hub.url, token=False, cache_dir=tmp_path / "hf-cache")
    revision = hub.push(package, "lab/imu")
    hub.pull("lab/imu")
    request.getfixturevalue("offline_mode")
    fake_hub.requests.clear()
    assert hub.pull("lab/imu").name == revision
    assert fake_hub.requests == []  # nothing was asked of the hub
    assert not [w for w in recwarn if issubclass(w.category, HubOfflineWarning)]  # offline was asked for
    with pytest.raises(HubUnreachableError, match=r"HF_HUB_OFFLINE is set, so the hub at .* is not contacted while "
                                                  r"listing adapters: unset HF_HUB_OFFLINE"):
        hub.list()


def test_a_dead_hub_still_falls_back_to_the_cache_with_a_warning(fake_hub, package, tmp_path):
    hub = HFHub(endpoint=fake_hub.url, token=False, cache_dir=tmp_path / "hf-cache")
    revision = hub.push(package, "lab/imu")
    hub.pull("lab/imu")
    dead = HFHub(endpoint=closed_port_url(), token=False, cache_dir=tmp_path / "hf-cache")
    with pytest.warns(HubOfflineWarning, match="cannot reach"):
        assert dead.pull("lab/imu").name == revision


class _FakeTransportError(Exception):
    pass


@pytest.mark.parametrize("library, base", [("requests", "ConnectionError"), ("requests", "Timeout"),
                                           ("httpx", "TransportError"), ("httpx2", "TransportError")])
def test_each_generations_transport_errors_mean_no_answer(monkeypatch, library, base):
    """huggingface_hub 0.x raises requests' errors, 1.x httpx's, 2.x httpx2's: whichever is loaded is recognised,
    and adapters_hub imports none of them."""
    error_type = type("ConnectError", (_FakeTransportError,), {})
    module = types.ModuleType(library)
    setattr(module, base, _FakeTransportError)
    monkeypatch.setitem(sys.modules, library, module)
    assert _FakeTransportError in hf_hub_module._transport_errors()
    assert hf_hub_module._classify(RuntimeError("not a transport error")).kind == "local"
    wrapped = OSError("download failed")
    wrapped.__cause__ = error_type("connection refused")
    assert hf_hub_module._classify(wrapped).kind == "unreachable"
    assert hf_hub_module._classify(error_type("refused")).kind == "unreachable"


def test_adapters_hub_imports_no_http_library_by_name():
    source = hf_hub_module.__file__
    with open(source, encoding="utf-8") as f:
        text = f.read()
    for library in ("httpx", "httpx2", "requests"):
        assert f"import {library}" not in text and f"from {library}" not in text
