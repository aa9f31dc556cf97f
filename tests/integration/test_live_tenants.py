"""Tenants added and removed on a running environment, and a staging environment other machines use
through its descriptor."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from driveops_env import Environment
from tests.helpers import Sandbox, container_of, make_sandbox, pid_of, run

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("isolation", ["dedicated", "shared"])
def test_tenant_add_and_remove_leave_the_others_alone(tmp_path: Path, isolation: str) -> None:
    with make_sandbox(tmp_path, services="keycloak,postgres,mongo,redis") as box:
        assert box.cli("up", "--tenants", "acme", "--isolation", isolation).returncode == 0
        before = box.state()
        acme = Environment.attach(box.name, settings=box.settings())
        token = acme.tenant("acme").token()
        with acme.tenant("acme").postgres.connect() as conn:
            conn.execute(
                "INSERT INTO garages (tenant_id, name, city) VALUES (%s, 'Kept', 'X')", (acme.tenant("acme").tenant_id,)
            )
            conn.commit()
        added = box.cli("tenant", "add", "gamma", "delta")
        assert added.returncode == 0, added.stderr
        after = box.state()
        kc_after, kc_before = after["services"]["keycloak"], before["services"]["keycloak"]
        assert pid_of(kc_after) == pid_of(kc_before) and container_of(kc_after) == container_of(
            kc_before
        )  # not restarted
        env = Environment.attach(box.name, settings=box.settings())
        assert env.tenants == ["acme", "gamma", "delta"]
        assert env.tenant("acme").keycloak.validate(token)["tenant"] == "acme"  # acme's tokens stay valid
        with env.tenant("acme").postgres.connect() as conn:
            assert conn.execute("SELECT count(*) FROM garages WHERE name = 'Kept'").fetchone() == (1,)
        assert all(r.ok for r in env.check())
        kids = {slug: _signing_kids(env, slug) for slug in ("acme", "gamma", "delta")}
        assert all(kids.values()) and not kids["gamma"] & kids["delta"] and not kids["gamma"] & kids["acme"]
        assert box.cli("up", "--tenants", "acme,gamma,delta", "--isolation", isolation).returncode == 0  # attaches
        removed = box.cli("tenant", "remove", "gamma")
        assert removed.returncode == 0, removed.stderr
        env = Environment.attach(box.name, settings=box.settings())
        assert env.tenants == ["acme", "delta"] and not any(k.endswith(".gamma") for k in env.state.services)
        assert all(r.ok for r in env.check()) and env.tenant("acme").keycloak.validate(token)
        again = box.cli("tenant", "add", "gamma")  # nothing of the removed tenant is in the way
        assert again.returncode == 0, again.stderr
        env = Environment.attach(box.name, settings=box.settings())
        assert all(r.ok for r in env.check() if r.tenant == "gamma")
        assert box.cli("down").returncode == 0


def _signing_kids(env: Environment, slug: str) -> set[str]:
    """The key ids a tenant's realm signs with (its JWKS): made per realm, never shared with another's."""
    return {k["kid"] for k in env.tenant(slug).keycloak.openid().certs()["keys"] if k.get("use") == "sig"}


def test_tenant_add_prepares_only_the_services_the_environment_runs(box: Sandbox) -> None:
    assert box.cli("up", "--tenants", "acme").returncode == 0  # postgres,redis
    # the command line's defaults (all four services, a Keycloak that cannot be fetched) do not matter
    box.extra_env.update(
        {"DRIVEOPS_ENV_SERVICES": "keycloak,postgres,mongo,redis", "DRIVEOPS_ENV_KEYCLOAK_VERSION": "99.0.0"}
    )
    added = box.cli("tenant", "add", "gamma")
    assert added.returncode == 0, added.stderr
    state = box.state()
    assert set(state["tenants"]) == {"acme", "gamma"} and {s["kind"] for s in state["services"].values()} == {
        "postgres",
        "mongo",
        "redis",
    }  # the box runs postgres,mongo,redis: no Keycloak came with the new tenant
    assert box.cli("down").returncode == 0


def test_the_plugin_adds_a_tenant_the_reused_environment_lacks(pytester: pytest.Pytester, box: Sandbox) -> None:
    assert box.cli("up", "--tenants", "acme").returncode == 0
    port = box.state()["tenants"]["acme"]["stores"]["postgres"]["port"]
    pytester.makepyfile(
        test_beta="""
        import pytest

        @pytest.mark.tenant("beta")
        def test_beta(tenant, tenant_pg):
            assert tenant_pg.execute("SELECT slug FROM tenants").fetchone() == ("beta",)
        """
    )
    result = run(pytester, "--driveops-reuse")
    result.assert_outcomes(passed=1)
    state = box.state()
    assert set(state["tenants"]) == {"acme", "beta"} and state["tenants"]["acme"]["stores"]["postgres"]["port"] == port
    assert box.cli("down").returncode == 0


STAGING_TESTS = """
import pytest

