"""The fixtures: ``driveops_env`` (the session's environment), ``tenant`` (a handle on this process's
copies of the tenant's stores), and what each service hands out (its ``fixtures``: connections,
tokens, async variants; a plugged-in service's own likewise), built from the registry when the session
is configured.  A conftest's ``driveops_env_factory(...)``
returns a ``driveops_env`` fixture that carries its own options."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from driveops_env.environment import Environment, TenantHandle
from driveops_env.plugin.copies import TenantCopies, stores_of
from driveops_env.plugin.session import SessionEnvironment
from driveops_env.plugin.settings import Factory
from driveops_env.restore import TenantCopy
from driveops_env.services.base import Fixture, Service
from driveops_env.services.capabilities import ResetOnMarker

SESSION = pytest.StashKey[SessionEnvironment]()
COPIES = pytest.StashKey[TenantCopies]()
FACTORY = "driveops_factory"  # the attribute of a factory's fixture that carries its options


def session_of(config: pytest.Config) -> SessionEnvironment:
    return config.stash[SESSION]


def copies_of(config: pytest.Config) -> TenantCopies:
    return config.stash[COPIES]


def marked_slug(item: Any) -> str | None:
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "_driveops_slug" in callspec.params:
        return str(callspec.params["_driveops_slug"])
    marker = item.get_closest_marker("tenant")
    return str(marker.args[0]) if marker and marker.args else None


def factory_of(fixturedefs: Any, rootpath: Path) -> Factory | None:
    """The options of the ``driveops_env`` fixture a test gets, if a conftest's factory made it; its
    relative paths anchored at that conftest's folder."""
    for fixturedef in reversed(list(fixturedefs or ())):
        found = getattr(fixturedef.func, FACTORY, None)
        if isinstance(found, Factory):
            return Factory(found.overrides, rootpath / str(fixturedef.baseid or ""))
    return None


@pytest.fixture(scope="session")
def driveops_env(request: pytest.FixtureRequest) -> Environment:
    """The session's environment (started, or attached to with --driveops-reuse)."""
    return session_of(request.config).environment()


@pytest.fixture(scope="session")
def driveops_network(driveops_env: Environment) -> Any:
    """The environment's docker network as testcontainers' ``Network``: your own containers join it with
    ``DockerContainer(image).with_network(driveops_network)`` and reach the stores by their names there
    (``tenant.env_vars(network=True)``).  The docker backend only."""
    return driveops_env.docker_network()


@pytest.fixture
def _driveops_slug(request: pytest.FixtureRequest, driveops_env: Environment) -> str:
    """The test's tenant, resolved once: parametrized, marked, or the default tenant."""
    if hasattr(request, "param"):
        return str(request.param)
    return marked_slug(request.node) or session_of(request.config).default_tenant()


@pytest.fixture
def _driveops_copy(request: pytest.FixtureRequest, _driveops_slug: str, driveops_env: Environment) -> TenantCopy:
    running = set(driveops_env.settings.services)  # a registered service this environment runs no server of
    services = {name: service for name, service in driveops_env.services().items() if name in running}
    stores = stores_of(list(request.node.fixturenames), services)
    fresh = tuple(
        name
        for name, service in services.items()
        if isinstance(service, ResetOnMarker) and request.node.get_closest_marker(service.reset_marker)
    )
    return copies_of(request.config).prepare_test(_driveops_slug, stores, fresh)


@pytest.fixture
def _driveops_handle(_driveops_copy: TenantCopy, driveops_env: Environment) -> TenantHandle:
    # the store fixtures build on this, not on ``tenant``: ``tenant`` in a test's fixture closure then
    # means the test (or one of its fixtures) asked for the whole handle, so every store is restored
    return driveops_env.handle(_driveops_copy.record)


@pytest.fixture
def tenant(_driveops_handle: TenantHandle) -> TenantHandle:
    """The tenant's handle, pointing at this test process's own copies of its stores."""
    return _driveops_handle


def service_fixture(service: Service[Any, Any], spec: Fixture) -> Callable[..., Any]:
    """A pytest fixture of ``spec``: its value made from the test's tenant handle; a failure to make it
    fails the test naming the tenant, the servers that are down and how to heal them."""

    def failed(request: pytest.FixtureRequest, handle: TenantHandle, exc: Exception) -> None:
        copies_of(request.config).fail_with_servers(handle.slug, f"cannot connect to {service.name}: {exc}")

    if spec.is_async:

        async def async_fixture(request: pytest.FixtureRequest, _driveops_handle: TenantHandle) -> AsyncIterator[Any]:
            values = spec.make(_driveops_handle)
            assert inspect.isasyncgen(values)
            async for value in values:
                yield value

        chosen: Callable[..., Any] = async_fixture
    else:

        def sync_fixture(request: pytest.FixtureRequest, _driveops_handle: TenantHandle) -> Iterator[Any]:
            values = spec.make(_driveops_handle)
            assert inspect.isgenerator(values)
            try:
                first = next(values)
            except Exception as exc:  # the server refused or is down
                failed(request, _driveops_handle, exc)
                raise
            yield first
            for _ in values:  # its clean-up
                pass

        chosen = sync_fixture
    chosen.__name__, chosen.__doc__ = spec.name, spec.doc
    return pytest.fixture(name=spec.name)(chosen)


def service_fixtures(services: dict[str, Service[Any, Any]]) -> ModuleType:
    """Every service's fixtures, as a plugin module pytest registers (it reads a module's attributes)."""
    module = ModuleType("driveops_env.plugin.service_fixtures", "the services' fixtures")
    for service in services.values():
        for spec in service.fixtures():
            setattr(module, spec.name, service_fixture(service, spec))
    return module


def driveops_env_factory(**overrides: Any) -> Any:
    """A session fixture for a service repository's own environment, e.g. in its conftest.py::

        from driveops_env.pytest_plugin import driveops_env_factory
        driveops_env = driveops_env_factory(tenants="acme,gamma", seeds_dir="tests/seeds",
                                            realms_dir="tests/realms")

    Keyword names are the options' names; values are what the command line would take (lists too).
    Relative paths are anchored at the conftest's folder.  The options apply from collection on
    (``all_tenants`` runs over the factory's tenants)."""
    factory = Factory(overrides)
    factory.check()

    @pytest.fixture(scope="session")
    def _fixture(request: pytest.FixtureRequest) -> Environment:
        return session_of(request.config).environment()

    setattr(_fixture, FACTORY, factory)
    setattr(getattr(_fixture, "__wrapped__", _fixture), FACTORY, factory)
    return _fixture
