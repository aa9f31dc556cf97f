"""The plugin in a service team's hands: two sessions at once, the default tenant, keys a service writes
without knowing the plugin, resets that stay in their lane, the factory's tenants at collection."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from driveops_env import Environment
from tests.helpers import Sandbox, run

pytestmark = pytest.mark.integration

ANY_KEY = """
import pytest

def test_a_writes_keys_without_the_prefix(tenant_redis):
    tenant_redis.set("bars_probe", "1")
    tenant_redis.hset("sessions:42", "user", "x")

def test_b_sees_none_of_them(tenant, tenant_redis):
    assert tenant_redis.get("bars_probe") is None
    assert tenant_redis.exists("sessions:42") == 0
    assert tenant_redis.hget(tenant.redis.key_prefix + "config", "tenant_id") == tenant.tenant_id
"""


def test_every_key_a_test_writes_is_gone_before_the_next(pytester: pytest.Pytester, box: Sandbox) -> None:
    pytester.makepyfile(test_keys=ANY_KEY)
    result = run(pytester, "-p", "no:randomly")
    result.assert_outcomes(passed=2)
    assert box.leftovers() == []


def test_unmarked_tests_get_the_default_tenant_beside_marked_ones(pytester: pytest.Pytester, box: Sandbox) -> None:
    pytester.makepyfile(
        test_default="""
        import pytest

        @pytest.mark.tenant("beta")
        def test_beta(tenant):
            assert tenant.slug == "beta"

        def test_unmarked_is_acme(tenant, tenant_pg):
            assert tenant.slug == "acme"
            assert tenant_pg.execute("SELECT slug FROM tenants").fetchone() == ("acme",)
        """
    )
    result = run(pytester, "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*tenants acme, beta*"])


SLOW_SESSION = """
import pathlib, time, pytest

def meet(label, other):
    # proof that the sessions overlap: each waits, inside a test, until the other runs a test
    pathlib.Path(label + ".running").touch()
    deadline = time.monotonic() + 300
    while not pathlib.Path(other + ".running").exists():
        assert time.monotonic() < deadline, "the other session never ran a test meanwhile"
        time.sleep(0.05)

@pytest.mark.parametrize("n", range({count}))
def test_{label}(n, tenant, tenant_pg, tenant_redis):
    if n == 0:
        meet("{label}", "{other}")
    # each session sees the seed, whatever the other session does meanwhile
    assert tenant_pg.execute("SELECT count(*) FROM customers").fetchone() == (3,)
    tenant_pg.execute("INSERT INTO customers (tenant_id, full_name, email) VALUES (%s, 'S', %s)",
                      (tenant.tenant_id, "{label}%d@x.test" % n))
    tenant_pg.commit()
    assert tenant_redis.incr("counter") == 1
    time.sleep(0.3)
