"""The plugin's tests run pytest sessions the way a service repository does (pytester, subprocesses)."""

from __future__ import annotations

import pytest

from driveops_env import options
from tests.conftest import Sandbox


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


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=600)
