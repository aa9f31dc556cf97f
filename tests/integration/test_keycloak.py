"""One real Keycloak with a realm per tenant: tokens, cross-realm rejection, check, reset, failures."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import requests
from jwcrypto import jwk, jws
from jwcrypto.common import JWKeyNotFound

from driveops_env import Environment, options
from driveops_env.errors import ServiceError
from driveops_env.services.keycloak import admin as keycloak
from driveops_env.state import ServiceRecord
from tests.helpers import REPO, Sandbox, make_sandbox, userinfo_status

pytestmark = pytest.mark.integration

ACME_ID = "550e8400-e29b-41d4-a716-446655440001"


@pytest.fixture(scope="module")
def kc_box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with make_sandbox(tmp_path_factory.mktemp("kc"), services="keycloak,postgres,redis") as box:
        yield box


@pytest.fixture(scope="module")
def env(kc_box: Sandbox) -> Iterator[Environment]:
    environment = Environment.up(settings=kc_box.settings(tenants="acme,beta"))
    try:
        yield environment
    finally:
        environment.down()


def _verify_signature(base_url: str, realm: str, token: str) -> None:
    """Check the token's signature against the realm's published keys (raises if it does not verify)."""
    jwks = requests.get(f"{base_url}/realms/{realm}/protocol/openid-connect/certs", timeout=10).json()
    keys = jwk.JWKSet.from_json(json.dumps(jwks))
    signed = jws.JWS()
    signed.deserialize(token)
    signed.verify(keys)


def test_token_names_the_tenant_and_its_realm(env: Environment) -> None:
    acme = env.tenant("acme")
    token = acme.token("admin@acme.test")
    claims = keycloak.claims(token)
    assert claims["iss"].endswith("/realms/acme")
    assert claims["iss"] == acme.keycloak.issuer
    assert claims["tenant_id"] == ACME_ID
    assert claims["tenant"] == "acme"
    assert claims["sub"]  # the basic client scope is there
    assert "admin" in claims["realm_access"]["roles"]
    mechanic = keycloak.claims(acme.token("mechanic@acme.test"))
    assert "mechanic" in mechanic["realm_access"]["roles"]
    assert "admin" not in mechanic["realm_access"]["roles"]
    _verify_signature(acme.keycloak.base_url, "acme", token)


def test_an_acme_token_is_rejected_by_beta(env: Environment) -> None:
    acme, beta = env.tenant("acme"), env.tenant("beta")
    token = acme.token()
    assert userinfo_status(acme.keycloak, token) == 200
    assert userinfo_status(beta.keycloak, token) == 401
    # beta's keys do not verify it (none of them is the key that signed it)
    with pytest.raises((jws.InvalidJWSSignature, JWKeyNotFound)):
        _verify_signature(beta.keycloak.base_url, "beta", token)
    # and beta's own users cannot log in to acme
    with pytest.raises(ServiceError, match="invalid_grant"):
        acme.keycloak.token("admin@beta.test", beta.keycloak.users["admin@beta.test"])


@pytest.mark.backend_independent
def test_a_wrong_password_is_a_clear_error(env: Environment) -> None:
    with pytest.raises(ServiceError) as info:
        env.tenant("acme").token("admin@acme.test", "not-the-password")
    text = str(info.value)
    assert "admin@acme.test" in text and "realm 'acme'" in text and "Invalid user credentials" in text


def test_realm_contents(env: Environment) -> None:
    admin = env.tenant("acme").keycloak.admin()
    realm = admin.get_realm("acme")
    assert realm["displayName"] == "Acme Garage"
    roles = {r["name"] for r in admin.get_realm_roles()}
    assert {"admin", "manager", "mechanic", "viewer"} <= roles
    clients = {c["clientId"]: c for c in admin.get_clients()}
    web = clients["driveops-web"]
    assert web["publicClient"] is True and web["attributes"]["pkce.code.challenge.method"] == "S256"
    assert clients["driveops-api"]["serviceAccountsEnabled"] is True
    users = {u["username"]: u for u in admin.get_users()}
    assert set(users) >= {"admin@acme.test", "manager@acme.test", "mechanic@acme.test", "viewer@acme.test"}
    assert users["viewer@acme.test"]["email"] == "viewer@acme.test"


def test_cli_token_env_check_and_reset(env: Environment, kc_box: Sandbox) -> None:
    raw = kc_box.cli("token", "--tenant", "acme", "--user", "manager@acme.test")
    assert raw.returncode == 0, raw.stderr
    assert raw.stdout.count(".") == 2 and len(raw.stdout.split()) == 1  # the token alone
    decoded = json.loads(kc_box.cli("token", "--tenant", "beta", "--decode").stdout)
    assert decoded["tenant"] == "beta" and decoded["iss"].endswith("/realms/beta")
    wrong = kc_box.cli("token", "--tenant", "acme", "--user", "admin@acme.test", "--password", "nope")
    assert wrong.returncode == 1 and "Invalid user credentials" in wrong.stderr

    dotnet = dict(
        line.split("=", 1) for line in kc_box.cli("env", "--tenant", "acme", "--format", "dotnet").stdout.split()
    )
    assert dotnet["Keycloak__Authority"] == env.tenant("acme").keycloak.issuer
    assert dotnet["Keycloak__ClientId"] == "driveops-api"
    assert dotnet["Keycloak__ClientSecret"] == env.tenant("acme").keycloak.client_secret

    check = kc_box.cli("check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count(" ok ") == 8  # 4 checks x 2 tenants

    # deactivate acme's tenant row: check fails and names the tenant and the check
    with env.tenant("acme").connect_postgres(autocommit=True) as conn:
        conn.execute("UPDATE tenants SET active = false")
    failed = kc_box.cli("check", "--json")
    assert failed.returncode == 1
    results = {(r["tenant"], r["name"]): r for r in json.loads(failed.stdout)}
    assert not results[("acme", "tenant-validation")]["ok"]
    assert "not active" in results[("acme", "tenant-validation")]["detail"]
    assert results[("beta", "tenant-validation")]["ok"]
    assert "check tenant-validation failed for tenant acme" in failed.stderr

    # a user added to the realm and the row change are both undone by reset
    admin = env.tenant("acme").keycloak.admin()
    admin.create_user(
        {
            "username": "intruder@acme.test",
            "email": "intruder@acme.test",
            "enabled": True,
            "firstName": "I",
            "lastName": "N",
        }
    )
    reset = kc_box.cli("reset", "--tenant", "acme")
    assert reset.returncode == 0, reset.stderr
    assert "reset keycloak" in reset.stderr and "reset postgres" in reset.stderr
    assert kc_box.cli("check").returncode == 0
    usernames = {u["username"] for u in env.tenant("acme").keycloak.admin().get_users()}
    assert "intruder@acme.test" not in usernames and "admin@acme.test" in usernames
    # the client secret printed before the reset still works
    assert env.tenant("acme").token()


def test_status_reports_keycloak(env: Environment) -> None:
    results = {r.name: r for r in env.status()}
    assert results["keycloak"].ok


@pytest.mark.backend_independent
def test_broken_realm_template_exits_2_and_starts_nothing(kc_sandbox: Sandbox, tmp_path: Path) -> None:
    realms = tmp_path / "realms"
    realms.mkdir()
    (realms / "tenant-realm.json").write_text('{"realm": "{{ realm }}", "enabled": true,\n  "x": "{{ nope }}"}')
    result = kc_sandbox.cli("up", "--tenants", "acme", "--realms-dir", str(realms))
    assert result.returncode == 2
    assert "tenant-realm.json line 2: unknown placeholder {{nope}}" in result.stderr
    assert "tenant acme" in result.stderr
    (realms / "tenant-realm.json").write_text('{"realm": "{{ realm }}",')
    result = kc_sandbox.cli("up", "--tenants", "acme", "--realms-dir", str(realms))
    assert result.returncode == 2 and "not valid JSON" in result.stderr and "tenant acme" in result.stderr
    assert kc_sandbox.leftovers() == []


def test_keycloak_that_cannot_start_reports_its_log_and_leaves_nothing(kc_sandbox: Sandbox) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = kc_sandbox.cli("up", "--tenants", "acme", "--keycloak-port", str(port), timeout=600)
    assert result.returncode == 1, result.stderr
    assert "(service keycloak)" in result.stderr
    if kc_sandbox.backend == "local":  # the server itself fails to bind; its log says so
        assert "keycloak exited during start-up" in result.stderr
        assert "last log lines" in result.stderr and "Address already in use" in result.stderr
    else:  # the engine refuses to publish the port before the server starts
        assert "cannot start a container" in result.stderr and "already" in result.stderr.lower()
    assert kc_sandbox.leftovers() == []


def test_seeded_rows_cannot_be_read_across_tenants_with_keycloak_running(env: Environment) -> None:
    acme, beta = env.tenant("acme"), env.tenant("beta")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(
            f"host=127.0.0.1 port={beta.postgres.port} dbname={beta.postgres.database} "
            f"user={acme.postgres.user} password={acme.postgres.password} connect_timeout=5"
        ).close()


def test_keycloak_data_in_postgres(kc_sandbox: Sandbox) -> None:
    env = Environment.up(
        settings=kc_sandbox.settings(tenants="acme", services="keycloak,postgres", keycloak_db="postgres")
    )
    try:
        assert "postgres.keycloak" in env.state.services
        kc_db = env.state.services["postgres.keycloak"]
        from driveops_env.services.postgres import admin as pg

        with psycopg.connect(pg.admin_conninfo(kc_db, "keycloak")) as conn:  # Keycloak's own tables are there
            tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert {"realm", "user_entity", "client"} <= tables
        assert keycloak.claims(env.tenant("acme").token())["tenant_id"] == ACME_ID
    finally:
        env.down()
    assert kc_sandbox.leftovers() == []


def keycloak_stand_in(version: str) -> str:
    """The docker stand-in image of a Keycloak version provisioning does not prepare (it prepares the
    configured one only): fetched and built here, once per cache, under a lock (xdist)."""
    from filelock import FileLock

    cache = options.resolve(pyproject={}).cache_dir
    with FileLock(str(cache / f".keycloak-stand-in-{version}.lock")):
        fetch = subprocess.run(
            [
                sys.executable,
                "-m",
                "driveops_env.cli",
                "prepare",
                "--backend",
                "local",
                "--services",
                "keycloak",
                "--keycloak-version",
                version,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert fetch.returncode == 0, fetch.stderr
        built = subprocess.run(
            [str(REPO / "scripts" / "build-images"), "--keycloak-only", version],
            capture_output=True,
            text=True,
            check=False,
        )
        assert built.returncode == 0, built.stderr
    return built.stdout.strip().splitlines()[-1]


def test_the_production_version_23_serves_realms_users_and_tenant_tokens(tmp_path: Path) -> None:
    """The guide's production Keycloak (23.0): no management port, KEYCLOAK_ADMIN*, build options refused
    at start: the same realm, users and tenant_id claim as the default version."""
    with make_sandbox(tmp_path, services="keycloak,postgres") as box:
        image = {"image_keycloak": keycloak_stand_in("23.0.7")} if box.backend == "docker" else {}
        settings = box.settings(tenants="acme", keycloak_version="23.0.7", **image)
        with Environment.up(settings=settings) as env:
            acme = env.tenant("acme")
            assert "management" not in env.state.services["keycloak"].ports  # health on the main port
            token = acme.token("mechanic@acme.test")
            claims = acme.keycloak.validate(token)  # signature, issuer, audience, expiry
            assert claims["tenant_id"] == ACME_ID and "mechanic" in claims["roles"]
            assert all(r.ok for r in env.check())
        assert box.leftovers() == []


@pytest.mark.backend_independent  # realm names and a template's clients: the same on any backend
def test_a_templates_other_confidential_client_keeps_its_secret(kc_sandbox: Sandbox, tmp_path: Path) -> None:
    # a snapshot holds every client's secret masked; each gets its rendered one back at `up`
    realm = json.loads((Path(__file__).parents[2] / "realms" / "tenant-realm.json").read_text())
    realm["clients"].append(
        {
            "clientId": "reports-job",
            "enabled": True,
            "protocol": "openid-connect",
            "publicClient": False,
            "clientAuthenticatorType": "client-secret",
            "secret": "reports-{{ realm }}-fixed",
            "serviceAccountsEnabled": True,
            "standardFlowEnabled": False,
        }
    )
    realms = tmp_path / "realms"
    realms.mkdir()
    (realms / "tenant-realm.json").write_text(json.dumps(realm))
    env = Environment.up(settings=kc_sandbox.settings(tenants="acme", realms_dir=str(realms)))
    try:
        base = env.tenant("acme").keycloak
        token = requests.post(
            f"{base.base_url}/realms/acme/protocol/openid-connect/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "reports-job",
                "client_secret": "reports-acme-fixed",
            },
            timeout=30,
        )
        assert token.status_code == 200, token.text
        assert env.tenant("acme").token()  # the API client's generated secret too
    finally:
        env.down()


@pytest.mark.local_only  # containers: test_docker checks the engine's CPU shares
def test_keycloak_weighs_more_than_the_stores_while_they_contend(env: Environment) -> None:
    if not Path("/proc/self/autogroup").exists():
        pytest.skip("this kernel has no scheduler autogroups: the weight has nothing to set")

    def nice(pid: int | None) -> int:
        return int(Path(f"/proc/{pid}/autogroup").read_text().split()[-1])  # "/autogroup-12 nice -6"

    def pid(record: ServiceRecord) -> int | None:
        return record.process.pid if record.process else None

    assert nice(pid(env.state.services["keycloak"])) == (-16 if os.geteuid() == 0 else 0)  # only root raises it
    assert {nice(pid(r)) for r in env.state.services.values() if r.key != "keycloak"} == {0}
