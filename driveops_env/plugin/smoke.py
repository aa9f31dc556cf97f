"""``pytest --driveops-smoke``: the ``driveops-env check`` health checks as the session's tests, one
test per tenant and check, named ``smoke[<tenant>-<check>]`` so a pipeline's report groups them.

Which environment: the one ``--driveops-from`` describes; else the one the ``DRIVEOPS_*`` variables of
``driveops-env env`` describe; else the one ``driveops-env up`` runs (the ``--driveops-reuse`` lookup:
``--driveops-name``, default ``default``), left running; else one this session starts.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import pytest

from driveops_env import envvars, health
from driveops_env.environment import Environment
from driveops_env.errors import DriveopsEnvError
from driveops_env.plugin.session import SessionEnvironment
from driveops_env.services import registry
from driveops_env.state import TenantRecord


class SmokeFailure(Exception):
    pass


class SmokeItem(pytest.Item):
    """One health check of one tenant, run as a test."""

    def __init__(self, *, check: str, slug: str, env_session: SessionEnvironment, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check
        self.slug = slug
        self.env_session = env_session

    def runtest(self) -> None:
        services = registry.every(self.env_session.settings)
        result = health.run_check(self.check, tenant_record(self.env_session, self.slug), services)
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


def env_record(session: SessionEnvironment) -> TenantRecord | None:
    if "DRIVEOPS_TENANT" in os.environ and "DRIVEOPS_TENANT_ID" in os.environ:
        return envvars.record_from_plain(os.environ, registry.every(session.settings))
    return None


def tenant_record(session: SessionEnvironment, slug: str) -> TenantRecord:
    from_env = env_record(session)
    if from_env is not None and session.plugin.from_file is None:
        return from_env
    return session.environment().state.tenants[slug]


def _plan(session: SessionEnvironment) -> list[tuple[str, list[str]]]:
    """(tenant, its checks) of the environment smoke mode checks."""
    services = registry.every(session.settings)
    if session.plugin.from_file is not None:
        state = session.environment().state
        return [(t.slug, health.checks_for(t, services)) for t in state.tenants.values()]
    from_env = env_record(session)
    if from_env is not None:
        return [(from_env.slug, health.checks_for(from_env, services))]
    lookup = session.settings  # the name `driveops-env up` uses unless one is configured
    if not session.name_given():
        lookup = lookup.replace(name="default")
    try:
        env = Environment.attach(lookup.name, settings=lookup)
    except DriveopsEnvError:
        checks = health.planned(services, session.settings.services)
        return [(slug, checks) for slug in session.tenants()]
    session.plugin = replace(session.plugin, reuse=True)
    session.base = session.base.replace(name=lookup.name)
    return [(t.slug, health.checks_for(t, services)) for t in env.state.tenants.values()]


def smoke_items(pytest_session: pytest.Session, session: SessionEnvironment) -> list[pytest.Item]:
    """One item per tenant and check.  Node ids ``driveops-env/<tenant>::smoke[<tenant>-<check>]``: a
    JUnit report's classname is then ``driveops-env.<tenant>``, and a pipeline's report groups the
    checks by tenant."""
    return [
        SmokeItem.from_parent(
            pytest_session,
            name=f"smoke[{slug}-{check}]",
            nodeid=f"driveops-env/{slug}::smoke[{slug}-{check}]",
            check=check,
            slug=slug,
            env_session=session,
        )
        for slug, checks in _plan(session)
        for check in checks
    ]
