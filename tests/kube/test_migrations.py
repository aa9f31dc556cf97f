"""A service repository's Alembic history against the kubernetes backend: the command runs on this
machine and reaches the tenants' databases through the node's ports, once for two tenants; the other
tenant loads what it made (pg_dump and pg_restore over the same ports)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.helpers import Sandbox
from tests.integration.test_migrations import service_repository
from tests.kube.test_backend import env_values, kbox, kube_images  # noqa: F401 - fixtures

pytestmark = [pytest.mark.kubernetes, pytest.mark.xdist_group("kubernetes")]


def test_migrations_run_once_on_a_cluster(kbox: Sandbox, tmp_path: Path) -> None:  # noqa: F811
    repo = service_repository(tmp_path)  # the sandbox's folder: where the CLI runs
    kbox.services = "postgres"
    up = kbox.cli("up", "--tenants", "acme,beta", timeout=900)
    assert up.returncode == 0, up.stderr
    assert len((repo / "runs.txt").read_text().split()) == 1  # once for both tenants
    for tenant in ("acme", "beta"):
        values = env_values(kbox, "--tenant", tenant)
        with psycopg.connect(values["DRIVEOPS_POSTGRES_DSN"]) as conn:
            assert conn.execute("select version_num from alembic_version").fetchall() == [("0001",)]
            assert conn.execute("select tenant, title from work_orders").fetchall() == [(tenant, "brake pads")]
    down = kbox.cli("down", timeout=300)
    assert down.returncode == 0, down.stderr
