"""``pytest --driveops-smoke``: the ``driveops-env check`` health checks as the session's tests, one
test per tenant and check, named ``smoke[<tenant>-<check>]`` so a pipeline's report groups them.

Which environment: the one ``--driveops-from`` describes; else the one the ``DRIVEOPS_*`` variables of
``driveops-env env`` describe; else the one ``driveops-env up`` runs (the ``--driveops-reuse`` lookup:
``--driveops-name``, default ``default``), left running; else one this session starts.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from driveops_env import health, orchestrator
from driveops_env.errors import DriveopsEnvError
from driveops_env.state import TenantRecord


class SmokeFailure(Exception):
    pass


class SmokeItem(pytest.Item):
    """One health check of one tenant, run as a test."""

    def __init__(self, *, check: str, slug: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check
        self.slug = slug

    def runtest(self) -> None:
        from driveops_env.pytest_plugin import session_of

        record = tenant_record(session_of(self.config), self.slug)
        result = health.run_check(self.check, record)
        if not result.ok:
            message = f"check {self.check} failed for tenant {self.slug}: {result.detail}"
            if result.hint:
                message += f"\n  what to do: {result.hint}"
            raise SmokeFailure(message)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, SmokeFailure):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[str, int, str]:
        return f"driveops-env/{self.slug}", 0, f"smoke check {self.check} [{self.slug}]"


def env_record() -> TenantRecord | None:
    if "DRIVEOPS_TENANT" in os.environ and "DRIVEOPS_TENANT_ID" in os.environ:
        from driveops_env import envvars

        return envvars.record_from_plain(os.environ)
    return None


def tenant_record(session: Any, slug: str) -> TenantRecord:
    from_env = env_record()
    if from_env is not None and session.plugin.from_file is None:
        return from_env
    record: TenantRecord = session.environment().state.tenants[slug]
    return record


def smoke_items(pytest_session: pytest.Session, session: Any) -> list[pytest.Item]:
    """One item per tenant and check of the environment smoke mode checks."""
    plan: list[tuple[str, list[str]]]
    from_env = env_record()
    if session.plugin.from_file is not None:
        state = session.environment().state
        plan = [(t.slug, health.checks_for(t)) for t in state.tenants.values()]
    elif from_env is not None:
        plan = [(from_env.slug, health.checks_for(from_env))]
    else:
        lookup = session.settings  # the name `driveops-env up` uses unless one is configured
        if not session.name_given():
            lookup = lookup.replace(name="default")
        try:
            state = orchestrator.load_running(lookup, lookup.name)
        except DriveopsEnvError:
            services = session.settings.services
            plan = [(slug, [c for c in health.TENANT_CHECKS if planned(c, services)]) for slug in session.tenants()]
        else:
            session.plugin = _reusing(session.plugin)
            session.base = session.base.replace(name=lookup.name)
            plan = [(t.slug, health.checks_for(t)) for t in state.tenants.values()]
    # node ids `driveops-env/<tenant>::smoke[<tenant>-<check>]`: a JUnit report's classname is then
    # `driveops-env.<tenant>`, and a pipeline's test report groups the checks by tenant
    return [
        SmokeItem.from_parent(
            pytest_session,
            name=f"smoke[{slug}-{check}]",
            nodeid=f"driveops-env/{slug}::smoke[{slug}-{check}]",
            check=check,
            slug=slug,
        )
        for slug, checks in plan
        for check in checks
    ]


def _reusing(plugin: Any) -> Any:
    from dataclasses import replace

    return replace(plugin, reuse=True)


def planned(check: str, services: tuple[str, ...]) -> bool:
    needs = {"postgres": "postgres", "mongodb": "mongo", "redis": "redis", "keycloak": "keycloak",
             "tenant-validation": "postgres"}  # fmt: skip
    return needs[check] in services
