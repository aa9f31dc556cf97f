"""Health checks: live state of each server (``status``) and the production guide's checks per tenant
(``check``).  Every check is a real request; a failed check says what answered."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

from driveops_env.backends import Backend
from driveops_env.services import keycloak, mongo, postgres, redis
from driveops_env.state import EnvState, ServiceRecord, TenantRecord


@dataclass(frozen=True)
class CheckResult:
    name: str
    tenant: str | None
    ok: bool
    detail: str
    elapsed: float
    hint: str | None = None


# What a failure's text means, and what to do: (pattern, what it is, hint)
NO_SPACE = "no space left on device"
_DIAGNOSES = (
    (
        re.compile(r"No space left on device|could not extend file|could not write to file|disk full", re.I),
        NO_SPACE,
        "free disk space where the servers keep their data, then try again",
    ),
    (
        re.compile(r"password authentication failed|Authentication failed|WRONGPASS|invalid username-password", re.I),
        "authentication failed",
        "the credentials are not the environment's: re-read them with `driveops-env env`",
    ),
    (
        re.compile(r"Connection refused|connection timed out|No servers found|Error 111|timed out", re.I),
        "no answer",
        "the server is down: `driveops-env status`, then `driveops-env up` heals the environment",
    ),
    (re.compile(r"does not exist", re.I), "missing", "`driveops-env reset --tenant <slug>` re-creates it"),
)


def diagnose(exc: BaseException) -> tuple[str, str | None]:
    """A failure as one line a reader understands, and what to do.  Our own errors are already said in
    words.  FerretDB answers a refused login as ``InternalError`` (code 1) with Go stack frames: the
    part around what matched is kept, cut at word boundaries."""
    from driveops_env.errors import DriveopsEnvError

    if isinstance(exc, DriveopsEnvError):
        return exc.message, exc.hint
    text = " ".join(str(exc).split())
    from driveops_env.services.mongo_differences import explain

    difference = explain(text)
    if difference is not None:
        return f"not supported by FerretDB (MongoDB here): {difference.what}", difference.instead
    for pattern, what, hint in _DIAGNOSES:
        core = pattern.search(text)
        if core is not None:
            return f"{what}: {around(text, core.start(), core.end())}", hint
    first = (str(exc).splitlines() or [type(exc).__name__])[0]
    return around(first, 0, 0, before=0, after=300), None


def around(text: str, start: int, end: int, *, before: int = 60, after: int = 120) -> str:
    """``text[start:end]`` with up to ``before``/``after`` characters around it, cut between words."""
    left = max(0, start - before)
    if left > 0:
        space = text.find(" ", left, start)
        left = space + 1 if space >= 0 else start
    right = min(len(text), end + after)
    if right < len(text):
        space = text.rfind(" ", end, right)
        right = space if space >= 0 else end
    clipped = text[left:right].strip()
    return ("... " if left > 0 else "") + clipped + (" ..." if right < len(text) else "")


def _run(name: str, tenant: str | None, check: Callable[[], str]) -> CheckResult:
    started = time.monotonic()
    hint = None
    try:
        detail = check()
        ok = True
    except Exception as exc:  # a check reports any failure as its result
        detail, hint = diagnose(exc)
        ok = False
    return CheckResult(name, tenant, ok, detail, time.monotonic() - started, hint)


def _probe_server(record: ServiceRecord, backend: Backend) -> str:
    if not backend.is_running(record):
        raise RuntimeError("not running (process or container gone)")
    if record.kind == "postgres":
        postgres.probe(postgres.admin_conninfo(record))
    elif record.kind == "redis":
        redis.probe(record.host, record.port, None, record.admin_password)
    elif record.kind == "mongo":
        mongo.probe(mongo.admin_access(record))
    elif record.kind == "keycloak":
        keycloak.probe_ready(record)
    return f"{record.host}:{record.port}"


def service_status(state: EnvState, backend: Backend) -> list[CheckResult]:
    records = list(state.services.values())
    with ThreadPoolExecutor(max_workers=max(1, len(records))) as pool:
        return list(pool.map(lambda r: _run(r.key, r.tenant, lambda: _probe_server(r, backend)), records))


def _check_postgres(tenant: TenantRecord) -> str:
    assert tenant.postgres is not None
    postgres.probe(tenant.postgres.conninfo)
    return f"{tenant.postgres.database} answers a query as {tenant.postgres.user}"


def _check_redis(tenant: TenantRecord) -> str:
    assert tenant.redis is not None
    r = tenant.redis
    redis.probe(r.host, r.port, r.username, r.password)
    return "PING answered PONG"


def _check_mongo(tenant: TenantRecord) -> str:
    assert tenant.mongo is not None
    conn = mongo.client(tenant.mongo)
    try:
        conn[tenant.mongo.database].command("ping")
        names = conn[tenant.mongo.database].list_collection_names()
    finally:
        conn.close()
    return f"{tenant.mongo.database} answers as {tenant.mongo.user} ({len(names)} collection(s))"


def _first_user_token(tenant: TenantRecord) -> tuple[str, str]:
    assert tenant.keycloak is not None
    if not tenant.keycloak.users:
        raise RuntimeError(f"realm {tenant.realm} has no seeded user to log in with")
    user = next(iter(tenant.keycloak.users))
    return user, str(keycloak.user_token(tenant.keycloak, user)["access_token"])


def _check_keycloak(tenant: TenantRecord) -> str:
    assert tenant.keycloak is not None
    if not keycloak.realm_exists(tenant.keycloak.base_url, tenant.keycloak.realm):
        raise RuntimeError(f"realm {tenant.keycloak.realm!r} does not exist")
    user, _ = _first_user_token(tenant)
    return f"realm {tenant.keycloak.realm} present, token obtained for {user}"


def _check_tenant_row(tenant: TenantRecord) -> str:
    import psycopg

    assert tenant.postgres is not None
    with psycopg.connect(tenant.postgres.conninfo) as conn:
        row = conn.execute("SELECT id::text, active FROM tenants WHERE id = %s", (tenant.tenant_id,)).fetchone()
    if row is None:
        raise RuntimeError(f"no row for tenant id {tenant.tenant_id} in the tenants table")
    if not row[1]:
        raise RuntimeError(f"tenant {tenant.tenant_id} is not active")
    if tenant.keycloak is None:
        return f"tenant {row[0]} exists and is active"
    user, token = _first_user_token(tenant)
    claimed = keycloak.claims(token).get("tenant_id")
    if claimed != row[0]:
        raise RuntimeError(f"the token of {user} carries tenant_id {claimed!r}, the database says {row[0]!r}")
    return f"tenant {row[0]} exists, is active, and matches the token's tenant_id"


# The production guide's checks, in report order: name -> (applies to the tenant?, check).
TENANT_CHECKS: dict[str, tuple[Callable[[TenantRecord], bool], Callable[[TenantRecord], str]]] = {
    "postgres": (lambda t: t.postgres is not None, _check_postgres),
    "mongodb": (lambda t: t.mongo is not None, _check_mongo),
    "redis": (lambda t: t.redis is not None, _check_redis),
    "keycloak": (lambda t: t.keycloak is not None, _check_keycloak),
    "tenant-validation": (lambda t: t.postgres is not None, _check_tenant_row),
}


def checks_for(tenant: TenantRecord) -> list[str]:
    return [name for name, (applies, _) in TENANT_CHECKS.items() if applies(tenant)]


def run_check(name: str, tenant: TenantRecord) -> CheckResult:
    return _run(name, tenant.slug, partial(TENANT_CHECKS[name][1], tenant))


def tenant_checks(state: EnvState) -> list[CheckResult]:
    jobs = [(name, tenant) for tenant in state.tenants.values() for name in checks_for(tenant)]
    with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
        return list(pool.map(lambda job: run_check(*job), jobs))
