"""The fixtures the tests share; the helpers they use live in tests/helpers.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from driveops_env import options
from tests.helpers import Sandbox, make_sandbox

pytest_plugins = ["pytester"]


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    with make_sandbox(tmp_path) as box:
        yield box


@pytest.fixture
def kc_sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    """A sandbox whose environments run Keycloak too."""
    with make_sandbox(tmp_path, services="keycloak,postgres,redis") as box:
        yield box


@pytest.fixture(scope="session")
def cache_dir() -> str:
    """Resolved before pytester points HOME at a temporary directory (session fixtures come first)."""
    return str(options.resolve(pyproject={}).cache_dir)


@pytest.fixture
def box(cache_dir: str, sandbox: Sandbox, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """A sandbox whose environment variables the pytester runs inherit, with the real cache (or the
    runs would rebuild FerretDB and the template cluster in pytester's temporary HOME)."""
    monkeypatch.setenv("DRIVEOPS_ENV_CACHE_DIR", cache_dir)
    for key, value in sandbox.env().items():
        if key.startswith("DRIVEOPS_ENV_"):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("DRIVEOPS_ENV_SERVICES", "postgres,mongo,redis")
    sandbox.services = "postgres,mongo,redis"
    return sandbox
