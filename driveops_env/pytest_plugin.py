"""pytest plugin of driveops-env (entry point ``pytest11``): tenant fixtures for service repositories.

Fixtures: ``driveops_env`` (session, an ``Environment``), ``tenant`` (a ``TenantHandle`` on this test
process's own copies of the tenant's stores), and each service's own (connections, tokens, their async
variants for pytest-asyncio or anyio tests; the README's table lists the built-in ones), a plugged-in
service's likewise.

Markers: ``@pytest.mark.tenant("beta")`` picks the tenant (default: the first configured tenant, else
the catalogue's first), ``@pytest.mark.all_tenants`` runs the test once per tenant, and a service's
reset marker gives the test a store of this process's own, made afresh.

Every test sees the seeded state of the stores it uses (see :mod:`driveops_env.restore`).  The parts:
:mod:`driveops_env.plugin.settings` (options), :mod:`~driveops_env.plugin.session` (the environment),
:mod:`~driveops_env.plugin.copies` (per-process copies), :mod:`~driveops_env.plugin.fixtures`,
:mod:`~driveops_env.plugin.smoke`.  Nothing starts at import or configure time.  Turn the plugin off
with ``-p no:driveops_env``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Generator
from typing import Any

import pytest

from driveops_env.plugin import settings as plugin_settings
from driveops_env.plugin.copies import TenantCopies, stores_of
from driveops_env.plugin.fixtures import (
    COPIES,
    SESSION,
    _driveops_copy,
    _driveops_handle,
    _driveops_slug,
    copies_of,
    driveops_env,
    driveops_env_factory,
    driveops_network,
    factory_of,
    marked_slug,
    service_fixtures,
    session_of,
    tenant,
)
from driveops_env.plugin.session import SessionEnvironment, check_usage
from driveops_env.plugin.smoke import smoke_items
from driveops_env.services import registry
from driveops_env.services.capabilities import ResetOnMarker

__all__ = [
    "_driveops_copy",
    "_driveops_handle",
    "_driveops_slug",
    "driveops_env",
    "driveops_env_factory",
    "driveops_network",
    "tenant",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    plugin_settings.add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "tenant(slug): run the test against tenant `slug` (default: the first configured tenant)"
    )
    config.addinivalue_line("markers", "all_tenants: run the test once per tenant")
    session = SessionEnvironment.from_config(config)
    services = registry.every(session.base)
    for service in services.values():
        if isinstance(service, ResetOnMarker):
            config.addinivalue_line("markers", f"{service.reset_marker}: give the test a {service.name} store afresh")
    config.pluginmanager.register(service_fixtures(services), "driveops_env.service_fixtures")
    session.progress = _reporter(config, session.worker)
    config.stash[SESSION] = session
    config.stash[COPIES] = TenantCopies(session)


def _reporter(config: pytest.Config, worker: str | None) -> Callable[[str], None]:
    def report(message: str) -> None:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        capture = config.pluginmanager.get_plugin("capturemanager")
        if reporter is None or worker is not None:
            return
        if capture is not None:  # show progress live, not in the test's captured output
            with capture.global_and_fixture_disabled():
                reporter.write_line(f"driveops-env: {message.strip()}")
        else:
            reporter.write_line(f"driveops-env: {message.strip()}")

    return report


def pytest_report_header(config: pytest.Config) -> str | None:
    session = config.stash.get(SESSION, None)
    if session is None:
        return None
    s = session.settings
    configured = ", ".join(s.tenants) if session.tenants_configured else "from the tests' markers"
    return f"driveops-env: environment {s.name}, backend {s.backend}, isolation {s.isolation}, tenants {configured}"


# --- xdist: the controller owns the environment -------------------------------------------------


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller hook: workers start the environment on behalf of the controller process."""
    node.workerinput["driveops_controller_pid"] = os.getpid()
    node.workerinput["driveops_session"] = session_of(node.config).session


