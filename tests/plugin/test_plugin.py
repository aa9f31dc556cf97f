"""The pytest plugin, exercised the way a service repository uses it (pytester, real services)."""

from __future__ import annotations

import json

import pytest

from tests.helpers import Sandbox, run

pytestmark = pytest.mark.integration


ISOLATION = """
import pytest

def test_a_writes_everywhere(tenant, tenant_pg, tenant_mongo, tenant_redis):
    tenant_pg.execute("INSERT INTO customers (tenant_id, full_name, email) VALUES (%s, 'X', 'x@x.test')",
                      (tenant.tenant_id,))
    tenant_pg.commit()
    tenant_mongo.intervention_notes.delete_many({})
    tenant_mongo.scratch.insert_one({"written": True})
    tenant_redis.set(tenant.redis.key_prefix + "scratch", "1")
    tenant_redis.delete(tenant.redis.key_prefix + "config")

def test_b_sees_the_seed_again(tenant, tenant_pg, tenant_mongo, tenant_redis):
    assert tenant_pg.execute("SELECT count(*) FROM customers").fetchone() == (3,)
    assert tenant_mongo.intervention_notes.count_documents({}) == 3
    assert "scratch" not in tenant_mongo.list_collection_names()
    assert tenant_redis.get(tenant.redis.key_prefix + "scratch") is None
    assert tenant_redis.hget(tenant.redis.key_prefix + "config", "tenant_id") == tenant.tenant_id

@pytest.mark.tenant("beta")
def test_c_beta(tenant, tenant_pg):
    assert tenant.slug == "beta"
    assert tenant_pg.execute("SELECT slug FROM tenants").fetchone() == ("beta",)

@pytest.mark.all_tenants
def test_d_every_tenant(tenant, tenant_pg):
    assert tenant_pg.execute("SELECT id::text FROM tenants").fetchone() == (tenant.tenant_id,)
"""


def test_isolation_between_tests_and_tenants_from_markers(pytester: pytest.Pytester, box: Sandbox) -> None:
    pytester.makepyfile(test_sample=ISOLATION)
    result = run(pytester, "-v")
    result.assert_outcomes(passed=5)
    # no tenants configured: the environment held what the tests asked for (beta, and all = acme, beta)
    result.stdout.fnmatch_lines(["*tenants acme, beta*", "*test_d_every_tenant?acme?*", "*test_d_every_tenant?beta?*"])
    result.stdout.fnmatch_lines(["*driveops-env per-test restore: mongo p50*postgres p50*redis p50*"])
    assert box.leftovers() == []  # the session's environment was torn down


def test_xdist_two_workers_share_one_environment(
    pytester: pytest.Pytester, box: Sandbox, tmp_path_factory: pytest.TempPathFactory
) -> None:
    out = tmp_path_factory.mktemp("seen")
    pytester.makepyfile(
        test_workers=f"""
        import json, os, pytest

        @pytest.mark.parametrize("n", range(8))
        def test_write_and_count(n, tenant, tenant_pg, tenant_redis):
            worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
            # every test starts from the seed, whatever the other worker does at the same time
            assert tenant_pg.execute("SELECT count(*) FROM customers").fetchone() == (3,)
            tenant_pg.execute("INSERT INTO customers (tenant_id, full_name, email) VALUES (%s, 'W', %s)",
                              (tenant.tenant_id, f"w{{n}}@x.test"))
            tenant_pg.commit()
            key = tenant.redis.key_prefix + "counter"
            assert tenant_redis.incr(key) == 1
            with open(os.path.join({str(out)!r}, f"{{worker}}-{{n}}.json"), "w") as f:
                json.dump({{"worker": worker, "database": tenant.postgres.database,
                           "port": tenant.postgres.port, "redis_db": tenant.redis.db}}, f)
        """
    )
    result = run(pytester, "-n", "2")
    result.assert_outcomes(passed=8)
    seen = [json.loads(p.read_text()) for p in out.iterdir()]
    assert {s["worker"] for s in seen} == {"gw0", "gw1"}
    assert len({s["port"] for s in seen}) == 1  # one environment served both workers
    assert {s["database"] for s in seen} == {"driveops_acme_gw0", "driveops_acme_gw1"}
    # dedicated mode: each worker has a logical Redis database of its own (keys keep their names)
    assert len({s["redis_db"] for s in seen}) == 2 and 0 not in {s["redis_db"] for s in seen}
    assert box.leftovers() == []  # torn down once, at the end


