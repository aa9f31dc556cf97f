"""A team's migrations, measured (issue 32): a generated Alembic history of 100 revisions (tables,
indexes, data migrations) on ten tenants, local backend, every service.

- ``migrate.cold_over_plain``: a cold ``up`` whose history was never run (the command runs once, nine
  tenants load its state) over a cold ``up`` without migrations;
- ``migrate.cached_over_plain``: the same history again after ``down`` (every tenant loads the state);
- ``migrate.restore_p50_ms``: a test's restore of PostgreSQL with the 100 migrated tables;
- ``migrate.pending_over_single``: one added revision applied by ``migrate`` to the ten tenants (and
  their seeds) over the same revision's own run on one database.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from driveops_env import Environment

REVISIONS = 100
ENV_PY = """\
# {token}
import os
from alembic import context
from sqlalchemy import create_engine

url = os.environ["DRIVEOPS_POSTGRES_DSN"].replace("postgresql://", "postgresql+psycopg://", 1)
with create_engine(url).connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
"""
REVISION = """\
from alembic import op
import sqlalchemy as sa

revision = "{n:04d}"
down_revision = {down}


def upgrade():
    op.create_table(
        "m{n:04d}",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("amount", sa.Numeric(12, 2)),
        sa.Column("created", sa.DateTime, server_default=sa.func.now()),
    )
    op.create_index("m{n:04d}_name", "m{n:04d}", ["name"])
{data}"""
DATA = "    op.execute(\"insert into m{n:04d} (name, amount) select 'row ' || g, g from generate_series(1, 50) g\")\n"
ADDED = """\
from alembic import op
import sqlalchemy as sa

revision = "added"
down_revision = "{last:04d}"


def upgrade():
    op.add_column("m0001", sa.Column("note", sa.Text))
    op.execute("update m0001 set note = 'migrated'")
"""


def history(root: Path) -> Path:
    """A service repository with ``REVISIONS`` revisions (every tenth a data migration), a history
    of its own (a token in env.py: never in the cache before)."""
    versions = root / "migrations" / "versions"
    versions.mkdir(parents=True)
    (root / "migrations" / "env.py").write_text(ENV_PY.format(token=uuid.uuid4().hex))
    (root / "alembic.ini").write_text("[alembic]\nscript_location = migrations\n")
    for n in range(1, REVISIONS + 1):
        down = "None" if n == 1 else f'"{n - 1:04d}"'
        data = DATA.format(n=n) if n % 10 == 0 else ""
        (versions / f"{n:04d}.py").write_text(REVISION.format(n=n, down=down, data=data))
    return root


def options_of(repo: Path) -> dict[str, str]:
    command = f"{sys.executable} -m alembic upgrade head"
    inputs = f"{repo / 'migrations'},{repo / 'alembic.ini'}"
    return {"migrate_postgres": command, "migrate_inputs": inputs, "migrate_dir": str(repo)}


def single_run(repo: Path, env: Environment) -> float:
    """The added revision's own run: the command on one database (acme's), alone."""
    values = env.tenant("acme").env_vars()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DRIVEOPS_", "PG"))}
    started = time.monotonic()
    argv = [sys.executable, "-m", "alembic", "upgrade", "head"]
    subprocess.run(argv, cwd=repo, env=clean | values, check=True, capture_output=True)
    return time.monotonic() - started


def measure(bench: Any, rows: list[tuple[str, str]], rounds: int) -> dict[str, float]:
    """The four measurements (``bench``: bench.run's ``warm``, ``cold_up`` and ``reset_times``); a
    table row each."""
    repo = history(Path(tempfile.mkdtemp(prefix="bench-migrations-")))
    cold_up, reset_times = bench.cold_up, bench.reset_times
    bench.warm("local", 10)  # the ten tenants' realm snapshot, as every cold up of the bench has it
    try:
        plain, env = cold_up("local", 10)
        env.down()
        cold, env = cold_up("local", 10, **options_of(repo))
        env.down()
        cached, env = cold_up("local", 10, **options_of(repo))
        try:
            restores, _ = reset_times(env, rounds, ("postgres",))
            (repo / "migrations" / "versions" / "added.py").write_text(ADDED.format(last=REVISIONS))
            single = single_run(repo, env)  # acme's database alone (migrate then finds it done)
            started = time.monotonic()
            env.migrate()
            pending = time.monotonic() - started
        finally:
            env.down()
    finally:
        shutil.rmtree(repo, ignore_errors=True)
    p50 = statistics.median(restores) * 1000
    ups = f"{cold:.2f} / {cached:.2f} / {plain:.2f} s"
    rows.append((f"migrate: cold up, 10 tenants, {REVISIONS} revisions never run / cached / no migrations", ups))
    rows.append(("migrate: per-test restore of PostgreSQL with the migrated tables p50", f"{p50:.1f} ms"))
    rows.append(
        (
            "migrate: one added revision, migrate on 10 tenants / its run on one database",
            f"{pending:.2f} / {single:.2f} s",
        )
    )
    return {"plain": plain, "cold": cold, "cached": cached, "restore_ms": p50, "pending": pending, "single": single}
