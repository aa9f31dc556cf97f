"""A test process's restores from pools of ready copies: PostgreSQL's ready clones (the copy is back at
its seed after every hand-over, keeps its name, a connection a test left open is ended), MongoDB's ready
databases (the handle names another database each time) and Redis's ready logical databases (swapped
in: same number, a client left open sees the seed); what a killed process of the same token left is
swept, and nothing of a pool outlives the copy."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from driveops_env import Environment
from driveops_env.environment import TenantHandle
from driveops_env.restore import TenantCopy
from driveops_env.services.postgres import admin
from driveops_env.services.redis import admin as redis_admin
from tests.helpers import make_sandbox, wait_for

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Environment]:
    with make_sandbox(tmp_path_factory.mktemp("pool"), services="postgres,mongo,redis") as box:
        up = Environment.up(settings=box.settings(tenants="acme"))
        try:
            yield up
        finally:
            up.down()


def _pool_databases(env: Environment, copy_db: str) -> list[str]:
    return admin.databases_with_prefix(admin.admin_conninfo(env.state.services["postgres.acme"]), f"{copy_db}__")


def _rows(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM interventions").fetchone()
    assert row is not None
    return int(row[0])


def test_every_restore_hands_over_the_seed_under_the_same_name(env: Environment) -> None:
    copy = TenantCopy(env.state, "acme", "main", env.settings.replace(postgres_restore_pool=2))
    copy.make()
    handle = env.handle(copy.record)
    seeded = _rows(handle.postgres.dsn)
    name = handle.postgres.database
    try:
        for _ in range(4):
            with psycopg.connect(handle.postgres.dsn, autocommit=True) as conn:
                conn.execute("DELETE FROM interventions")
            assert _rows(handle.postgres.dsn) == 0
            copy.restore(["postgres"])
            assert env.handle(copy.record).postgres.database == name
            assert _rows(handle.postgres.dsn) == seeded
        left_open = psycopg.connect(handle.postgres.dsn, autocommit=True)
        left_open.execute("DELETE FROM interventions")
        copy.restore(["postgres"])  # a connection the test did not close is ended, not waited for
        assert left_open.broken or left_open.closed or _connection_ended(left_open)
        assert _rows(handle.postgres.dsn) == seeded
        ahead = wait_for(lambda: [d for d in _pool_databases(env, name) if "__r" in d], timeout=30)
        assert len(ahead) <= 2  # ready clones are kept ahead, no more than the pool's size
    finally:
        copy.drop()
    assert _pool_databases(env, name) == []  # the pool goes with the copy
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(handle.postgres.dsn, connect_timeout=5).close()  # and the copy itself


def _connection_ended(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    try:
        conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return True
    return False


def test_a_new_pool_sweeps_what_a_killed_process_of_its_token_left(env: Environment) -> None:
    script = (
        "import os, sys, time\n"
        "from driveops_env import Environment, options\n"
        "from driveops_env.restore import TenantCopy\n"
        "settings = options.resolve(cli={'name': sys.argv[1], 'state_dir': sys.argv[2]})\n"
        "env = Environment.attach(sys.argv[1], settings=settings)\n"
        "copy = TenantCopy(env.state, 'acme', 'gw7', env.settings.replace(postgres_restore_pool=3))\n"
        "copy.make()\n"
        "from driveops_env.services.postgres import admin\n"
        "info = admin.admin_conninfo(env.state.services['postgres.acme'])\n"
        "prefix = copy.accesses['postgres'].database + '__r'\n"
        "while not admin.databases_with_prefix(info, prefix): time.sleep(0.05)  # a clone kept ahead exists\n"
        "mongo = env.handle(copy.record).mongo.connect()\n"
        "while not [n for n in mongo.client.list_database_names() if '__r' in n]: time.sleep(0.05)\n"
        "print('ready', os.getpid(), flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    killed = subprocess.run(
        [sys.executable, "-c", script, env.name, str(env.settings.state_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )
    assert "ready" in killed.stdout, killed.stderr
    copy_db = f"{env.tenant('acme').postgres.database}_gw7"
    assert wait_for(lambda: len(_pool_databases(env, copy_db)) >= 1, timeout=30)  # its pool was left behind
    mongo_base, dead = f"{env.tenant('acme').mongo.database}_gw7", f" {killed.stdout.split()[1]} "
    assert _mongo_databases(env, mongo_base)  # its ready MongoDB databases too
    assert [h for h in _leases(env).values() if dead in h]  # and its Redis leases
    one = {"postgres_restore_pool": 1, "mongo_restore_pool": 1, "redis_restore_pool": 1}
    again = TenantCopy(env.state, "acme", "gw7", env.settings.replace(**one))
    again.make()
    try:
        started = time.monotonic()
        assert wait_for(lambda: len(_pool_databases(env, copy_db)) <= 1, timeout=30)
        assert wait_for(lambda: len(_mongo_databases(env, mongo_base)) <= 2, timeout=30)  # the copy's + 1 ready
        assert time.monotonic() - started < 30
        assert not [h for h in _leases(env).values() if dead in h]  # the dead holder's leases were taken over
    finally:
        again.drop()
    assert _pool_databases(env, copy_db) == []
    assert _mongo_databases(env, mongo_base) == []


def test_pool_zero_clones_on_the_path(env: Environment) -> None:
    copy = TenantCopy(env.state, "acme", "main", env.settings.replace(postgres_restore_pool=0))
    copy.make()
    handle = env.handle(copy.record)
    try:
        with psycopg.connect(handle.postgres.dsn, autocommit=True) as conn:
            conn.execute("DELETE FROM interventions")
        copy.restore(["postgres"])
        assert _rows(handle.postgres.dsn) > 0
        assert _pool_databases(env, handle.postgres.database) == []  # no clone kept ahead
    finally:
        copy.drop()


def _mongo_databases(env: Environment, base: str) -> list[str]:
    database = env.tenant("acme").mongo.connect()
    try:
        return [n for n in database.client.list_database_names() if n.startswith(f"{base}__")]
    finally:
        database.client.close()


def _leases(env: Environment) -> dict[str, str]:
    client = env.tenant("acme").redis.connect()
    try:
        client.select(redis_admin.LEASE_DB)
        return {key: client.get(key) for key in client.keys("driveops-env:lease:*")}
    finally:
        client.close()


def test_mongo_and_redis_restores_hand_over_ready_databases(env: Environment) -> None:
    settings = env.settings.replace(mongo_restore_pool=2, redis_restore_pool=1)
    copy = TenantCopy(env.state, "acme", "main", settings)
    copy.make()
    first = env.handle(copy.record)
    base, number = first.mongo.database.split("__")[0], first.redis.db
    seeded_events = _events(first)
    left_open = first.redis.connect()  # a client a test did not close: swapped under it
    names = {first.mongo.database}
    try:
        copy.restore(["mongo"])  # nothing written: where that is told exactly (FerretDB), nothing handed over
        told_exactly = any(r.extra.get("mechanism") == "PLAIN" for r in env.state.services.values())
        assert (env.handle(copy.record).mongo.database == first.mongo.database) == told_exactly
        names.add(env.handle(copy.record).mongo.database)
        for _ in range(3):
            handle = env.handle(copy.record)
            database = handle.mongo.connect()
            try:
                database.audit_events.delete_many({})
                database.scratch.insert_one({"written": "by a test"})
            finally:
                database.client.close()
            left_open.delete("acme:config")
            left_open.set("acme:written", "by a test")
            left_open.set("bare", "a key without the tenant's prefix")
            copy.restore(["mongo", "redis"])
            again = env.handle(copy.record)
            names.add(again.mongo.database)
            assert again.mongo.database.startswith(f"{base}__r")
            assert _events(again) == seeded_events
            assert again.redis.db == number
            assert left_open.exists("acme:config") == 1
            assert left_open.get("acme:written") is None and left_open.get("bare") is None
            assert left_open.hgetall("acme:config")["tenant_id"] == env.tenant("acme").tenant_id
        assert len(names) == (4 if told_exactly else 5)  # each restore after a write handed over another one
        assert wait_for(lambda: len(_mongo_databases(env, base)) <= 3, timeout=30)  # used ones dropped behind
        ready = [
            n for n, holder in _leases(env).items() if holder.endswith(" main") and n != f"driveops-env:lease:{number}"
        ]
        assert len(ready) == 2  # the ready logical database and the pristine one, leased by the same process
    finally:
        left_open.close()
        copy.drop()
    assert _mongo_databases(env, base) == []
    assert not [holder for holder in _leases(env).values() if holder.endswith(" main")]


def _events(handle: TenantHandle) -> list[str]:
    database = handle.mongo.connect()
    try:
        return sorted(str(d["action"]) for d in database.audit_events.find({}))
    finally:
        database.client.close()
