"""pytest plugin of driveops-env (entry point ``pytest11``): tenant fixtures for service repositories.

Fixtures: ``driveops_env`` (session, an ``Environment``), ``tenant`` (a ``TenantHandle`` on this test
process's own copies of the tenant's stores), ``tenant_pg`` (psycopg connection), ``tenant_mongo``
(pymongo ``Database``), ``tenant_redis`` (redis-py client), ``tenant_keycloak`` (python-keycloak
admin of the realm), ``tenant_token`` (user -> access token); async variants ``tenant_pg_async``,
``tenant_redis_async``, ``tenant_mongo_async`` for pytest-asyncio or anyio tests.

Markers: ``@pytest.mark.tenant("beta")`` picks the tenant (default: the first configured tenant, else
the catalogue's first), ``@pytest.mark.all_tenants`` runs the test once per tenant,
``@pytest.mark.keycloak_reset`` gives the test a freshly created realm of this process's own.

Every test sees the seeded state of the stores it uses (see :mod:`driveops_env.isolation`).  The
parts: :mod:`driveops_env.plugin.settings` (options), :mod:`~driveops_env.plugin.session` (the
environment), :mod:`~driveops_env.plugin.copies` (per-process copies), :mod:`~driveops_env.plugin.smoke`.
Nothing starts at import or configure time.  Turn the plugin off with ``-p no:driveops_env``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from typing import Any

import pytest

from driveops_env.environment import Environment, TenantHandle
from driveops_env.isolation import TenantCopy
from driveops_env.plugin import settings as plugin_settings
from driveops_env.plugin.copies import TenantCopies, stores_of
from driveops_env.plugin.session import SessionEnvironment, check_usage
from driveops_env.plugin.smoke import smoke_items

SESSION = pytest.StashKey[SessionEnvironment]()
COPIES = pytest.StashKey[TenantCopies]()


def session_of(config: pytest.Config) -> SessionEnvironment:
    return config.stash[SESSION]


def copies_of(config: pytest.Config) -> TenantCopies:
    return config.stash[COPIES]


def pytest_addoption(parser: pytest.Parser) -> None:
    plugin_settings.add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "tenant(slug): run the test against tenant `slug` (default: the first configured tenant)"
    )
    config.addinivalue_line("markers", "all_tenants: run the test once per tenant")
    config.addinivalue_line("markers", "keycloak_reset: give the test a freshly created realm of its own")
    session = SessionEnvironment.from_config(config)
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


# --- tenants from markers ---------------------------------------------------------------------------


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("all_tenants") and "_driveops_slug" in metafunc.fixturenames:
        tenants = session_of(metafunc.config).all_tenants()
        metafunc.parametrize("_driveops_slug", tenants, indirect=True, ids=tenants)


def _marked_slug(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "_driveops_slug" in callspec.params:
        return str(callspec.params["_driveops_slug"])
    marker = item.get_closest_marker("tenant")
    return str(marker.args[0]) if marker and marker.args else None


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    env_session = session_of(config)
    check_usage(env_session)
    wanted = [slug for slug in (_marked_slug(item) for item in items) if slug]
    catalogue = env_session.catalogue()
    env_session.wanted_tenants = sorted(
        dict.fromkeys(wanted), key=lambda s: (catalogue.index(s) if s in catalogue else len(catalogue), s)
    )
    if env_session.plugin.smoke:
        items[:] = smoke_items(session, env_session)


# --- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def driveops_env(request: pytest.FixtureRequest) -> Environment:
    """The session's environment (started, or attached to with --driveops-reuse)."""
    return session_of(request.config).environment()


@pytest.fixture
def _driveops_slug(request: pytest.FixtureRequest) -> str:
    """The test's tenant, resolved once: parametrized, marked, or the default tenant."""
    if hasattr(request, "param"):
        return str(request.param)
    return _marked_slug(request.node) or session_of(request.config).default_tenant()


@pytest.fixture
def _driveops_copy(request: pytest.FixtureRequest, _driveops_slug: str, driveops_env: Environment) -> TenantCopy:
    stores = stores_of(list(request.node.fixturenames))
    reset_realm = request.node.get_closest_marker("keycloak_reset") is not None
    return copies_of(request.config).prepare_test(_driveops_slug, stores, reset_realm)


@pytest.fixture
def _driveops_handle(_driveops_copy: TenantCopy, driveops_env: Environment) -> TenantHandle:
    # the store fixtures build on this, not on ``tenant``: ``tenant`` in a test's fixture closure then
    # means the test (or one of its fixtures) asked for the whole handle, so every store is restored
    return driveops_env.handle(_driveops_copy.record)