def test_reuse_attaches_to_a_cli_environment_and_leaves_it_running(pytester: pytest.Pytester, box: Sandbox) -> None:
    up = box.cli("up", "--tenants", "acme")
    assert up.returncode == 0, up.stderr
    port = box.state()["tenants"]["acme"]["stores"]["postgres"]["port"]
    pytester.makepyfile(
        test_reuse=f"""
        def test_attached(driveops_env, tenant):
            assert driveops_env.name == {box.name!r}
            assert tenant.postgres.port == {port}
        """
    )
    result = run(pytester, "--driveops-reuse")
    result.assert_outcomes(passed=1)
    assert box.cli("status").returncode == 0  # still running
    assert box.state()["tenants"]["acme"]["stores"]["postgres"]["port"] == port
    assert box.cli("down").returncode == 0


def test_keep_leaves_the_environment_up_and_detached(pytester: pytest.Pytester, box: Sandbox) -> None:
    pytester.makepyfile(
        test_keep="def test_x(tenant_pg):\n    assert tenant_pg.execute('SELECT 1').fetchone() == (1,)\n"
    )
    result = run(pytester, "--driveops-keep")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*kept running*"])
    state = box.state()
    assert state["status"] == "running" and state["owner_pid"] is None
    assert box.cli("status").returncode == 0
    assert box.cli("down").returncode == 0


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--driveops-isolation", "weird"], "--isolation"),
        (["--driveops-tenants", "Acme"], "not a valid slug"),
        (["--driveops-startup-timeout", "-3"], "startup-timeout"),
    ],
)
@pytest.mark.backend_independent
def test_bad_option_values_are_usage_errors(
    pytester: pytest.Pytester, box: Sandbox, args: list[str], fragment: str
) -> None:
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = run(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert fragment in result.stderr.str()
    assert box.leftovers() == []


@pytest.mark.backend_independent
def test_a_bad_boolean_from_the_environment_is_a_usage_error(
    pytester: pytest.Pytester, box: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRIVEOPS_ENV_REUSE", "maybe")
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "DRIVEOPS_ENV_REUSE" in result.stderr.str() and "use true or false" in result.stderr.str()


@pytest.mark.backend_independent
def test_bad_ini_value_is_a_usage_error(pytester: pytest.Pytester, box: Sandbox) -> None:
    pytester.makeini("[pytest]\ndriveops_isolation = sideways\n")
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "driveops_isolation" in result.stderr.str()


@pytest.mark.backend_independent
def test_failure_report_names_tenant_environment_and_command(pytester: pytest.Pytester, box: Sandbox) -> None:
    pytester.makepyfile(
        test_fail="""
        import pytest

        @pytest.mark.tenant("beta")
        def test_fails(tenant_pg):
            assert tenant_pg.execute("SELECT 2").fetchone() == (3,)
        """
    )
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*driveops-env*",
            f"*tenant 'beta' of environment '{box.name}'*",
            f"*driveops-env logs postgres --name {box.name} --tenant beta*",
            "*--driveops-keep*",
        ]
    )
    assert box.leftovers() == []


