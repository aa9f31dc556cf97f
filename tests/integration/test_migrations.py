"""A service repository's migrations, written from the README's "Migrations" section: Alembic (PyPI)
upgrading each tenant's database before the seed's data, its output in `logs migrate`, an unchanged
history running nothing again, a changed one named, and what a broken migration says."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path
from typing import Any

import psycopg
import pytest

from driveops_env import paths
from tests.helpers import Sandbox, processes_mentioning, run

pytestmark = pytest.mark.integration

ENV_PY = """\
import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine

fileConfig(context.config.config_file_name)  # alembic.ini's loggers: what it ran, in `logs migrate`

with open("runs.txt", "a") as runs:  # the test counts the runs
    runs.write(os.environ["DRIVEOPS_TENANT"] + "\\n")
assert os.environ["DATABASE_URL"] == os.environ["DRIVEOPS_POSTGRES_DSN"]  # not the caller's
url = os.environ["DRIVEOPS_POSTGRES_DSN"].replace("postgresql://", "postgresql+psycopg://", 1)
with create_engine(url).connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
"""

ALEMBIC_INI = """\
[alembic]
script_location = migrations

[loggers]
keys = root,alembic

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARNING
handlers = console

[logger_alembic]
level = INFO
handlers =
qualname = alembic

[handler_console]
class = StreamHandler
args = (sys.stderr,)
formatter = generic

