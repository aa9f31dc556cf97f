"""`migrate --rehearse` (README "Snapshots and rehearsals"): a revision that sets NOT NULL on a
column one tenant holds NULLs in is reported failed for that tenant only, with the tool's error, and
ok for the other; no tenant's database changed, no clone is left."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from tests.helpers import Sandbox
from tests.integration.test_migrations import _query, _revision, _values, service_repository

pytestmark = pytest.mark.integration


@pytest.mark.local_only  # pg_dump and pg_restore against a container's server: test_snapshots on docker
def test_a_rehearsal_finds_the_tenant_a_migration_breaks(sandbox: Sandbox, tmp_path: Path) -> None:
    service_repository(tmp_path)
    sandbox.services = "postgres"
    assert sandbox.cli("up", "--tenants", "acme,beta").returncode == 0
    nothing = sandbox.cli("migrate", "--rehearse")
    assert nothing.returncode == 0 and "nothing to rehearse" in nothing.stderr, nothing.stderr
    beta, acme = _values(sandbox, "beta"), _values(sandbox, "acme")
    with psycopg.connect(beta["DRIVEOPS_POSTGRES_DSN"], autocommit=True) as conn:
        conn.execute("insert into work_orders (tenant, title) values ('beta', NULL)")  # beta's data only
    _revision(tmp_path, "0002", "0001", '    op.alter_column("work_orders", "title", nullable=False)')

    report = sandbox.cli("migrate", "--rehearse", "--format", "markdown")
    assert report.returncode == 1, report.stderr
    assert "**driveops-env migrate --rehearse: 1 of 2 failed**" in report.stdout, report.stdout
    failed, ok = (line for line in report.stdout.splitlines() if line.startswith(("| beta", "| acme")))
    assert failed.startswith("| beta | postgres | **FAILED**") and "exited with" in failed, failed
    assert "NotNullViolation" in failed or "null value" in failed, failed  # the tool's own last lines
    assert ok.startswith("| acme | postgres | ok |"), ok

    for values in (acme, beta):  # untouched: still at 0001, beta's NULL row still there
        assert _query(values, "select version_num from alembic_version") == [("0001",)]
    assert _query(beta, "select count(*) from work_orders where title is null") == [(1,)]
    assert _query(beta, "select datname from pg_database where datname like '%rehearsal%'") == []

    only_acme = sandbox.cli("migrate", "--rehearse", "--tenant", "acme", "--format", "json")
    assert only_acme.returncode == 0, only_acme.stderr
    (outcome,) = json.loads(only_acme.stdout)
    assert outcome["tenant"] == "acme" and outcome["ok"] is True and outcome["seconds"] > 0
    logs = sandbox.cli("logs", "migrate", "--tenant", "beta")
    assert "rehearsal on" in logs.stdout and "0001 -> 0002" in logs.stdout, logs.stdout
    unknown = sandbox.cli("migrate", "--rehearse", "--tenant", "gamma")
    assert unknown.returncode == 2 and "no tenant gamma" in unknown.stderr, unknown.stderr
    assert sandbox.cli("down").returncode == 0