def test_smoke_mode_against_a_running_environment_and_through_env_vars(
    pytester: pytest.Pytester, box: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert box.cli("up", "--tenants", "acme,beta").returncode == 0
    result = run(pytester, "--driveops-smoke", "-v")  # no test file at all: the checks are the tests
    result.assert_outcomes(passed=8)  # postgres, mongodb, redis, tenant-validation x 2 tenants
    result.stdout.fnmatch_lines(["*smoke?beta-tenant-validation?*PASSED*"])
    assert box.cli("status").returncode == 0  # attached, left running

    # attach through the variables `driveops-env env` prints
    variables = json.loads(box.cli("env", "--tenant", "beta", "--format", "json").stdout)
    monkeypatch.setenv("DRIVEOPS_ENV_NAME", "no-such-environment")
    for key, value in variables.items():
        monkeypatch.setenv(key, value)
    result = run(pytester, "--driveops-smoke", "-v")
    result.assert_outcomes(passed=4)
    # a deactivated tenant fails the smoke run, naming the tenant and the check
    import psycopg

    with psycopg.connect(
        f"host=127.0.0.1 port={variables['PGPORT']} dbname={variables['PGDATABASE']} "
        f"user={variables['PGUSER']} password={variables['PGPASSWORD']}",
        autocommit=True,
    ) as conn:
        conn.execute("UPDATE tenants SET active = false")
    result = run(pytester, "--driveops-smoke")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*check tenant-validation failed for tenant beta*not active*"])
    monkeypatch.setenv("DRIVEOPS_ENV_NAME", box.name)
    assert box.cli("down").returncode == 0


EVERY_FIXTURE = """
import psycopg, pymongo.database, redis

def test_every_fixture(driveops_env, tenant, tenant_pg, tenant_mongo, tenant_redis, tenant_keycloak,
                       tenant_token):
    assert driveops_env.tenants == ["acme"]
    assert isinstance(tenant_pg, psycopg.Connection)
    assert tenant_pg.execute("SELECT slug FROM tenants").fetchone() == ("acme",)
    assert isinstance(tenant_mongo, pymongo.database.Database)
    assert tenant_mongo.audit_events.count_documents({}) == 3
    assert isinstance(tenant_redis, redis.Redis)
    assert tenant_redis.sismember("acme:feature_flags", "online-booking")
    assert {r["name"] for r in tenant_keycloak.get_realm_roles()} >= {"admin", "viewer"}
    from driveops_env.services.keycloak.admin import claims
    token = tenant_token("viewer@acme.test")
    assert claims(token)["tenant_id"] == tenant.tenant_id
    assert "viewer" in claims(token)["realm_access"]["roles"]
"""


def test_sample_service_module_uses_every_fixture(
    pytester: pytest.Pytester, box: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRIVEOPS_ENV_SERVICES", "keycloak,postgres,mongo,redis")
    pytester.makepyfile(test_service=EVERY_FIXTURE)
    result = run(pytester)
    result.assert_outcomes(passed=1)
    assert box.leftovers() == []


def test_factory_declares_a_repository_environment(pytester: pytest.Pytester, box: Sandbox) -> None:
    seeds = pytester.mkdir("myseeds")
    (seeds / "postgres").mkdir()
    (seeds / "postgres" / "001.sql").write_text(
        "CREATE TABLE tenants (id uuid PRIMARY KEY, active boolean);\n"
        "INSERT INTO tenants VALUES ({{ tenant_id }}, true);\n"
        "CREATE TABLE things (name text);\nINSERT INTO things VALUES ('from-my-seeds');\n"
    )
    pytester.makeconftest(
        """
        from driveops_env.pytest_plugin import driveops_env_factory
        driveops_env = driveops_env_factory(tenants="gamma", seeds_dir="myseeds", services="postgres")
        """
    )
    pytester.makepyfile(
        test_mine="""
        def test_gamma(tenant, tenant_pg):
            assert tenant.slug == "gamma"
            assert tenant_pg.execute("SELECT name FROM things").fetchone() == ("from-my-seeds",)
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=1)
    assert box.leftovers() == []
