"""Shared fixtures: one converted copy of Whisper's weights per test session, in a private ``ANYMAL_HOME``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def anymal_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # Never the user's cache: the conversion test removes and rewrites the converted folder.
    home = tmp_path_factory.mktemp("anymal-home")
    old = os.environ.get("ANYMAL_HOME")
    os.environ["ANYMAL_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("ANYMAL_HOME", None)
    else:
        os.environ["ANYMAL_HOME"] = old


@pytest.fixture(scope="session")
def espeak() -> str:
    binary = shutil.which("espeak-ng")
    if binary is None:
        pytest.skip("espeak-ng is not installed (apt-get install -y espeak-ng; `make install` does it)")
    return binary