"""


@pytest.mark.backend_independent
def test_two_sessions_at_once_in_one_checkout(
    pytester: pytest.Pytester, box: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DRIVEOPS_ENV_NAME")  # as a developer runs it: no name given
    pytester.makepyfile(
        test_ide=SLOW_SESSION.format(count=6, label="ide", other="terminal"),
        test_terminal=SLOW_SESSION.format(count=6, label="terminal", other="ide"),
    )
    base = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"]
    first = subprocess.Popen(
        [*base, "-k", "ide"], cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    second = subprocess.run(
        [*base, "-k", "terminal"], cwd=pytester.path, capture_output=True, text=True, check=False, timeout=600
    )
    out_first, _ = first.communicate(timeout=600)
    assert first.returncode == 0, out_first
    assert second.returncode == 0, second.stdout + second.stderr
    assert "6 passed" in out_first and "6 passed" in second.stdout
    assert box.leftovers() == []  # each session removed its own environment


def test_reset_and_realm_resets_stay_out_of_other_processes_copies(box: Sandbox) -> None:
    from driveops_env.restore import TenantCopy

    env = Environment.up(settings=box.settings(tenants="acme", services="keycloak,postgres,redis"))
    try:
        gw0 = TenantCopy(env.state, "acme", "gw0", env.settings)
        gw0.make()
        client = env.handle(gw0.record).redis.connect()
        client.set("work_in_progress", "1")
        env.tenant("acme").reset()  # the CLI's reset: the tenant's own data
        assert client.get("work_in_progress") == "1"  # the worker's copy is untouched
        gw0.restore(("keycloak",))  # what @pytest.mark.keycloak_reset does: a realm of the copy's own
        assert gw0.record.stores["keycloak"]["realm"] == "acme_gw0"
        assert env.tenant("acme").token()  # the tenant's realm still serves everyone else
        assert env.handle(gw0.record).token()
        gw0.drop()
        client.close()
    finally:
        env.down()
    assert box.leftovers() == []


@pytest.mark.backend_independent
def test_factory_tenants_apply_at_collection(pytester: pytest.Pytester, box: Sandbox) -> None:
    pytester.makeconftest(
        """
        from driveops_env.pytest_plugin import driveops_env_factory
        driveops_env = driveops_env_factory(tenants=["gamma", "delta"], services="postgres")
        """
    )
    pytester.makepyfile(
        test_all="""
        import pytest

        @pytest.mark.all_tenants
        def test_each(tenant, tenant_pg):
            assert tenant_pg.execute("SELECT slug FROM tenants").fetchone() == (tenant.slug,)
        """
    )
    result = run(pytester, "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_each?gamma?*PASSED*", "*test_each?delta?*PASSED*"])


@pytest.mark.backend_independent
def test_attach_is_not_ownership(box: Sandbox) -> None:
    assert box.cli("up", "--tenants", "acme").returncode == 0
    with Environment.up(settings=box.settings(tenants="acme")) as env:
        assert not env.owned
    assert box.cli("status").returncode == 0  # still running: the CLI started it
    with Environment.attach(box.name, settings=box.settings()) as env:
        assert env.tenants == ["acme"]
    assert box.cli("status").returncode == 0
    assert box.cli("down").returncode == 0


def test_smoke_checks_the_environment_up_started_without_a_name(
    pytester: pytest.Pytester, box: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service repository whose pyproject names its tenants: `up` with fewer services, then smoke
    with the flag before a path checks that environment (3 checks, not the 4 of one the session would
    start with the repository's services), and starts nothing of its own."""
    monkeypatch.delenv("DRIVEOPS_ENV_NAME")
    pytester.makepyprojecttoml('[tool.driveops-env]\ntenants = ["acme"]\n')
    (pytester.path / "tests").mkdir()
    (pytester.path / "tests" / "test_service.py").write_text("def test_service():\n    pass\n")
    up = box.cli("up", "--name", "default", "--tenants", "acme", "--services", "postgres,redis")
    assert up.returncode == 0, up.stderr
    port = box.state_of("default")["tenants"]["acme"]["stores"]["postgres"]["port"]
    result = run(pytester, "-v", "--driveops-smoke", "tests")
    result.assert_outcomes(passed=3)  # postgres, redis, tenant-validation of the running environment
    result.stdout.fnmatch_lines(["*smoke?acme-redis?*PASSED*"])
    assert "smoke[acme-mongodb]" not in result.stdout.str()
    assert box.state_of("default")["tenants"]["acme"]["stores"]["postgres"]["port"] == port  # the same one, still up
    assert [p.stem for p in Path(box.state_dir).glob("*.json")] == ["default"]  # no second environment
    # a configured true is undone by the --no- form: the repository's own tests run
    pytester.makeini("[pytest]\ndriveops_smoke = true\n")
    result = run(pytester, "-v", "--no-driveops-smoke", "tests")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_service*PASSED*"])
    assert box.cli("down", "--name", "default").returncode == 0


