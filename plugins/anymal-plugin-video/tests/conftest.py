"""Shared fixtures: the converted encoder weights live in a per-session ANYMAL_HOME unless the caller set one,
so the tests never write into the user's cache and a second test reuses the first conversion."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _anymal_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    if not os.environ.get("ANYMAL_HOME"):
        os.environ["ANYMAL_HOME"] = str(Path(tmp_path_factory.mktemp("anymal-home")))