@pytest.fixture
def tenant(_driveops_handle: TenantHandle) -> TenantHandle:
    """The tenant's handle, pointing at this test process's own copies of its stores."""
    return _driveops_handle


@pytest.fixture
def tenant_pg(request: pytest.FixtureRequest, _driveops_handle: TenantHandle) -> Iterator[Any]:
    """A psycopg connection to the tenant's database, as the tenant's role."""
    import psycopg

    try:
        conn = _driveops_handle.postgres.connect()
    except psycopg.OperationalError as exc:
        copies_of(request.config).fail_with_servers(_driveops_handle.slug, f"cannot connect to PostgreSQL: {exc}")
    with conn:
        yield conn


@pytest.fixture
def tenant_mongo(_driveops_handle: TenantHandle) -> Iterator[Any]:
    """A pymongo ``Database`` of the tenant, as the tenant's user."""
    database = _driveops_handle.mongo.connect()
    try:
        yield database
    finally:
        database.client.close()


@pytest.fixture
def tenant_redis(_driveops_handle: TenantHandle) -> Iterator[Any]:
    """A redis-py client with the tenant's credentials, on its own copy (see ``tenant.redis``)."""
    client = _driveops_handle.redis.connect()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
async def tenant_pg_async(_driveops_handle: TenantHandle) -> AsyncIterator[Any]:
    """A psycopg ``AsyncConnection`` (needs pytest-asyncio or anyio in the test session)."""
    conn = await _driveops_handle.postgres.connect_async()
    async with conn:
        yield conn


@pytest.fixture
async def tenant_redis_async(_driveops_handle: TenantHandle) -> AsyncIterator[Any]:
    """A ``redis.asyncio`` client (needs pytest-asyncio or anyio in the test session)."""
    client = _driveops_handle.redis.connect_async()
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def tenant_mongo_async(_driveops_handle: TenantHandle) -> AsyncIterator[Any]:
    """A database of pymongo's ``AsyncMongoClient`` (needs pytest-asyncio or anyio)."""
    database = _driveops_handle.mongo.connect_async()
    try:
        yield database
    finally:
        await database.client.close()


@pytest.fixture
def tenant_keycloak(_driveops_handle: TenantHandle) -> Any:
    """python-keycloak ``KeycloakAdmin`` on the tenant's realm."""
    return _driveops_handle.keycloak.admin()


@pytest.fixture
def tenant_token(_driveops_handle: TenantHandle) -> Callable[..., str]:
    """``tenant_token("admin@acme.test")`` -> an access token (seeded password unless given)."""
    return _driveops_handle.token


# --- factories --------------------------------------------------------------------------------------


def driveops_env_factory(**overrides: Any) -> Any:
    """A session fixture for a service repository's own environment, e.g. in its conftest.py::

        from driveops_env.pytest_plugin import driveops_env_factory
        driveops_env = driveops_env_factory(tenants="acme,gamma", seeds_dir="tests/seeds",
                                            realms_dir="tests/realms")

    Keyword names are the options' names; values are what the command line would take (lists too).
    Relative paths are anchored at the conftest's folder.  The options apply from collection on
    (``all_tenants`` runs over the factory's tenants)."""
    plugin_settings.register_factory(overrides)

    @pytest.fixture(scope="session")
    def _fixture(request: pytest.FixtureRequest) -> Environment:
        return session_of(request.config).environment()

    return _fixture


# --- failure reports --------------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    if report.failed and call.when in ("setup", "call") and "_driveops_copy" in getattr(item, "fixturenames", ()):
        session = session_of(item.config)
        slug = _marked_slug(item) or session.default_tenant()
        name = session.env.name if session.env else session.settings.name
        backend = session.env.backend if session.env else "?"
        lines = [
            f"tenant {slug!r} of environment {name!r} (backend {backend})",
            f"inspect: driveops-env status --name {name}; driveops-env logs postgres --name {name} --tenant {slug}",
        ]
        if session.plugin.keep or not session.exclusive():
            lines.append(f"the environment stays up: driveops-env env --name {name} --tenant {slug}")
        else:
            lines.append("rerun with --driveops-keep to keep the environment up after the session")
        difference = mongo_difference(call)
        if difference is not None:
            lines.insert(0, f"MongoDB difference: FerretDB (the MongoDB server here) does not support "
                            f"{difference.what}; instead: {difference.instead}")  # fmt: skip
        report.sections.append(("driveops-env", "\n".join(lines)))
    return report


def mongo_difference(call: pytest.CallInfo[None]) -> Any:
    """The FerretDB difference a failed test ran into, if its error is one."""
    from driveops_env.services.mongo_differences import explain

    return explain(str(call.excinfo.value)) if call.excinfo is not None else None


__all__ = ["driveops_env_factory"]