def test_a_restore_skips_what_nothing_wrote_and_restores_what_anything_wrote(
    box: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from driveops_env import restore

    env = Environment.up(settings=box.settings(tenants="acme"))
    try:
        inline = env.settings.replace(mongo_restore_pool=0, redis_restore_pool=0)  # pools: test_restore_pool
        copy = restore.TenantCopy(env.state, "acme", "main", inline)
        copy.make()
        from driveops_env.services.mongo import admin as mongo

        refills: list[str] = []
        real = mongo.restore

        def counted(*args: object, **kwargs: object) -> None:
            refills.append("mongo")
            real(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(mongo, "restore", counted)
        copy.restore(("mongo", "redis"))
        told_exactly = any(r.extra.get("mechanism") == "PLAIN" and r.depends_on for r in env.state.services.values())
        assert refills == ([] if told_exactly else ["mongo"])  # FerretDB: nothing written, nothing refilled
        handle = env.handle(copy.record)
        database = handle.mongo.connect()
        database.audit_events.update_one({}, {"$set": {"changed": True}})  # same count, other content
        client = handle.redis.connect()
        client.set("anything", "1")
        copy.restore(("mongo", "redis"))
        assert refills[-1:] == ["mongo"]
        assert database.audit_events.count_documents({"changed": True}) == 0 and client.get("anything") is None
        database.client.close()
        client.close()
        copy.drop()
    finally:
        env.down()


STORES_SEEN = """
import json, pathlib, pytest
from driveops_env.plugin import copies

SEEN = {}
_real = copies.TenantCopies.prepare_test

def _spy(self, slug, stores, reset_realm):
    SEEN[len(SEEN)] = list(stores)
    pathlib.Path("stores.json").write_text(json.dumps(SEEN))
    return _real(self, slug, stores, reset_realm)

copies.TenantCopies.prepare_test = _spy

@pytest.fixture
def via_handle(tenant):
    return tenant.slug
"""


def test_each_test_restores_only_the_stores_its_fixtures_reach(pytester: pytest.Pytester, box: Sandbox) -> None:
    pytester.makeconftest(STORES_SEEN)
    pytester.makepyfile(
        test_stores="""
        def test_1_pg(tenant_pg):
            tenant_pg.execute("SELECT 1")

        def test_2_redis_and_token(tenant_redis, tenant_token):
            tenant_redis.ping()

        def test_3_handle_through_a_fixture(via_handle):
            assert via_handle == "acme"
        """
    )
    result = run(pytester, "-p", "no:randomly")
    result.assert_outcomes(passed=3)
    import json

    seen = json.loads((pytester.path / "stores.json").read_text())
    assert seen == {"0": ["postgres"], "1": ["redis"], "2": ["postgres", "mongo", "redis"]}


@pytest.mark.backend_independent  # realm names and a template's clients: the same on any backend
def test_a_tenant_named_like_a_copy_realm_does_not_collide(pytester: pytest.Pytester, box: Sandbox) -> None:
    """`acme-main` beside `acme`: acme's per-process realm copy is `acme_main` (a slug has no "_")."""
    box.services = "keycloak,postgres"
    pytester.makepyfile(
        test_realms="""
        import pytest

        @pytest.mark.tenant("acme")
        @pytest.mark.keycloak_reset
        def test_acme_own_realm(tenant):
            assert tenant.keycloak.realm == "acme_main"
            assert tenant.keycloak.validate(tenant.token())["tenant"] == "acme"

        @pytest.mark.tenant("acme-main")
        def test_acme_main(tenant):
            assert tenant.keycloak.realm == "acme-main"
            assert tenant.keycloak.validate(tenant.token())["tenant"] == "acme-main"
        """
    )
    result = run(pytester, "--driveops-services", "keycloak,postgres", "--driveops-tenants", "acme,acme-main")
    result.assert_outcomes(passed=2)
