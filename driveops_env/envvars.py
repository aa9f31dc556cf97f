"""A tenant's connection settings as environment variables, and their text formats.

``plain``: DRIVEOPS_* names (and libpq's PG* names) for scripts and tests.
``dotnet``: the configuration keys of the production .NET API (``Section__Key``).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping

from driveops_env.errors import UsageError
from driveops_env.state import KeycloakAccess, MongoAccess, PostgresAccess, RedisAccess, TenantRecord

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
        if kc.users:  # a seeded user, for smoke checks that attach through these variables
            user = next(iter(kc.users))
            out |= {"DRIVEOPS_KEYCLOAK_USER": user, "DRIVEOPS_KEYCLOAK_PASSWORD": kc.users[user]}
    return out


def dotnet(tenant: TenantRecord, metadata_address: str | None = None) -> dict[str, str]:
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
        if r.db:
            text += f",defaultDatabase={r.db}"
        out["ConnectionStrings__Redis"] = text
    if tenant.keycloak:
        kc = tenant.keycloak
        out["Keycloak__Authority"] = kc.issuer
        out["Keycloak__Audience"] = kc.audience
        out["Keycloak__ClientId"] = kc.client_id
        out["Keycloak__ClientSecret"] = kc.client_secret
        out["Keycloak__RequireHttpsMetadata"] = "false"
        if metadata_address:  # inside the environment's network: discovery by name, issuer unchanged
            out["Keycloak__MetadataAddress"] = metadata_address
    out["TenantId"] = tenant.tenant_id
    return out


def render(variables: Mapping[str, str], fmt: str) -> str:
    """``json`` for programs; ``shell`` (``export K='v'``) for ``eval`` and ``sh`` sourcing;
    ``dotenv`` and ``dotnet`` (``K=v``, the value as it is) for ``docker run --env-file``, GitHub's
    ``$GITHUB_ENV`` and python-dotenv with ``interpolate=False``: these keep everything after the first
    ``=`` literally, so nothing is quoted; a value they cannot carry (a line break) is refused."""
    if fmt == "json":
        return json.dumps(dict(variables), indent=2)
    if fmt == "shell":
        return "\n".join(f"export {k}={shlex.quote(v)}" for k, v in variables.items())
    for key, value in variables.items():
        if any(c in value for c in "\n\r\0"):
            raise UsageError(
                f"{key} holds a line break, which the {fmt} format (docker --env-file, $GITHUB_ENV) cannot carry",
                hint="use --format json or --format shell",
            )
    return "\n".join(f"{k}={v}" for k, v in variables.items())


def record_from_plain(environ: Mapping[str, str]) -> TenantRecord:
    """The inverse of ``plain``: a tenant described by the variables ``env`` prints (smoke checks
    against an environment this process did not start)."""
    from urllib.parse import parse_qs, unquote, urlparse

    try:
        slug = environ["DRIVEOPS_TENANT"]
        record = TenantRecord(slug, environ["DRIVEOPS_TENANT_ID"], environ.get("DRIVEOPS_TENANT_NAME", slug), slug)
    except KeyError as exc:
        raise UsageError(
            f"{exc.args[0]} is not set", hint="eval the output of `driveops-env env --format shell`"
        ) from None
    if "PGHOST" in environ and "PGDATABASE" in environ:
        record.postgres = PostgresAccess(
            "postgres", environ["PGHOST"], int(environ.get("PGPORT", "5432")), environ["PGDATABASE"],
            environ.get("PGUSER", ""), environ.get("PGPASSWORD", ""),
        )  # fmt: skip
    if "DRIVEOPS_REDIS_URL" in environ:
        url = urlparse(environ["DRIVEOPS_REDIS_URL"])
        record.redis = RedisAccess(
            "redis", url.hostname or "127.0.0.1", url.port or 6379,
            unquote(url.username) if url.username else None, unquote(url.password or ""),
            environ.get("DRIVEOPS_REDIS_KEY_PREFIX", f"{slug}:"),
        )  # fmt: skip
    if "DRIVEOPS_MONGO_URI" in environ:
        url = urlparse(environ["DRIVEOPS_MONGO_URI"])
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        record.mongo = MongoAccess(
            "mongo", url.hostname or "127.0.0.1", url.port or 27017, url.path.lstrip("/") or slug,
            unquote(url.username or ""), unquote(url.password or ""), query.get("authMechanism"),
            query.get("authSource"),
        )  # fmt: skip
    if "DRIVEOPS_KEYCLOAK_URL" in environ:
        users = {}
        if "DRIVEOPS_KEYCLOAK_USER" in environ:
            users[environ["DRIVEOPS_KEYCLOAK_USER"]] = environ.get("DRIVEOPS_KEYCLOAK_PASSWORD", "")
        record.realm = environ.get("DRIVEOPS_KEYCLOAK_REALM", slug)
        record.keycloak = KeycloakAccess(
            "keycloak", environ["DRIVEOPS_KEYCLOAK_URL"], record.realm,
            environ.get("DRIVEOPS_KEYCLOAK_CLIENT_ID", "driveops-api"),
            environ.get("DRIVEOPS_KEYCLOAK_CLIENT_SECRET", ""),
            environ.get("DRIVEOPS_KEYCLOAK_WEB_CLIENT_ID", "driveops-web"), users,
        )  # fmt: skip
    return record