[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
"""

REVISION = """\
from alembic import op
import sqlalchemy as sa

revision = {revision!r}
down_revision = {down!r}


def upgrade():
{body}
"""

FIRST = """\
    op.create_table(
        "work_orders",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("title", sa.Text),
    )"""


def _revision(repo: Path, revision: str, down: str | None, body: str) -> None:
    text = REVISION.format(revision=revision, down=down, body=body)
    (repo / "migrations" / "versions" / f"{revision}.py").write_text(text)


def service_repository(repo: Path) -> Path:
    """Alembic's layout, the README's pyproject keys, and a seed that fills the migrated table."""
    (repo / "migrations" / "versions").mkdir(parents=True)
    # a history of its own: the migrated state of the same history is shared through the cache
    (repo / "migrations" / "env.py").write_text(f"# {repo}\n{ENV_PY}")
    (repo / "alembic.ini").write_text(ALEMBIC_INI)
    _revision(repo, "0001", None, FIRST)
    seeds = repo / "seeds"
    (seeds / "postgres").mkdir(parents=True)
    shutil.copy(paths.default_seeds_dir() / "tenants.json", seeds / "tenants.json")
    (seeds / "postgres" / "01_orders.sql").write_text(
        "insert into work_orders (tenant, title) values ({{ tenant_slug }}, 'brake pads');\n"
    )
    command = json.dumps([sys.executable, "-m", "alembic", "upgrade", "head"])
    (repo / "pyproject.toml").write_text(
        "[tool.driveops-env]\n"
        f"migrate-postgres = {command}\n"
        'migrate-inputs = ["migrations", "alembic.ini"]\n'
        'seeds-dir = "seeds"\n'
    )
    return repo


def _values(box: Sandbox, tenant: str) -> dict[str, Any]:
    printed = box.cli("env", "--tenant", tenant, "--format", "json")
    assert printed.returncode == 0, printed.stderr
    return dict(json.loads(printed.stdout))


def _query(values: dict[str, Any], sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(values["DRIVEOPS_POSTGRES_DSN"]) as conn:
        return list(conn.execute(sql).fetchall())


def _tenants(box: Sandbox) -> list[str]:
    printed = box.cli("status", "--json")
    assert printed.returncode == 0, printed.stderr
    return list(json.loads(printed.stdout)["tenants"])


def _runs(repo: Path) -> list[str]:
    return sorted((repo / "runs.txt").read_text().split())


def test_alembic_runs_once_per_history_and_every_tenant_gets_it(sandbox: Sandbox, tmp_path: Path) -> None:
    repo = service_repository(tmp_path)  # the CLI runs in the sandbox's folder: the repository's
    sandbox.services = "postgres"
    sandbox.extra_env["DATABASE_URL"] = "postgresql://app@198.18.0.1/app"  # the developer's own, not passed on
    up = sandbox.cli("up", "--tenants", "acme,beta")
    assert up.returncode == 0, up.stderr
    (ran,) = _runs(repo)  # once for the two tenants; the other loaded its state
    for tenant in ("acme", "beta"):
        values = _values(sandbox, tenant)
        assert _query(values, "select version_num from alembic_version") == [("0001",)]
        assert _query(values, "select tenant, title from work_orders") == [(tenant, "brake pads")]  # seed after
        owner = _query(values, "select tableowner from pg_tables where tablename = 'work_orders'")
        assert owner == [(values["PGUSER"],)]  # as the tenant's role, loaded or migrated
    other = "beta" if ran == "acme" else "acme"
    logs = sandbox.cli("logs", "migrate", "--tenant", ran)
    assert logs.returncode == 0 and "Running upgrade  -> 0001" in logs.stdout, logs.stdout + logs.stderr
    assert "the command ran once for key" in logs.stdout and "from an empty store" in logs.stdout
    loaded = sandbox.cli("logs", "migrate", "--tenant", other)
    assert "loaded from" in loaded.stdout and "Running upgrade" not in loaded.stdout, loaded.stdout

    cached = repo / "migrations" / "versions" / "__pycache__"  # Python's byte code, when it may write it
    cached.mkdir(exist_ok=True)
    (cached / "0001.cpython-311.pyc").write_bytes(b"byte code")
    unchanged = sandbox.cli("up", "--tenants", "acme,beta")  # the history did not change: attached, nothing ran
    assert unchanged.returncode == 0, unchanged.stderr
    acme = _values(sandbox, "acme")
    with psycopg.connect(acme["DRIVEOPS_POSTGRES_DSN"], autocommit=True) as conn:
        conn.execute("insert into work_orders (tenant, title) values ('acme', 'written by a test')")
    assert sandbox.cli("reset", "--tenant", "acme").returncode == 0
    assert _query(acme, "select title from work_orders") == [("brake pads",)]  # the migrated and seeded state
    assert len(_runs(repo)) == 1

    _revision(repo, "0002", "0001", '    op.add_column("work_orders", sa.Column("mileage", sa.Integer))')
    changed = sandbox.cli("up", "--tenants", "acme,beta")
    assert changed.returncode == 2 and "migrate-postgres" in changed.stderr, changed.stderr
    assert "driveops-env migrate --name" in changed.stderr  # the way without a recreate
    again = sandbox.cli("up", "--tenants", "acme,beta", "--recreate")
    assert again.returncode == 0, again.stderr
    runs = (tmp_path / "runs.txt").read_text().split()
    assert len(runs) == 2, runs  # the grown history ran once more, for one tenant
    pending = sandbox.cli("logs", "migrate", "--tenant", runs[1]).stdout
    assert "Running upgrade 0001 -> 0002" in pending and "Running upgrade  -> 0001" not in pending, pending
    assert "pending migrations only" in pending, pending
    beta = _values(sandbox, "beta")
    assert _query(beta, "select version_num from alembic_version") == [("0002",)]
    assert _query(beta, "select tenant, mileage from work_orders") == [("beta", None)]
    added = sandbox.cli("tenant", "add", "gamma")  # the command and its folder as the environment recorded them
    assert added.returncode == 0, added.stderr
    assert _query(_values(sandbox, "gamma"), "select version_num from alembic_version") == [("0002",)]
    _revision(repo, "0003", "0002", '    op.add_column("work_orders", sa.Column("plate", sa.Text))')
    newer = sandbox.cli("tenant", "add", "delta")  # it would be at 0003, the others at 0002
    assert newer.returncode == 2 and "migrate-postgres changed" in newer.stderr, newer.stderr
    assert "delta" not in _tenants(sandbox)
    (repo / "migrations" / "versions" / "0003.py").unlink()
    bundle = tmp_path / "evidence.tar.gz"
    assert sandbox.cli("logs", "--bundle", str(bundle)).returncode == 0
    with tarfile.open(bundle) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(f"migrate.postgres.{runs[1]}.log"))
        assert b"0001 -> 0002" in tar.extractfile(member).read()  # type: ignore[union-attr]
    assert sandbox.cli("down").returncode == 0

    # a new environment of a known history, shared servers this time: no run at all
    cold = sandbox.cli("up", "--tenants", "acme,beta", "--isolation", "shared")
    assert cold.returncode == 0, cold.stderr
    assert len(_runs(repo)) == 2
    assert _query(_values(sandbox, "acme"), "select version_num from alembic_version") == [("0002",)]
    assert sandbox.cli("down").returncode == 0
    per_tenant = sandbox.cli("up", "--tenants", "acme,beta", "--migrate-per-tenant", "true")
    assert per_tenant.returncode == 0, per_tenant.stderr
    assert len(_runs(repo)) == 4  # migrations that read the tenant's values opt out: one run each
    assert sandbox.cli("down").returncode == 0


PER_TEST = """
import pytest

@pytest.mark.parametrize("n", range(100))
def test_each_sees_the_migrated_seed(n, tenant_pg):
    assert tenant_pg.execute("select version_num from alembic_version").fetchall() == [("0001",)]
    assert tenant_pg.execute("select count(*) from work_orders").fetchone() == (1,)
    tenant_pg.execute("insert into work_orders (tenant, title) values ('acme', 'test %d')" % n)
    tenant_pg.commit()
"""


@pytest.mark.local_only
def test_each_test_of_two_processes_gets_the_migrated_seed(
    pytester: pytest.Pytester, box: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plugin's restores clone the migrated and seeded database: the migration runs once per
    tenant for the session, never per test or per process."""
    repo = service_repository(pytester.path)
    pytester.makepyfile(test_orders=PER_TEST)
    monkeypatch.setenv("DRIVEOPS_ENV_SERVICES", "postgres")
    box.services = "postgres"
    result = run(pytester, "-n", "2", "-p", "no:randomly")
    result.assert_outcomes(passed=100)
    assert _runs(repo) == ["acme"]


@pytest.mark.local_only
def test_what_a_broken_migration_says_and_leaves(sandbox: Sandbox, tmp_path: Path) -> None:
    repo = service_repository(tmp_path)
    sandbox.services = "postgres"
    (repo / "pyproject.toml").write_text(
        (repo / "pyproject.toml").read_text().replace('"alembic.ini"', '"alembic.cfg"')
    )
    missing = sandbox.cli("up", "--tenants", "acme")
    assert missing.returncode == 2 and "alembic.cfg does not exist" in missing.stderr, missing.stderr
    assert sandbox.leftovers() == [] and not (repo / "runs.txt").exists()  # nothing started

    no_inputs = ("--migrate-inputs", "")
    nowhere = sandbox.cli("up", "--tenants", "acme", "--migrate-postgres", "no-such-migrator up", *no_inputs)
    assert nowhere.returncode == 1, nowhere.stderr
    assert "'no-such-migrator up' cannot run" in nowhere.stderr and "tenant acme" in nowhere.stderr
    assert sandbox.leftovers() == []

    halfway = textwrap.indent(
        "import os, subprocess\n"
        'subprocess.Popen(["sleep", "1200"])  # left running\n'
        'op.create_table("parts", sa.Column("id", sa.Integer))\n'
        'raise RuntimeError("bad data for " + os.environ["PGPASSWORD"])  # a tool that tells its secret\n',
        "    ",
    )
    _revision(repo, "0002", "0001", halfway)
    failed = sandbox.cli("up", "--tenants", "acme", *no_inputs)
    assert failed.returncode == 1, failed.stderr
    assert "exited with 1" in failed.stderr and "tenant acme" in failed.stderr, failed.stderr
    assert "RuntimeError: bad data for ****" in failed.stderr  # its last lines, the password masked
    assert sandbox.leftovers() == []
    assert not [p for p in processes_mentioning("sleep 1200")], "what the migration left running"

    _revision(repo, "0002", "0001", "    import time\n    time.sleep(600)")
    endless = sandbox.cli("up", "--tenants", "acme", *no_inputs, "--startup-timeout", "8")
    assert endless.returncode == 1 and "did not end within 8 s" in endless.stderr, endless.stderr
    assert sandbox.leftovers() == []
    assert not processes_mentioning(str(repo))  # run in the repository: its commands (another test's run elsewhere)


@pytest.mark.local_only
def test_migrate_applies_a_new_revision_to_a_running_environment(sandbox: Sandbox, tmp_path: Path) -> None:
    """`driveops-env migrate`: every tenant's database migrated in place (what a developer wrote in it
    kept), the seed template too (a reset gets the new schema), then `up` attaches."""
    repo = service_repository(tmp_path)
    sandbox.services = "postgres"
    assert sandbox.cli("up", "--tenants", "acme,beta").returncode == 0
    nothing = sandbox.cli("migrate")
    assert nothing.returncode == 0 and "nothing to apply" in nothing.stderr + nothing.stdout, nothing.stderr
    acme = _values(sandbox, "acme")
    with psycopg.connect(acme["DRIVEOPS_POSTGRES_DSN"], autocommit=True) as conn:
        conn.execute("insert into work_orders (tenant, title) values ('acme', 'written by hand')")

    _revision(repo, "0002", "0001", '    op.add_column("work_orders", sa.Column("mileage", sa.Integer))')
    migrated = sandbox.cli("migrate")
    assert migrated.returncode == 0, migrated.stderr
    said = migrated.stdout + migrated.stderr
    assert "acme" in said and "beta" in said and "migrated 2 store(s)" in said, said
    assert len(_runs(repo)) == 1 + 3  # the first up's run; each tenant's database; the new history once, for the seeds
    titles = _query(acme, "select title, mileage from work_orders order by id")
    assert titles == [("brake pads", None), ("written by hand", None)]  # migrated in place, data kept
    assert sandbox.cli("reset", "--tenant", "beta").returncode == 0
    beta = _values(sandbox, "beta")
    assert _query(beta, "select version_num from alembic_version") == [("0002",)]  # the seed migrated too
    assert _query(beta, "select title, mileage from work_orders") == [("brake pads", None)]
    log = sandbox.cli("logs", "migrate", "--tenant", "beta").stdout
    assert "Running upgrade 0001 -> 0002" in log and "pending migrations applied" in log, log

    attached = sandbox.cli("up", "--tenants", "acme,beta")  # the environment says the new history now
    assert attached.returncode == 0, attached.stderr
    assert len(_runs(repo)) == 4

    _revision(repo, "0002", "0001", '    op.add_column("work_orders", sa.Column("odometer", sa.Integer))')
    edited = sandbox.cli("migrate")  # a revision edited, not added: no tool applies that to a running store
    assert edited.returncode == 2 and "not only grew" in edited.stderr and "--recreate" in edited.stderr
    assert len(_runs(repo)) == 4
    assert sandbox.cli("down").returncode == 0
    assert sandbox.leftovers() == []


REUSED = """
def test_sees_the_new_revision(tenant_pg):
    assert tenant_pg.execute("select version_num from alembic_version").fetchall() == [("0002",)]
    assert tenant_pg.execute("select title, mileage from work_orders").fetchall() == [("brake pads", None)]
"""


@pytest.mark.local_only
def test_a_reused_environment_gets_the_pending_migrations(
    pytester: pytest.Pytester, box: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`pytest --driveops-reuse` on an environment `up` started before a revision was added: the
    session applies it (and says so) instead of refusing the changed spec."""
    repo = service_repository(pytester.path)
    monkeypatch.setenv("DRIVEOPS_ENV_SERVICES", "postgres")
    box.services = "postgres"
    cli = [sys.executable, "-m", "driveops_env.cli"]
    up = subprocess.run([*cli, "up", "--tenants", "acme"], cwd=repo, env=box.env(), capture_output=True, text=True)
    assert up.returncode == 0, up.stderr
    _revision(repo, "0002", "0001", '    op.add_column("work_orders", sa.Column("mileage", sa.Integer))')
    pytester.makepyfile(test_reused=REUSED)
    result = run(pytester, "--driveops-reuse", "-p", "no:randomly")
    result.assert_outcomes(passed=1)
    result.stdout.re_match_lines([r".*applying the pending migrations \(migrate-postgres\).*"])
    assert len(_runs(repo)) == 1 + 2  # the up's run; the tenant's database; the new history once, for its seed
    again = run(pytester, "--driveops-reuse", "-p", "no:randomly")  # migrated once: nothing more
    again.assert_outcomes(passed=1)
    assert len(_runs(repo)) == 3
    down = subprocess.run([*cli, "down"], cwd=repo, env=box.env(), capture_output=True, text=True)
    assert down.returncode == 0, down.stderr
