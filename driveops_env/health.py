"""Health checks: live state of each server (``status``) and the production guide's checks per tenant
(``check``).  Every check is a real request; a failed check says what answered."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

from driveops_env.backends import Backend
from driveops_env.services import postgres, redis
from driveops_env.state import EnvState, ServiceRecord, TenantRecord


@dataclass(frozen=True)
class CheckResult:
    name: str
    tenant: str | None
    ok: bool
    detail: str
    elapsed: float


def _run(name: str, tenant: str | None, check: Callable[[], str]) -> CheckResult:
    started = time.monotonic()
    try:
        detail = check()
        ok = True
    except Exception as exc:  # a check reports any failure as its result
        detail = (str(exc).splitlines() or [type(exc).__name__])[0]
        ok = False
    return CheckResult(name, tenant, ok, detail, time.monotonic() - started)


def _probe_server(record: ServiceRecord, backend: Backend) -> str:
    if not backend.is_running(record):
        raise RuntimeError("not running (process or container gone)")
    if record.kind == "postgres":
        postgres.probe(
            postgres.conninfo(record.host, record.port, record.admin_user, record.admin_password, "postgres")
        )
    elif record.kind == "redis":
        redis.probe(record.host, record.port, None, record.admin_password)
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


def _check_tenant_row(tenant: TenantRecord) -> str:
    import psycopg

    assert tenant.postgres is not None
    with psycopg.connect(tenant.postgres.conninfo) as conn:
        row = conn.execute("SELECT active FROM tenants WHERE id = %s", (tenant.tenant_id,)).fetchone()
    if row is None:
        raise RuntimeError(f"no row for tenant id {tenant.tenant_id} in the tenants table")
    if not row[0]:
        raise RuntimeError(f"tenant {tenant.tenant_id} is not active")
    return f"tenant {tenant.tenant_id} exists and is active"


def tenant_checks(state: EnvState) -> list[CheckResult]:
    jobs: list[tuple[str, str, Callable[[], str]]] = []
    for tenant in state.tenants.values():
        if tenant.postgres:
            jobs.append(("postgres", tenant.slug, partial(_check_postgres, tenant)))
        if tenant.redis:
            jobs.append(("redis", tenant.slug, partial(_check_redis, tenant)))
        if tenant.postgres:
            jobs.append(("tenant-validation", tenant.slug, partial(_check_tenant_row, tenant)))
    with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
        return list(pool.map(lambda job: _run(*job), jobs))
