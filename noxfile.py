"""Sessions: ``lint`` (ruff), ``typecheck`` (mypy --strict), ``tests`` (pytest), ``bench``.

Virtualenvs live in the cache directory, outside the repository, and are reused between runs.
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

_cache = Path(
    os.environ.get("DRIVEOPS_ENV_CACHE_DIR")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "driveops-env"
)
nox.options.envdir = str(_cache / "nox")
nox.options.reuse_venv = "yes"
nox.options.sessions = ["lint", "typecheck", "tests", "tests_docker"]
nox.options.error_on_missing_interpreters = True

LINT_DEPS = ["ruff==0.17.6"]
EXAMPLE_SERVICE = "tests/example_service"  # a service of a team's own, plugged in by its entry point
TYPE_DEPS = ["mypy==2.4.1", "types-docker", "types-requests"]


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install(*LINT_DEPS)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package, tests, benchmarks and this file."""
    session.install("-e", ".[test]", "-e", EXAMPLE_SERVICE, *TYPE_DEPS, "nox")
    session.run("mypy")
    session.run("mypy", "--strict", *sorted(str(p) for p in Path(EXAMPLE_SERVICE).glob("*/*.py")))


@nox.session
def tests(session: nox.Session) -> None:
    """The whole suite against real services on the local backend; extra arguments go to pytest."""
    session.install("-e", ".[test]", "-e", EXAMPLE_SERVICE)
    args = session.posargs or ["-m", "not docker and not kubernetes", "-n", "2", "--dist", "loadgroup"]
    session.run("pytest", *args, env={"DRIVEOPS_TEST_BACKEND": "local"})


@nox.session
def tests_docker(session: nox.Session) -> None:
    """The integration and plugin tests again on the docker backend (needs an engine and the images:
    scripts/provision --docker; the DRIVEOPS_ENV_IMAGE_* overrides come from the environment)."""
    session.install("-e", ".[test]", "-e", EXAMPLE_SERVICE)
    args = session.posargs or [
        "-m",
        "integration and not local_only and not backend_independent",
        "-n",
        "2",
        "--dist",
        "loadgroup",
        "tests/integration",
        "tests/plugin",
        "tests/reliability",
        "tests/remote",
    ]
    session.run("pytest", *args, env={"DRIVEOPS_TEST_BACKEND": "docker"})


@nox.session
def tests_kubernetes(session: nox.Session) -> None:
    """The local Kubernetes cluster's own tests and the kubernetes backend's, on a cluster the session
    starts and removes (needs root, scripts/provision --docker --kubernetes, and the image overrides)."""
    session.install("-e", ".[test]")
    args = session.posargs or ["-m", "kubernetes", "-p", "no:randomly", "tests/kube"]
    session.run("pytest", *args, env={"DRIVEOPS_TEST_KUBERNETES": "1"})


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmark (bench/run.py): a table, a plot and bench/results/latest.json.  Uses the stand-in
    images that scripts/provision --docker built, when there are; extra arguments go to bench.run."""
    session.install("-e", ".[test]", "matplotlib")
    env = {}
    images = _cache / "docker" / "images.env"
    if images.exists():
        env = dict(line.split("=", 1) for line in images.read_text().split() if "=" in line)
    session.run("python", "-m", "bench.run", *session.posargs, env=env)
