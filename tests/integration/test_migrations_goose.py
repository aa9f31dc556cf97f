"""A service repository whose history is plain SQL files run by goose (built here from the Go module
proxy, as a team's CI installs it: nothing of it vendored), written from the README's "Migrations":
the command runs once for two tenants, a new environment of the same history runs it not at all, an
added file runs alone through `driveops-env migrate`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest
from filelock import FileLock

from driveops_env import paths, toolchains
from tests.helpers import Sandbox, run

pytestmark = pytest.mark.integration

GOOSE = "github.com/pressly/goose/v3/cmd/goose"
VERSION = "v3.26.0"
# drivers the repository does not use, left out of the build (goose's own build tags)
TAGS = "no_clickhouse no_libsql no_mssql no_mysql no_sqlite3 no_vertica no_ydb"
FIRST = """\
-- +goose Up
CREATE TABLE work_orders (id serial PRIMARY KEY, tenant text NOT NULL, title text);
CREATE INDEX work_orders_tenant ON work_orders (tenant);
"""
SECOND = """\
-- +goose Up
ALTER TABLE work_orders ADD COLUMN mileage integer;
"""


@pytest.fixture(scope="session")
def goose(cache_dir: str) -> Path:
    """goose built once into the cache (about 20 s on 2 cores the first time)."""
    target = Path(cache_dir) / "tools" / f"goose-{VERSION}"
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.parent / f".{target.name}.lock")):
        if not target.exists():
            go, env = toolchains.find_go("goose", "postgres", "the tests build goose")
            bin_dir = target.parent / f"goose-{VERSION}.partial"
            built = subprocess.run(
                [str(go), "install", "-tags", TAGS, f"{GOOSE}@{VERSION}"],
                env=env | {"GOBIN": str(bin_dir), "CGO_ENABLED": "0"},
                capture_output=True,
                text=True,
                check=False,
            )
            assert built.returncode == 0, built.stderr
            os.replace(bin_dir / "goose", target)
            shutil.rmtree(bin_dir)
    return target


def _repository(repo: Path, goose: Path) -> None:
    (repo / "migrations").mkdir()
    (repo / "migrations" / "00001_orders.sql").write_text(f"-- {repo}\n{FIRST}")  # a history of its own
    seeds = repo / "seeds"
    (seeds / "postgres").mkdir(parents=True)
    shutil.copy(paths.default_seeds_dir() / "tenants.json", seeds / "tenants.json")
    (seeds / "postgres" / "01_orders.sql").write_text(
        "insert into work_orders (tenant, title) values ({{ tenant_slug }}, 'brake pads');\n"
    )
    # an empty connection string: pgx reads PGHOST, PGUSER, PGPASSWORD... (no secret in argv, no shell)
    command = json.dumps([str(goose), "-dir", "migrations", "postgres", "", "up"])
    (repo / "pyproject.toml").write_text(
        f'[tool.driveops-env]\nmigrate-postgres = {command}\nmigrate-inputs = ["migrations"]\nseeds-dir = "seeds"\n'
    )


def _dsn(box: Sandbox, tenant: str) -> str:
    printed = box.cli("env", "--tenant", tenant, "--format", "json")
    assert printed.returncode == 0, printed.stderr
    return str(json.loads(printed.stdout)["DRIVEOPS_POSTGRES_DSN"])


def _log(box: Sandbox, tenant: str) -> str:
    printed = box.cli("logs", "migrate", "--tenant", tenant)
    assert printed.returncode == 0, printed.stderr
    return printed.stdout


def test_goose_runs_once_for_two_tenants_and_only_the_added_file_later(
    sandbox: Sandbox, tmp_path: Path, goose: Path
) -> None:
    _repository(tmp_path, goose)
    sandbox.services = "postgres"
    assert sandbox.cli("up", "--tenants", "acme,beta").returncode == 0
    logs = {tenant: _log(sandbox, tenant) for tenant in ("acme", "beta")}
    ran = [t for t, text in logs.items() if "OK   00001_orders.sql" in text]
    assert len(ran) == 1, logs  # goose ran for one tenant; the other loaded what it made
    for tenant in ("acme", "beta"):
        with psycopg.connect(_dsn(sandbox, tenant)) as conn:
            assert conn.execute("select max(version_id) from goose_db_version").fetchone() == (1,)
            assert conn.execute("select tenant, title from work_orders").fetchall() == [(tenant, "brake pads")]
    assert sandbox.cli("down").returncode == 0

    again = sandbox.cli("up", "--tenants", "acme,beta")  # the same history: goose does not run
    assert again.returncode == 0, again.stderr
    assert all("OK " not in _log(sandbox, tenant) for tenant in ("acme", "beta"))

    (tmp_path / "migrations" / "00002_mileage.sql").write_text(SECOND)
    migrated = sandbox.cli("migrate")
    assert migrated.returncode == 0, migrated.stderr
    for tenant in ("acme", "beta"):
        text = _log(sandbox, tenant)
        assert "OK   00002_mileage.sql" in text and "00001_orders" not in text, text  # the pending file alone
    assert sandbox.cli("reset", "--tenant", "beta").returncode == 0  # the seed template has it too
    with psycopg.connect(_dsn(sandbox, "beta")) as conn:
        assert conn.execute("select tenant, mileage from work_orders").fetchall() == [("beta", None)]
    assert sandbox.cli("down").returncode == 0


PER_TEST = """
import pytest

@pytest.mark.parametrize("n", range(100))
def test_each_sees_the_migrated_seed(n, tenant_pg):
    assert tenant_pg.execute("select max(version_id) from goose_db_version").fetchone() == (1,)
    assert tenant_pg.execute("select count(*) from work_orders").fetchone() == (1,)
    tenant_pg.execute("insert into work_orders (tenant, title) values ('acme', 'test %d')" % n)
    tenant_pg.execute("drop index work_orders_tenant")
    tenant_pg.commit()
"""


@pytest.mark.local_only
def test_a_hundred_tests_of_two_processes_each_get_the_goose_schema(
    pytester: pytest.Pytester, box: Sandbox, goose: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _repository(pytester.path, goose)
    pytester.makepyfile(test_orders=PER_TEST)
    monkeypatch.setenv("DRIVEOPS_ENV_SERVICES", "postgres")
    box.services = "postgres"
    result = run(pytester, "-n", "2", "-p", "no:randomly")
    result.assert_outcomes(passed=100)
