"""A tenant's connection settings as environment variables, and their text formats.

``plain``: DRIVEOPS_* names (and libpq's PG* names) for scripts and tests.
``dotnet``: the configuration keys of the production .NET API (``Section__Key``).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping

from driveops_env.state import TenantRecord

FORMATS = ("dotenv", "json", "shell", "dotnet")


def plain(env_name: str, tenant: TenantRecord) -> dict[str, str]:
    out = {
        "DRIVEOPS_ENV_NAME": env_name,
        "DRIVEOPS_TENANT": tenant.slug,
        "DRIVEOPS_TENANT_ID": tenant.tenant_id,
        "DRIVEOPS_TENANT_NAME": tenant.display_name,
    }
    if tenant.postgres:
        pg = tenant.postgres
        out |= {
            "DRIVEOPS_POSTGRES_DSN": pg.dsn,
            "PGHOST": pg.host,
            "PGPORT": str(pg.port),
            "PGDATABASE": pg.database,
            "PGUSER": pg.user,
            "PGPASSWORD": pg.password,
        }
    if tenant.redis:
        out |= {"DRIVEOPS_REDIS_URL": tenant.redis.url, "DRIVEOPS_REDIS_KEY_PREFIX": tenant.redis.key_prefix}
    if tenant.mongo:
        out |= {"DRIVEOPS_MONGO_URI": tenant.mongo.uri, "DRIVEOPS_MONGO_DATABASE": tenant.mongo.database}
    if tenant.keycloak:
        kc = tenant.keycloak
        out |= {
            "DRIVEOPS_KEYCLOAK_URL": kc.base_url,
            "DRIVEOPS_KEYCLOAK_REALM": kc.realm,
            "DRIVEOPS_KEYCLOAK_ISSUER": kc.issuer,
            "DRIVEOPS_KEYCLOAK_CLIENT_ID": kc.client_id,
            "DRIVEOPS_KEYCLOAK_CLIENT_SECRET": kc.client_secret,
            "DRIVEOPS_KEYCLOAK_WEB_CLIENT_ID": kc.web_client_id,
        }
    return out


def dotnet(tenant: TenantRecord) -> dict[str, str]:
    out: dict[str, str] = {}
    if tenant.postgres:
        pg = tenant.postgres
        out["ConnectionStrings__DefaultConnection"] = (
            f"Host={pg.host};Port={pg.port};Database={pg.database};Username={pg.user};Password={pg.password}"
        )
    if tenant.mongo:
        out["ConnectionStrings__MongoConnection"] = tenant.mongo.uri
    if tenant.redis:
        r = tenant.redis
        text = f"{r.host}:{r.port},password={r.password}"
        if r.username:
            text += f",user={r.username}"
        out["ConnectionStrings__Redis"] = text
    if tenant.keycloak:
        kc = tenant.keycloak
        out["Keycloak__Authority"] = kc.issuer
        out["Keycloak__ClientId"] = kc.client_id
        out["Keycloak__ClientSecret"] = kc.client_secret
    out["TenantId"] = tenant.tenant_id
    return out


def render(variables: Mapping[str, str], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(dict(variables), indent=2)
    if fmt == "shell":
        return "\n".join(f"export {k}={shlex.quote(v)}" for k, v in variables.items())
    if fmt == "dotenv":
        return "\n".join(f"{k}={_dotenv_value(v)}" for k, v in variables.items())
    # dotnet: KEY=VALUE a line, as the issue of the production guide gives them
    return "\n".join(f"{k}={v}" for k, v in variables.items())


def _dotenv_value(value: str) -> str:
    if value and all(c.isalnum() or c in "-_.:/@=,;+" for c in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
