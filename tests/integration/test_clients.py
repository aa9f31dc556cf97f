"""The printed values, fed as printed to the standard clients nobody here wrote: psql, redis-cli, a
MongoDB driver, PyJWT validating a token the way ASP.NET Core's JwtBearer does."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import jwt
import pymongo
import pytest
import redis

from tests.helpers import Sandbox, make_sandbox

pytestmark = pytest.mark.integration
ACME_ID = "550e8400-e29b-41d4-a716-446655440001"


@pytest.fixture(scope="module", params=["dedicated", "shared"])
def up_box(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """A running environment of acme and beta; with Keycloak in dedicated mode."""
    services = "keycloak,postgres,mongo,redis" if request.param == "dedicated" else "postgres,mongo,redis"
    with make_sandbox(tmp_path_factory.mktemp(request.param), services=services) as box:
        up = box.cli("up", "--tenants", "acme,beta", "--isolation", request.param)
        assert up.returncode == 0, up.stderr
        try:
            yield box
        finally:
            box.cli("down")


def shell(box: Sandbox, script: str, tenant: str = "acme") -> str:
    """``script`` run by bash after ``eval "$(driveops-env env --format shell)"``, as the README says."""
    prog = f"{sys.executable} -m driveops_env.cli"
    full = f'set -e; eval "$({prog} env --tenant {tenant} --format shell)"; {script}'
    result = subprocess.run(["bash", "-c", full], capture_output=True, text=True, env=box.env(), check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_psql_takes_the_dsn_and_the_pg_variables(up_box: Sandbox) -> None:
    assert shell(up_box, 'psql "$DRIVEOPS_POSTGRES_DSN" -tAc "SELECT slug FROM tenants"') == "acme"
    assert shell(up_box, 'psql -tAc "SELECT current_user"') == "driveops_acme"  # PGHOST, PGUSER, ...
    assert shell(up_box, 'psql "$DRIVEOPS_POSTGRES_DSN" -tAc "SELECT slug FROM tenants"', "beta") == "beta"


def test_redis_cli_takes_the_url(up_box: Sandbox) -> None:
    got = shell(up_box, 'redis-cli --no-auth-warning -u "$DRIVEOPS_REDIS_URL" HGET acme:config tenant_id')
    assert got == ACME_ID
    assert shell(up_box, 'redis-cli --no-auth-warning -u "$DRIVEOPS_REDIS_URL" PING') == "PONG"


def test_a_mongodb_driver_takes_the_uri(up_box: Sandbox) -> None:
    uri = shell(up_box, 'printf %s "$DRIVEOPS_MONGO_URI"')
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)
    try:
        assert client.get_default_database().intervention_notes.count_documents({}) == 3
    finally:
        client.close()


def test_dotnet_redis_string_and_status_json_carry_working_credentials(up_box: Sandbox) -> None:
    lines = up_box.cli("env", "--tenant", "acme", "--format", "dotnet").stdout.splitlines()
    dotnet = dict(line.split("=", 1) for line in lines)
    endpoint, *fields = dotnet["ConnectionStrings__Redis"].split(",")  # StackExchange.Redis's form
    host, port = endpoint.rsplit(":", 1)
    kv = dict(f.split("=", 1) for f in fields)
    client = redis.Redis(host=host, port=int(port), username=kv.get("user"), password=kv["password"])
    assert client.ping()
    client.close()
    status = json.loads(up_box.cli("status", "--json", "--show-secrets").stdout)
    acme = status["tenants"]["acme"]
    assert acme["postgres"]["password"] != "****" and "****" not in acme["postgres"]["dsn"]
    masked = json.loads(up_box.cli("status", "--json").stdout)
    assert masked["tenants"]["acme"]["postgres"]["password"] == "****"
    assert {s["name"] for s in status["services"]} == set(up_box.state()["services"])


def _jwt_bearer(token: str, authority: str, audience: str) -> dict[str, object]:
    """What JwtBearer checks: signature by a key of the authority's JWKS, issuer, audience, lifetime."""
    keys = jwt.PyJWKClient(f"{authority}/protocol/openid-connect/certs")
    key = keys.get_signing_key_from_jwt(token).key
    return dict(
        jwt.decode(
            token,
            key,
            algorithms=["RS256"],
            issuer=authority,
            audience=audience,
            options={"require": ["exp", "iss", "aud"]},
        )
    )


@pytest.mark.parametrize("up_box", ["dedicated"], indirect=True)  # the environment that runs Keycloak
def test_tokens_validate_like_jwt_bearer_with_the_printed_keys(up_box: Sandbox) -> None:
    lines = up_box.cli("env", "--tenant", "acme", "--format", "dotnet").stdout.splitlines()
    dotnet = dict(line.split("=", 1) for line in lines)
    authority, audience = dotnet["Keycloak__Authority"], dotnet["Keycloak__Audience"]
    assert audience == "driveops-api"
    user_token = up_box.cli("token", "--tenant", "acme", "--user", "mechanic@acme.test").stdout.strip()
    service = up_box.cli("token", "--tenant", "acme", "--client-credentials").stdout.strip()
    for token in (user_token, service):
        claims = _jwt_bearer(token, authority, audience)
        assert claims["tenant_id"] == ACME_ID
    claims = _jwt_bearer(user_token, authority, audience)
    assert "mechanic" in claims["roles"]  # type: ignore[operator]  # where [Authorize(Roles=...)] looks
    beta_lines = up_box.cli("env", "--tenant", "beta", "--format", "dotnet").stdout.splitlines()
    beta = dict(line.split("=", 1) for line in beta_lines)
    with pytest.raises((jwt.InvalidTokenError, jwt.PyJWKClientError)):  # beta's API refuses acme's token
        _jwt_bearer(user_token, beta["Keycloak__Authority"], audience)
