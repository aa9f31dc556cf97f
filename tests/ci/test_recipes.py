"""The CI recipes under examples/ci: valid offline (actionlint; the GitHub and GitLab schemas vendored
by check-jsonschema) and proven by running their own commands here (tests/ci/recipe_runner.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from filelock import FileLock

from driveops_env import options, toolchains
from tests.ci import recipe_runner
from tests.helpers import Sandbox, make_sandbox

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
GITHUB = REPO / "examples" / "ci" / "github-actions.yml"
GITLAB = REPO / "examples" / "ci" / "gitlab-ci.yml"
ACTIONLINT = "github.com/rhysd/actionlint/cmd/actionlint@v1.7.12"


@pytest.fixture(scope="session")
def actionlint() -> Path:
    """actionlint, built once into the cache from the Go module proxy (its PyPI wrapper downloads the
    binary from a release site this machine does not reach)."""
    tools = options.resolve(environ={}, pyproject={}).cache_dir / "tools"
    tools.mkdir(parents=True, exist_ok=True)
    binary = tools / "actionlint"
    with FileLock(str(tools / ".actionlint.lock")):
        if not binary.exists():
            go, env = toolchains.find_go("FerretDB", "mongo", "")
            subprocess.run(
                [str(go), "install", ACTIONLINT],
                env=env | {"GOBIN": str(tools), "CGO_ENABLED": "0"},
                check=True,
                capture_output=True,
                timeout=900,
            )
    return binary


def test_the_recipes_are_valid(actionlint: Path) -> None:
    lint = subprocess.run([str(actionlint), "-no-color", str(GITHUB)], capture_output=True, text=True, check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    for path, schema in ((GITHUB, "vendor.github-workflows"), (GITLAB, "vendor.gitlab-ci")):
        check = subprocess.run(
            [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.returncode == 0, check.stdout + check.stderr


SERVICE_PYPROJECT = """
[project]
name = "garage-service"
version = "0.0.1"
[project.optional-dependencies]
test = ["pytest>=8"]
[tool.driveops-env]
tenants = ["acme", "beta"]
services = ["postgres", "mongo", "redis"]
"""

SERVICE_TEST = """
def test_interventions_of_the_tenant(tenant, tenant_pg):
    count = tenant_pg.execute("SELECT count(*) FROM garages WHERE tenant_id = %s", (tenant.tenant_id,)).fetchone()
    assert count[0] {op} 0
"""


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[Path, Sandbox, dict[str, str]]]:
    """A service repository written from the README, a virtualenv for it (setup-python's), and a sandbox
    whose directories the recipe's commands use."""
    repo = tmp_path / "garage-service"
    (repo / "tests").mkdir(parents=True)
    (repo / "pyproject.toml").write_text(SERVICE_PYPROJECT)
    (repo / "tests" / "test_service.py").write_text(textwrap.dedent(SERVICE_TEST.format(op=">")))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    with make_sandbox(tmp_path, services="postgres,mongo,redis") as box:
        env = box.env() | {"PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", "VIRTUAL_ENV": str(venv)}
        env.pop("DRIVEOPS_ENV_NAME")  # the recipe's commands use the default name, as a pipeline would
        yield repo, box, env


def test_the_github_recipe_runs_and_keeps_evidence_on_failure(service: tuple[Path, Sandbox, dict[str, str]]) -> None:
    repo, box, env = service
    job = recipe_runner.load(GITHUB)["jobs"]["tests"]
    summary = repo / "summary.md"
    env = env | {"GITHUB_STEP_SUMMARY": str(summary)}
    passed = recipe_runner.run_github_job(job, repo, env, {})
    assert passed.failed is None, passed.output[-4000:]
    assert "driveops-env check: all 8 passed" in summary.read_text()
    assert (repo / "smoke.xml").read_text().count("<testcase") == 8
    assert not (repo / "driveops-evidence.tar.gz").exists() and box.leftovers() == []  # down, always

    (repo / "tests" / "test_service.py").write_text(textwrap.dedent(SERVICE_TEST.format(op="<")))
    failed = recipe_runner.run_github_job(job, repo, env, {})
    assert failed.failed == "The service's tests" and "Stop the environment" in failed.ran
    with tarfile.open(repo / "driveops-evidence.tar.gz") as bundle:
        names = bundle.getnames()
        assert any(n.endswith("check.json") for n in names) and any("/logs/postgres." in n for n in names)
    assert box.leftovers() == []


def test_the_deployed_variant_checks_an_environment_it_did_not_start(
    service: tuple[Path, Sandbox, dict[str, str]], tmp_path: Path
) -> None:
    repo, _, env = service
    staging = make_sandbox(tmp_path / "staging-machine", services="postgres,mongo,redis")
    (tmp_path / "staging-machine").mkdir()
    with staging as machine:
        assert machine.cli("up", "--tenants", "acme,beta").returncode == 0
        descriptor = machine.cli("export").stdout
        job = recipe_runner.load(GITHUB)["jobs"]["smoke-deployed"]
        outcome = recipe_runner.run_github_job(
            job,
            repo,
            env | {"GITHUB_STEP_SUMMARY": str(repo / "summary.md")},
            {"DRIVEOPS_STAGING_DESCRIPTOR": descriptor},
        )
        assert outcome.failed is None, outcome.output[-4000:]
        assert (repo / "smoke.xml").read_text().count("<testcase") == 8
        assert (repo / "staging.json").stat().st_mode & 0o777 == 0o600
        assert machine.cli("status").returncode == 0  # left running: not this job's
        machine.cli("down")


def test_the_gitlab_recipe_runs(service: tuple[Path, Sandbox, dict[str, str]]) -> None:
    repo, box, env = service
    recipe = recipe_runner.load(GITLAB)
    cache = env.get("DRIVEOPS_ENV_CACHE_DIR", str(options.resolve(environ={}, pyproject={}).cache_dir))
    overrides = {"DRIVEOPS_ENV_CACHE_DIR": cache, "DRIVEOPS_ENV_DATA_DIR": str(box.data_dir)}
    outcome = recipe_runner.run_gitlab_job(recipe["service-tests"], recipe["variables"], repo, env, overrides)
    assert outcome.failed is None, outcome.output[-4000:]
    assert "| acme | postgres | ok |" in (repo / "check.md").read_text()
    assert box.leftovers() == []
