"""Health: live state of each server (``status``: its service's probe, a real request as its
administrator) and the production guide's checks per tenant (``check``: each service's own checks, as
the tenant).  A failed check says what answered and what to do."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from driveops_env.backends import Backend
from driveops_env.diagnosis import diagnose
from driveops_env.services.base import Check, Service
from driveops_env.services.capabilities import IssuesTokens
from driveops_env.state import EnvState, ServiceRecord, TenantRecord


@dataclass(frozen=True)
class CheckResult:
    name: str
    tenant: str | None
    ok: bool
    detail: str
    elapsed: float
    hint: str | None = None


class TenantView:
    """A tenant as its checks see it: its stores' access records, and a token where a service issues them."""

    def __init__(self, record: TenantRecord, services: Mapping[str, Service[Any, Any]]) -> None:
        self.record = record
        self.services = services
        self.slug = record.slug
        self.tenant_id = record.tenant_id

    def has(self, service: str) -> bool:
        return service in self.record.stores and service in self.services

    def access(self, service: str) -> Any:
        return self.services[service].load(self.record.stores[service])

    def token_claims(self) -> tuple[str, dict[str, Any]] | None:
        """A seeded user's token of the tenant, decoded and validated: (user, claims), if any service
        issues tokens for it."""
        for name, service in self.services.items():
            if isinstance(service, IssuesTokens) and self.has(name):
                found = self.access(name)
                users = list(getattr(found, "users", {}) or {})
                if users:
                    return users[0], service.claims(found, service.token(found, users[0], None))
        return None


def _run(
    name: str, tenant: str | None, check: Callable[[], str], services: Mapping[str, Service[Any, Any]]
) -> CheckResult:
    started = time.monotonic()
    hint = None
    try:
        detail = check()
        ok = True
    except Exception as exc:  # a check reports any failure as its result
        detail, hint = diagnose(exc, [s.explain for s in services.values()])
        ok = False
    return CheckResult(name, tenant, ok, detail, time.monotonic() - started, hint)


def _probe(record: ServiceRecord, backend: Backend, services: Mapping[str, Service[Any, Any]]) -> str:
    if not backend.is_running(record):
        raise RuntimeError("not running (process or container gone)")
    services[record.kind].probe(record)
    return f"{record.host}:{record.port}"


def service_status(state: EnvState, backend: Backend, services: Mapping[str, Service[Any, Any]]) -> list[CheckResult]:
    records = list(state.services.values())
    with ThreadPoolExecutor(max_workers=max(1, len(records))) as pool:
        return list(pool.map(lambda r: _run(r.key, r.tenant, lambda: _probe(r, backend, services), services), records))


def checks_of(services: Mapping[str, Service[Any, Any]]) -> dict[str, tuple[str, Check]]:
    """Every check by name, with the service whose store it checks, in the registry's order."""
    return {name: (service.name, check) for service in services.values() for name, check in service.checks().items()}


def checks_for(record: TenantRecord, services: Mapping[str, Service[Any, Any]]) -> list[str]:
    """The checks that apply to a tenant: those of the services it has a store of."""
    return [name for name, (service, _) in checks_of(services).items() if service in record.stores]


def planned(services: Mapping[str, Service[Any, Any]], running: Sequence[str]) -> list[str]:
    """The checks an environment running ``running`` services will have."""
    return [name for name, (service, _) in checks_of(services).items() if service in running]


def run_check(name: str, record: TenantRecord, services: Mapping[str, Service[Any, Any]]) -> CheckResult:
    _, check = checks_of(services)[name]
    view = TenantView(record, services)
    return _run(name, record.slug, lambda: check(view), services)


def tenant_checks(state: EnvState, services: Mapping[str, Service[Any, Any]]) -> list[CheckResult]:
    jobs = [(name, tenant) for tenant in state.tenants.values() for name in checks_for(tenant, services)]
    with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
        return list(pool.map(lambda job: run_check(job[0], job[1], services), jobs))
