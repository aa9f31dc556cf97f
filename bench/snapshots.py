"""A tenant's data as a file, and migrations rehearsed on it (issue 33), local backend:

- ``snapshot.save_over_pg_dump`` / ``snapshot.load_over_pg_restore``: ``snapshot save`` and ``snapshot
  load`` of a tenant with the large seeds (about 100,000 rows, 20,000 documents, 10,000 keys) over a
  plain ``pg_dump -Fc`` and ``pg_restore`` of the same tenant's PostgreSQL database alone;
- ``rehearse.parallel_over_serial``: ``migrate --rehearse`` of one added revision on 10 tenants at
  once over the sum of the same rehearsal run for each tenant alone, one after another.
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

from bench import large_seeds, migrations
from driveops_env import Environment
from driveops_env.services.postgres import admin, dump

STORES = "postgres,mongo,redis"


def _timed(action: Any) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def _plain(env: Environment, folder: Path) -> tuple[float, float]:
    """A plain pg_dump -Fc of acme's database, and its pg_restore into a new database."""
    values = env.tenant("acme").env_vars()
    bin_dir = dump.tools(None, dump.server_major(values["DRIVEOPS_POSTGRES_DSN"]))
    assert bin_dir is not None
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DRIVEOPS_", "PG"))} | values
    target = folder / "plain.pgdump"
    target.unlink(missing_ok=True)
    saved = _timed(lambda: subprocess.run([str(bin_dir / "pg_dump"), "-Fc", "-f", str(target)], env=clean, check=True))
    server = env.state.services[env.tenant("acme").record.stores["postgres"]["service"]]
    info = admin.admin_conninfo(server)
    copy = f"{values['PGDATABASE']}_plain"
    admin.create_database(info, name=copy, owner=values["PGUSER"])
    argv = [str(bin_dir / "pg_restore"), "--no-owner", "--no-privileges", "-d", copy, str(target)]
    try:
        loaded = _timed(lambda: subprocess.run(argv, env=clean, check=True))
    finally:
        admin.drop_database(info, copy)
    return saved, loaded


def snapshot_times(bench: Any, rows: list[tuple[str, str]], rounds: int) -> dict[str, float]:
    """Median save, load, pg_dump and pg_restore times over ``rounds`` of each."""
    seeds = large_seeds.write(Path(tempfile.mkdtemp(prefix="bench-snapshot-")) / "seeds")
    folder = seeds.parent
    name = f"bench-snapshot-{uuid.uuid4().hex[:6]}"
    settings = bench.settings_for("local", "acme", name, seeds_dir=str(seeds), services=STORES)
    env = Environment.up(settings=settings)
    found: dict[str, list[float]] = {"save": [], "load": [], "pg_dump": [], "pg_restore": []}
    try:
        file = folder / "acme.snap"
        for _ in range(rounds):
            file.unlink(missing_ok=True)
            found["save"].append(_timed(lambda: env.snapshot_save("acme", file)))
            found["load"].append(_timed(lambda: env.snapshot_load(file)))
            dumped, restored = _plain(env, folder)
            found["pg_dump"].append(dumped)
            found["pg_restore"].append(restored)
        size = (folder / "acme.snap").stat().st_size / 1e6
    finally:
        env.down()
        shutil.rmtree(folder, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in found.items()}
    rows.append(
        (
            "snapshot: save / load of a large tenant (three stores), p50",
            f"{med['save']:.2f} / {med['load']:.2f} s ({size:.1f} MB)",
        )
    )
    rows.append(
        (
            "snapshot: plain pg_dump -Fc / pg_restore of its PostgreSQL, p50",
            f"{med['pg_dump']:.2f} / {med['pg_restore']:.2f} s",
        )
    )
    return med


def rehearsal_times(bench: Any, rows: list[tuple[str, str]]) -> dict[str, float]:
    """A rehearsal of one added revision on 10 tenants at once, and each tenant's alone."""
    repo = migrations.history(Path(tempfile.mkdtemp(prefix="bench-rehearse-")))
    tenants = bench.tenants_list(10).split(",")
    name = f"bench-rehearse-{uuid.uuid4().hex[:6]}"
    settings = bench.settings_for("local", ",".join(tenants), name, services="postgres", **migrations.options_of(repo))
    env = Environment.up(settings=settings)
    try:
        (repo / "migrations" / "versions" / "added.py").write_text(migrations.ADDED.format(last=migrations.REVISIONS))
        parallel = _timed(lambda: _all_ok(env.rehearse()))
        serial = sum(_timed(lambda t=t: _all_ok(env.rehearse([t]))) for t in tenants)
    finally:
        env.down()
        shutil.rmtree(repo, ignore_errors=True)
    rows.append(
        ("rehearse: one added revision on 10 tenants at once / one after another", f"{parallel:.2f} / {serial:.2f} s")
    )
    return {"parallel": parallel, "serial": serial}


def _all_ok(outcomes: list[Any]) -> None:
    failed = [o for o in outcomes if not o.ok]
    if failed or not outcomes:
        print(f"bench: rehearsal failed: {failed or 'nothing pending'}", file=sys.stderr)
        raise SystemExit(1)