def pytest_sessionfinish(session: pytest.Session) -> None:
    env_session = session.config.stash.get(SESSION, None)
    if env_session is None:
        return
    try:
        copies_of(session.config).drop()
    finally:  # the environment is released (or stopped) whatever became of the copies
        is_controller = env_session.worker is None and getattr(session.config.option, "numprocesses", None)
        if is_controller:
            env_session.controller_finish()
        else:
            env_session.finish()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    copies = terminalreporter.config.stash.get(COPIES, None)
    line = copies.summary() if copies is not None else None
    if line:
        terminalreporter.write_line(line)


# --- tenants from markers and factories -------------------------------------------------------------


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    session = session_of(metafunc.config)
    factory = factory_of(metafunc._arg2fixturedefs.get("driveops_env"), metafunc.config.rootpath)
    if factory is not None:
        session.factory = factory
    if metafunc.definition.get_closest_marker("all_tenants") and "_driveops_slug" in metafunc.fixturenames:
        tenants = session.all_tenants()
        metafunc.parametrize("_driveops_slug", tenants, indirect=True, ids=tenants)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    env_session = session_of(config)
    check_usage(env_session)
    wanted = [slug for slug in (marked_slug(item) for item in items) if slug]
    catalogue = env_session.catalogue()
    env_session.wanted_tenants = sorted(
        dict.fromkeys(wanted), key=lambda s: (catalogue.index(s) if s in catalogue else len(catalogue), s)
    )
    if env_session.plugin.smoke:
        items[:] = smoke_items(session, env_session)


# --- failure reports --------------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    if report.failed and call.when in ("setup", "call") and "_driveops_copy" in getattr(item, "fixturenames", ()):
        kept = _keep(item)
        report.sections.append(("driveops-env", "\n".join([*kept, _failure_section(item, call)])))
    if call.when == "teardown" and COPIES in item.config.stash:
        copies_of(item.config).next_test()
    return report


def _keep(item: pytest.Item) -> list[str]:
    """With --driveops-keep-failed, the copies the failed test used, kept (not restored): how to reach
    each, or why none was kept."""
    session = session_of(item.config)
    if not session.plugin.keep_failed or COPIES not in item.config.stash:
        return []
    try:
        copies = copies_of(item.config).keep(item.nodeid)
    except Exception as exc:  # the failure is reported whatever became of its copies
        return [f"its copies were not kept: {exc}"]
    name = session.env.name if session.env else session.settings.name
    lines = []
    for copy in copies:
        until = time.strftime("%Y-%m-%d %H:%M", time.localtime(copy.expires))
        how = f"driveops-env env --name {name} --copy {copy.id}"
        lines.append(f"kept copy {copy.id} of tenant {copy.tenant!r} until {until}: {how}")
    return lines


def _failure_section(item: pytest.Item, call: pytest.CallInfo[None]) -> str:
    session = session_of(item.config)
    slug = marked_slug(item) or session.default_tenant()
    name = session.env.name if session.env else session.settings.name
    backend = session.env.backend if session.env else "?"
    services = registry.every(session.settings)
    store = next(iter(stores_of(list(getattr(item, "fixturenames", ())), services)), "<service>")
    lines = [
        f"tenant {slug!r} of environment {name!r} (backend {backend})",
        f"inspect: driveops-env status --name {name}; driveops-env logs {store} --name {name} --tenant {slug}",
    ]
    if session.plugin.keep or not session.exclusive():
        lines.append(f"the environment stays up: driveops-env env --name {name} --tenant {slug}")
    else:
        lines.append("rerun with --driveops-keep to keep the environment up after the session")
    if call.excinfo is not None:
        for service in services.values():
            said = service.explain(str(call.excinfo.value))
            if said is not None:
                lines.insert(0, f"{service.title} {said.what}" + (f"; what to do: {said.hint}" if said.hint else ""))
    return "\n".join(lines)
