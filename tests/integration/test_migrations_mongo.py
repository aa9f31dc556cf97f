"""A service repository whose MongoDB history is run by migrate-mongo (installed here from the npm
registry, as a team's CI installs it: nothing of it vendored), written from the README's
"Migrations": once for two tenants, its collections, indexes and changelog in every tenant and in
what a reset or a test's restore refills, nothing run for a known history, the added file alone
through `driveops-env migrate`."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pymongo
import pytest
from filelock import FileLock

from driveops_env import paths
from tests.helpers import Sandbox, run

pytestmark = pytest.mark.integration

VERSION = "14.0.7"
CONFIG = """\
module.exports = {
  mongodb: { url: process.env.DRIVEOPS_MONGO_URI, databaseName: process.env.DRIVEOPS_MONGO_DATABASE, options: {} },
  migrationsDir: "migrations",
  changelogCollectionName: "changelog",
  migrationFileExtension: ".js",
  useFileHash: false,
  moduleSystem: "commonjs",
};
"""
FIRST = """\
// %s
module.exports = {
  async up(db) {
    await db.collection("work_orders").createIndex({ tenant: 1 }, { name: "by_tenant" });
    await db.collection("settings").insertOne({ key: "units", value: "km" });
  },
  async down(db) {},
};
"""
SECOND = """\
module.exports = {
  async up(db) {
    await db.collection("settings").insertOne({ key: "currency", value: "EUR" });
  },
  async down(db) {},
};
"""


@pytest.fixture(scope="session")
def migrate_mongo(cache_dir: str) -> Path:
    """migrate-mongo installed once into the cache with the machine's npm (a few seconds)."""
    folder = Path(cache_dir) / "tools" / f"migrate-mongo-{VERSION}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    program = folder / "node_modules" / ".bin" / "migrate-mongo"
    with FileLock(str(folder.parent / f".{folder.name}.lock")):
        if not program.exists():
            folder.mkdir(exist_ok=True)
            argv = ["npm", "install", "--no-audit", "--no-fund", f"migrate-mongo@{VERSION}"]
            done = subprocess.run(argv, cwd=folder, capture_output=True, text=True, check=False)
            assert done.returncode == 0, done.stderr
    return program


def _repository(repo: Path, program: Path) -> None:
    (repo / "migrations").mkdir()
    (repo / "migrate-mongo-config.js").write_text(CONFIG)
    (repo / "migrations" / "20260101000000-orders.js").write_text(FIRST % repo)  # a history of its own
    seeds = repo / "seeds"
    (seeds / "mongo").mkdir(parents=True)
    shutil.copy(paths.default_seeds_dir() / "tenants.json", seeds / "tenants.json")
    order = {"documents": [{"tenant": "{{ tenant_slug }}", "title": "brake pads"}]}
    (seeds / "mongo" / "work_orders.json").write_text(json.dumps(order))
    command = json.dumps([str(program), "up"])
    (repo / "pyproject.toml").write_text(
        "[tool.driveops-env]\n"
        f"migrate-mongo = {command}\n"
        'migrate-inputs = ["migrations", "migrate-mongo-config.js"]\n'
        'seeds-dir = "seeds"\n'
    )


def _database(box: Sandbox, tenant: str) -> Any:
    printed = box.cli("env", "--tenant", tenant, "--format", "json")
    assert printed.returncode == 0, printed.stderr
    values = json.loads(printed.stdout)
    return pymongo.MongoClient(values["DRIVEOPS_MONGO_URI"])[values["DRIVEOPS_MONGO_DATABASE"]]


def _log(box: Sandbox, tenant: str) -> str:
    printed = box.cli("logs", "migrate", "--tenant", tenant)
    assert printed.returncode == 0, printed.stderr
    return printed.stdout


def _migrated_and_seeded(database: Any, tenant: str, settings: int = 1) -> None:
    assert [d["fileName"] for d in database.changelog.find({}).sort("fileName")][:1] == ["20260101000000-orders.js"]
    assert "by_tenant" in database.work_orders.index_information()
    assert database.settings.count_documents({}) == settings
    assert [(d["tenant"], d["title"]) for d in database.work_orders.find({})] == [(tenant, "brake pads")]


def test_migrate_mongo_runs_once_and_every_restore_keeps_what_it_made(
    sandbox: Sandbox, tmp_path: Path, migrate_mongo: Path
) -> None:
    _repository(tmp_path, migrate_mongo)
    sandbox.services = "postgres,mongo"
    up = sandbox.cli("up", "--tenants", "acme,beta")
    assert up.returncode == 0, up.stderr
    ran = [t for t in ("acme", "beta") if "MIGRATED UP: 20260101000000-orders.js" in _log(sandbox, t)]
    assert len(ran) == 1  # once for the two tenants; the other loaded what it made
    for tenant in ("acme", "beta"):
        _migrated_and_seeded(_database(sandbox, tenant), tenant)

    acme = _database(sandbox, "acme")
    acme.work_orders.insert_one({"tenant": "acme", "title": "written by hand"})
    acme.settings.drop()
    assert sandbox.cli("reset", "--tenant", "acme").returncode == 0
    _migrated_and_seeded(acme, "acme")  # the seed a reset refills holds what the migration made
    pending = tmp_path / "migrations" / "20260101500000-pending.js"
    pending.write_text(SECOND)  # on disk, not applied: a restore keeps what the tenant was set up with
    assert sandbox.cli("reset", "--tenant", "acme").returncode == 0
    _migrated_and_seeded(acme, "acme")
    pending.unlink()
    assert sandbox.cli("down").returncode == 0

    again = sandbox.cli("up", "--tenants", "acme,beta")  # a known history: migrate-mongo does not run
    assert again.returncode == 0, again.stderr
    assert all("MIGRATED UP" not in _log(sandbox, t) for t in ("acme", "beta"))
    (tmp_path / "migrations" / "20260102000000-currency.js").write_text(SECOND)
    migrated = sandbox.cli("migrate")
    assert migrated.returncode == 0, migrated.stderr
    for tenant in ("acme", "beta"):
        text = _log(sandbox, tenant)
        assert "MIGRATED UP: 20260102000000-currency.js" in text and "20260101000000-orders.js" not in text, text
        _migrated_and_seeded(_database(sandbox, tenant), tenant, settings=2)
    assert sandbox.cli("reset", "--tenant", "beta").returncode == 0
    _migrated_and_seeded(_database(sandbox, "beta"), "beta", settings=2)  # the new history's state
    assert sandbox.cli("down").returncode == 0


PER_TEST = """
import pytest

@pytest.mark.parametrize("n", range(100))
def test_each_sees_the_migrated_seed(n, tenant_mongo):
    assert tenant_mongo.changelog.count_documents({}) == 1
    assert "by_tenant" in tenant_mongo.work_orders.index_information()
    assert tenant_mongo.work_orders.count_documents({}) == 1
    tenant_mongo.work_orders.insert_one({"tenant": "acme", "title": "test %d" % n})
    tenant_mongo.changelog.drop()
"""


@pytest.mark.local_only
def test_each_test_gets_the_migrated_mongo_seed(
    pytester: pytest.Pytester, box: Sandbox, migrate_mongo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _repository(pytester.path, migrate_mongo)
    pytester.makepyfile(test_orders=PER_TEST)
    monkeypatch.setenv("DRIVEOPS_ENV_SERVICES", "postgres,mongo")
    box.services = "postgres,mongo"
    result = run(pytester, "-n", "2", "-p", "no:randomly")
    result.assert_outcomes(passed=100)
