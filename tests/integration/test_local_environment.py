"""The local backend against real PostgreSQL and Redis servers: up, seed, isolate, down."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest
import redis

from driveops_env import Environment
from tests.helpers import Sandbox, container_of, pid_of

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("isolation", ["dedicated", "shared"])
def test_two_tenants_up_seeded_isolated_and_down(sandbox: Sandbox, isolation: str) -> None:
    env = Environment.up(settings=sandbox.settings(tenants="acme,beta", isolation=isolation))
    try:
        acme, beta = env.tenant("acme"), env.tenant("beta")
        servers = {r.key for r in env.state.services.values()}
        if isolation == "dedicated":
            assert servers == {"postgres.acme", "postgres.beta", "redis.acme", "redis.beta"}
            assert acme.postgres.port != beta.postgres.port
        else:
            assert servers == {"postgres.shared", "redis.shared"}
            assert acme.postgres.port == beta.postgres.port

        # the tenant row and the seeded data, read with the tenant's own role
        with acme.connect_postgres() as conn:
            row = conn.execute("SELECT id::text, slug, name, active FROM tenants").fetchall()
            assert row == [("550e8400-e29b-41d4-a716-446655440001", "acme", "Acme Garage", True)]
            assert conn.execute("SELECT count(*) FROM interventions WHERE status = 'done'").fetchone() == (1,)
            assert conn.execute("SELECT current_user").fetchone() == ("driveops_acme",)

        # acme's role cannot connect to beta's database ...
        stolen = acme.postgres
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(
                f"host={beta.postgres.host} port={beta.postgres.port} dbname={beta.postgres.database} "
                f"user={stolen.user} password={stolen.password} connect_timeout=5"
            ).close()
        # ... nor through its own server read beta's rows
        with acme.connect_postgres() as conn:
            databases = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
            if isolation == "shared":
                assert "driveops_beta" in databases  # same server: visible in the catalogue, not reachable
            else:
                assert "driveops_beta" not in databases

        # Redis: seeded keys under the tenant prefix
        r_acme = acme.connect_redis()
        assert r_acme.hget("acme:config", "tenant_id") == acme.tenant_id
        assert r_acme.sismember("acme:feature_flags", "online-booking")
        r_acme.set("acme:scratch", "1")
        if isolation == "dedicated":
            # acme's credentials are refused by beta's server
            other = redis.Redis(
                host=beta.redis.host, port=beta.redis.port, password=acme.redis.password, socket_timeout=5
            )
            with pytest.raises(redis.AuthenticationError):
                other.ping()
        else:
            # same server, acme's ACL user cannot read or write beta's keys, nor list them
            with pytest.raises(redis.exceptions.NoPermissionError):
                r_acme.hget("beta:config", "tenant_id")
            with pytest.raises(redis.exceptions.NoPermissionError):
                r_acme.set("beta:config", "x")
            with pytest.raises(redis.exceptions.NoPermissionError):
                r_acme.scan()
            with pytest.raises(redis.exceptions.NoPermissionError):
                r_acme.flushall()
            assert beta.connect_redis().hget("beta:config", "tenant_id") == beta.tenant_id
        r_acme.close()

        assert all(result.ok for result in env.status())
        assert all(result.ok for result in env.check())
    finally:
        env.down()
    assert sandbox.leftovers() == []


def test_context_manager_and_attach(sandbox: Sandbox) -> None:
    settings = sandbox.settings(tenants="acme")
    with Environment.up(settings=settings) as env:
        again = Environment.attach(sandbox.name, settings=settings)
        assert again.tenant("acme").postgres.dsn == env.tenant("acme").postgres.dsn
        same = Environment.up(settings=settings)  # same spec: attaches, starts nothing
        assert same.state.services.keys() == env.state.services.keys()
        assert same.tenant("acme").postgres.port == env.tenant("acme").postgres.port
    assert sandbox.leftovers() == []


@pytest.mark.backend_independent
def test_seed_error_names_file_line_and_tenant_and_leaves_nothing(sandbox: Sandbox, tmp_path: object) -> None:
    seeds = sandbox.state_dir.parent / "seeds"
    (seeds / "postgres").mkdir(parents=True)
    (seeds / "postgres" / "001_ok.sql").write_text("CREATE TABLE tenants (id uuid, active boolean);\n")
    (seeds / "postgres" / "002_bad.sql").write_text(
        "INSERT INTO tenants VALUES ({{ tenant_id }}, true);\n\nINSERT INTO\n  nowhere VALUES (1);\n"
    )
    result = sandbox.cli("up", "--tenants", "acme", "--seeds-dir", str(seeds))
    assert result.returncode == 2, result.stderr
    assert "002_bad.sql line 4" in result.stderr
    assert "tenant acme" in result.stderr
    assert 'relation "nowhere" does not exist' in result.stderr
    assert sandbox.leftovers() == []


@pytest.mark.xdist_group("owners")  # gc sweeps every dead owner's environment: not beside these
def test_a_killed_owner_is_swept_by_the_next_up(sandbox: Sandbox) -> None:
    # A Python process owns an environment and dies without down(): the next up sweeps it, and only it.
    beside = sandbox.settings(tenants="beta", name=sandbox.name + "-beside")
    other = Environment.up(settings=beside)
    script = (
        "from driveops_env import Environment, options\n"
        f"s = options.resolve(cli={{'name': '{sandbox.name}', 'tenants': 'acme'}})\n"
        "Environment.up(settings=s)\n"
        "import os; os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", script], env=sandbox.env(), check=True, timeout=300)
    old = list(sandbox.state()["services"].values())
    assert all(sandbox.server_alive(r) for r in old), "the dead owner's servers should still run"
    result = sandbox.cli("up", "--tenants", "acme")
    assert result.returncode == 0, result.stderr
    assert "is gone: sweeping" in result.stderr
    assert not any(sandbox.server_alive(r) for r in old)
    new = list(sandbox.state()["services"].values())
    assert all(sandbox.server_alive(r) for r in new)
    assert {pid_of(r) or container_of(r) for r in new}.isdisjoint({pid_of(r) or container_of(r) for r in old})
    # the environment beside it was not touched
    assert all(result.ok for result in other.status())
    other.down()
    assert sandbox.cli("down").returncode == 0
