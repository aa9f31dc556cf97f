"""The conventions users expect of a CLI and a pytest plugin, and the evidence a pipeline keeps."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from driveops_env import Environment, __version__
from tests.helpers import Sandbox, run

pytestmark = pytest.mark.integration


@pytest.mark.backend_independent
def test_version_module_completion_and_plain_output(sandbox: Sandbox) -> None:
    version = subprocess.run(
        [sys.executable, "-m", "driveops_env", "--version"], capture_output=True, text=True, check=False
    )
    assert version.returncode == 0 and version.stdout.strip() == f"driveops-env {__version__}"
    for shell in ("bash", "zsh"):
        script = sandbox.cli("completion", shell).stdout
        assert "driveops-env" in script and "tenant" in script and "--show-secrets" in script
    bash = subprocess.run(
        ["bash", "-c", sandbox.cli("completion", "bash").stdout + "\ncomplete -p driveops-env"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bash.returncode == 0 and "_driveops_env" in bash.stdout
    up = sandbox.cli("up", "--tenants", "acme", "--json")
    data = json.loads(up.stdout)
    assert data["tenants"]["acme"]["postgres"]["password"] == "****" and data["attached"] is False
    assert "\x1b[" not in up.stdout + up.stderr  # not a terminal: plain text, no escape codes
    status = sandbox.cli("status")
    assert status.returncode == 0 and "\x1b[" not in status.stdout
    assert sandbox.cli("down").returncode == 0


def test_a_bundle_holds_the_evidence_and_no_secret(kc_sandbox: Sandbox, tmp_path: Path) -> None:
    assert kc_sandbox.cli("up", "--tenants", "acme,beta").returncode == 0
    bundle = tmp_path / "evidence.tar.gz"
    made = kc_sandbox.cli("logs", "--bundle", str(bundle))
    assert made.returncode == 0, made.stderr
    assert bundle.stat().st_mode & 0o777 == 0o600
    env = Environment.attach(kc_sandbox.name, settings=kc_sandbox.settings())
    from driveops_env.bundle import secrets_of

    secrets = secrets_of(env.state, env.services())
    assert len(secrets) >= 8  # admin passwords, tenants' passwords, client secrets, users'
    with tarfile.open(bundle) as archive:
        names = archive.getnames()
        texts = {n: archive.extractfile(n).read().decode() for n in names if archive.extractfile(n)}  # type: ignore[union-attr]
    assert {Path(n).name for n in names} >= {
        "status.json",
        "check.json",
        "check.md",
        "keycloak.log",
        "postgres.acme.log",
    }
    for name, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"{name} holds a secret"
    markdown = kc_sandbox.cli("check", "--format", "markdown").stdout
    assert markdown.startswith("**driveops-env check: all 8 passed**") and "| acme | keycloak | ok |" in markdown
    assert kc_sandbox.cli("down").returncode == 0


@pytest.mark.backend_independent
def test_failures_come_first_in_the_markdown_summary(sandbox: Sandbox) -> None:
    assert sandbox.cli("up", "--tenants", "acme,beta").returncode == 0
    sandbox.kill_server("redis.beta")
    markdown = sandbox.cli("check", "--format", "markdown")
    assert markdown.returncode == 1
    rows = [line for line in markdown.stdout.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert rows[0].startswith("| beta | redis | **FAIL** |") and "status" in rows[0]  # with what to do
    sandbox.cli("down")


@pytest.mark.backend_independent
def test_smoke_junit_groups_by_tenant_and_the_header_names_the_environment(
    pytester: pytest.Pytester, box: Sandbox, tmp_path: Path
) -> None:
    assert box.cli("up", "--tenants", "acme,beta").returncode == 0
    report = tmp_path / "smoke.xml"
    result = run(pytester, "--driveops-smoke", f"--junitxml={report}")
    result.assert_outcomes(passed=8)
    cases = report.read_text()
    assert 'classname="driveops-env.beta"' in cases and 'name="smoke[beta-redis]"' in cases
    header = run(pytester, "--co")
    header.stdout.fnmatch_lines([f"driveops-env: environment {box.name}, backend *"])
    off = run(pytester, "-p", "no:driveops_env", "--co")
    assert "driveops-env:" not in off.stdout.str()
    assert box.cli("down").returncode == 0


ASYNC_TESTS = """
import pytest

pytestmark = pytest.mark.anyio

@pytest.fixture
def anyio_backend():
    return "asyncio"

async def test_a_writes(tenant_pg_async, tenant_redis_async, tenant_mongo_async):
    await tenant_pg_async.execute("TRUNCATE customers CASCADE")
    await tenant_pg_async.commit()
    await tenant_redis_async.set("async_probe", "1")
    await tenant_mongo_async.scratch.insert_one({"x": 1})

async def test_b_sees_the_seed(tenant_pg_async, tenant_redis_async, tenant_mongo_async):
    cursor = await tenant_pg_async.execute("SELECT count(*) FROM customers")
    assert await cursor.fetchone() == (3,)
    assert await tenant_redis_async.get("async_probe") is None
    assert "scratch" not in await tenant_mongo_async.list_collection_names()
"""


def test_async_fixtures_have_the_same_isolation(pytester: pytest.Pytester, box: Sandbox) -> None:
    pytester.makepyfile(test_async=ASYNC_TESTS)
    result = run(pytester)
    result.assert_outcomes(passed=2)
    assert box.leftovers() == []


def test_keycloak_extensions_and_themes_are_built_in_and_cached_by_content(tmp_path: Path) -> None:
    from tests.helpers import make_sandbox

    providers = tmp_path / "providers"
    theme = providers / "themes" / "driveops" / "login"
    theme.mkdir(parents=True)
    (theme / "theme.properties").write_text("parent=keycloak\n")
    (tmp_path / "box").mkdir()
    with make_sandbox(tmp_path / "box", services="keycloak") as box:
        settings = box.settings(tenants="acme", keycloak_providers_dir=str(providers))
        with Environment.up(settings=settings) as env:
            admin = env.tenant("acme").keycloak.admin()
            login_themes = {t["name"] for t in admin.get_server_info()["themes"]["login"]}
            assert "driveops" in login_themes
        from driveops_env.services.keycloak.dist import providers_digest

        first = providers_digest(providers)
        (theme / "messages").mkdir()
        (theme / "messages" / "messages_en.properties").write_text("loginTitle=DriveOps\n")
        assert providers_digest(providers) != first  # a changed theme is a new build
        assert box.leftovers() == []