@pytest.mark.parametrize("n", range(4))
def test_writes_on_its_copy(n, tenant, tenant_pg, tenant_redis):
    assert tenant_pg.execute("SELECT count(*) FROM customers").fetchone() == (3,)
    tenant_pg.execute("INSERT INTO customers (tenant_id, full_name, email) VALUES (%s, 'S', %s)",
                      (tenant.tenant_id, f"s{n}@x.test"))
    tenant_pg.commit()
    tenant_redis.set("written_by_a_test", "1")
"""


def test_a_staging_descriptor_serves_other_machines(
    pytester: pytest.Pytester, box: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRIVEOPS_ENV_SERVICES", "keycloak,postgres,mongo,redis")
    box.services = "keycloak,postgres,mongo,redis"
    assert box.cli("up", "--tenants", "acme,beta").returncode == 0
    descriptor = tmp_path / "staging.json"
    assert box.cli("export", "-o", str(descriptor)).returncode == 0
    assert descriptor.stat().st_mode & 0o777 == 0o600
    text = descriptor.read_text()
    assert (
        str(box.data_dir) not in text
        and str(box.state_dir) not in text
        and '"pid"' not in text
        and '"process"' not in text
    )
    # another machine: no state of its own (another state directory), the descriptor only
    elsewhere = box.env() | {"DRIVEOPS_ENV_STATE_DIR": str(tmp_path / "elsewhere"), "DRIVEOPS_ENV_NAME": "unused"}
    cli = [sys.executable, "-m", "driveops_env.cli"]
    for args in (["status"], ["check"], ["env", "--tenant", "beta"], ["token", "--tenant", "acme"]):
        result = subprocess.run(
            [*cli, *args, "--from", str(descriptor)], capture_output=True, text=True, env=elsewhere, check=False
        )
        assert result.returncode == 0, (args, result.stderr)
    pytester.makepyfile(test_staging=STAGING_TESTS)
    sessions = [
        subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--driveops-from", str(descriptor)],
            cwd=pytester.path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=box.env() | {"DRIVEOPS_ENV_STATE_DIR": str(tmp_path / f"machine{i}")},
        )
        for i in (1, 2)
    ]
    outputs = [s.communicate(timeout=600)[0] for s in sessions]
    assert all(s.returncode == 0 for s in sessions), outputs
    assert all("4 passed" in out for out in outputs)
    env = Environment.attach(box.name, settings=box.settings())
    with env.tenant("acme").postgres.connect() as conn:  # the shared seeded data was never written
        assert conn.execute("SELECT count(*) FROM customers").fetchone() == (3,)
        databases = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
    assert not [d for d in databases if d.startswith("driveops_acme_main")]  # the sessions' copies are gone
    assert env.tenant("acme").redis.connect().get("written_by_a_test") is None
    smoke = run(pytester, "--driveops-smoke", "--driveops-from", str(descriptor))
    smoke.assert_outcomes(passed=10)  # 5 checks x 2 tenants
    assert json.loads(box.cli("status", "--json").stdout)["name"] == box.name
    assert box.cli("down").returncode == 0
