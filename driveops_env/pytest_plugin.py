"""pytest plugin of driveops-env (entry point ``pytest11``): tenant fixtures for service repositories.

Fixtures: ``driveops_env`` (session, an ``Environment``), ``tenant`` (a ``TenantHandle`` on this test
process's own copies of the tenant's stores), ``tenant_pg`` (psycopg connection), ``tenant_mongo``
(pymongo ``Database``), ``tenant_redis`` (redis-py client), ``tenant_keycloak`` (python-keycloak
admin of the realm), ``tenant_token`` (user -> access token).

Markers: ``@pytest.mark.tenant("beta")`` picks the tenant (default: the first), ``@pytest.mark.all_tenants``
runs the test once per tenant, ``@pytest.mark.keycloak_reset`` resets the realm before the test.

Every test sees the seeded state of the stores it uses: what an earlier test wrote is undone before
the next test that uses that store (PostgreSQL: database cloned again from the seed template;
MongoDB: seeded collections refilled; Redis: keys under the prefix re-seeded).

With pytest-xdist one environment serves every worker: the first worker to need it starts it (the
others wait on the environment's lock and attach), each worker works on its own copies, and the
controller tears it down once at the end.  Nothing starts at import or configure time.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any, NoReturn

import pytest

from driveops_env import health, options, orchestrator
from driveops_env.environment import Environment, TenantHandle
from driveops_env.errors import DriveopsEnvError, UsageError
from driveops_env.isolation import TenantCopy
from driveops_env.spec import load_catalogue
from driveops_env.state import TenantRecord

PREFIX = "driveops_"


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("use true or false")


PLUGIN_OPTIONS: tuple[options.Option, ...] = (
    options.Option(
        "reuse",
        "Attach to the environment `driveops-env up` started (same --driveops-name, default 'default') and "
        "leave it running; start it, and leave it running, if none runs.",
        _bool, lambda: False, "false", metavar="BOOL",
    ),
    options.Option(
        "keep",
        "Leave the environment running after the session (to inspect it, or to reuse it).",
        _bool, lambda: False, "false", metavar="BOOL",
    ),
    options.Option(
        "smoke",
        "Run the `driveops-env check` health checks as the session's tests, against an environment this "
        "session starts, one running under --driveops-name, or the one the DRIVEOPS_* variables of "
        "`driveops-env env` describe.",
        _bool, lambda: False, "false", metavar="BOOL",
    ),
)  # fmt: skip

ALL_OPTIONS = (*options.OPTIONS, *PLUGIN_OPTIONS)


def plugin_options_table() -> str:
    """The README's table of the plugin's own options."""
    lines = [
        "| plugin option | pytest flag | ini key | environment variable | default | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for option in PLUGIN_OPTIONS:
        lines.append(
            f"| {option.name} | `--driveops-{option.name}` | `{option.ini_key}` | `{option.env_var}` | "
            f"{option.default_doc} | {option.help} |"
        )
    return "\n".join(lines)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(
        "driveops-env", "driveops-env: tenant environments (flags, ini keys, DRIVEOPS_ENV_*)"
    )
    for option in ALL_OPTIONS:
        flag = "--driveops-" + option.name.replace("_", "-")
        kwargs: dict[str, Any] = {"dest": PREFIX + option.name, "default": None, "help": option.help}
        if option in PLUGIN_OPTIONS:
            kwargs |= {"nargs": "?", "const": "true", "metavar": option.metavar}
        else:
            kwargs["metavar"] = option.metavar
        group.addoption(flag, **kwargs)
        parser.addini(option.ini_key, f"{option.help} (default: {option.default_doc})", default=None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "tenant(slug): run the test against tenant `slug` (default: the first)"
    )
    config.addinivalue_line("markers", "all_tenants: run the test once per tenant")
    config.addinivalue_line("markers", "keycloak_reset: reset the tenant's Keycloak realm before the test")
    manager = Manager.from_config(config)
    config.stash[MANAGER] = manager


def _worker(config: pytest.Config) -> str | None:
    workerinput = getattr(config, "workerinput", None)
    return str(workerinput["workerid"]) if workerinput else None


@dataclass
class Manager:
    """The session's environment: resolved options, lazy start/attach, per-tenant copies, teardown."""

    config: pytest.Config
    settings: options.Settings
    reuse: bool
    keep: bool
    smoke: bool
    tenants_configured: bool
    worker: str | None
    controller_pid: int | None
    wanted_tenants: list[str] = field(default_factory=list)
    env: Environment | None = None
    started_here: bool = False
    copies: dict[str, TenantCopy] = field(default_factory=dict)
    dirty: set[tuple[str, str]] = field(default_factory=set)
    restore_times: dict[str, list[float]] = field(default_factory=dict)
    error: str | None = None

    @classmethod
    def from_config(cls, config: pytest.Config) -> Manager:
        ini = {}
        for option in ALL_OPTIONS:
            value = config.getini(option.ini_key)
            if value not in (None, "", []):
                ini[option.name] = value
        cli = {o.name: config.getoption(PREFIX + o.name) for o in ALL_OPTIONS}
        try:
            pyproject = options.read_pyproject_table(config.rootpath)
            plugin = {}
            for option in PLUGIN_OPTIONS:
                raw = cli[option.name]
                source = "cli"
                if raw is None:
                    raw, source = os.environ.get(option.env_var), "env"
                if raw is None:
                    raw, source = ini.get(option.name), "ini"
                plugin[option.name] = option.convert(raw, source) if raw is not None else option.default()
            name_given = cli["name"] is not None or options.OPTIONS_BY_NAME["name"].env_var in os.environ
            name_given = name_given or "name" in pyproject or "name" in ini
            if not name_given:  # a session's own environment, unless it reuses the developer's one
                digest = hashlib.sha256(str(config.rootpath).encode()).hexdigest()[:8]
                cli["name"] = "default" if plugin["reuse"] else f"pytest-{digest}"
            settings = options.resolve(
                cli={o.name: cli[o.name] for o in options.OPTIONS},
                pyproject=pyproject,
                ini={o.name: ini.get(o.name) for o in options.OPTIONS},
            )
        except UsageError as exc:
            raise pytest.UsageError(f"driveops-env: {exc}") from None
        workerinput = getattr(config, "workerinput", None)
        controller = (
            int(workerinput["driveops_controller_pid"])
            if workerinput and "driveops_controller_pid" in workerinput
            else None
        )
        return cls(
            config=config, settings=settings, reuse=plugin["reuse"], keep=plugin["keep"],
            smoke=plugin["smoke"], tenants_configured=settings.sources["tenants"] != "default",
            worker=_worker(config), controller_pid=controller,
        )  # fmt: skip

    # --- the environment ---------------------------------------------------------------------------

    def tenants(self) -> list[str]:
        if self.tenants_configured or not self.wanted_tenants:
            return list(self.settings.tenants) if self.tenants_configured else ["acme"]
        return self.wanted_tenants

    def all_tenants(self) -> list[str]:
        """What ``@pytest.mark.all_tenants`` runs over: the configured tenants, else the catalogue's."""
        if self.tenants_configured:
            return list(self.settings.tenants)
        return list(load_catalogue(self.settings.seeds_dir / "tenants.json")) or ["acme"]

    def environment(self) -> Environment:
        if self.env is not None:
            return self.env
        if self.error is not None:
            pytest.fail(self.error, pytrace=False)
        try:
            self.env = self._start_or_attach()
        except DriveopsEnvError as exc:
            self.error = f"driveops-env could not provide environment {self.settings.name!r}:\n{exc}"
        if self.env is None:
            pytest.fail(self.error or "driveops-env: no environment", pytrace=False)
        return self.env

    def _start_or_attach(self) -> Environment:
        settings = self.settings.replace(tenants=tuple(self.tenants()))
        if self.reuse:
            try:
                env = Environment.attach(settings.name, settings=settings)
            except DriveopsEnvError:
                env = Environment.up(settings=settings, detach=True, progress=self._progress)
            missing = [t for t in settings.tenants if t not in env.tenants]
            if missing:
                raise UsageError(
                    f"the reused environment {env.name!r} has no tenant {', '.join(missing)}",
                    hint=f"restart it: driveops-env up --name {env.name} --tenants "
                    f"{','.join(dict.fromkeys([*env.tenants, *missing]))} --recreate",
                )
            return env
        owner = self.controller_pid or os.getpid()
        env = Environment.up(settings=settings, recreate=True, owner_pid=owner, progress=self._progress)
        self.started_here = True
        return env

    def _progress(self, message: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        if reporter is None or self.worker is not None:
            return
        if capture is not None:  # show progress live, not in the test's captured output
            with capture.global_and_fixture_disabled():
                reporter.write_line(f"driveops-env: {message.strip()}")
        else:
            reporter.write_line(f"driveops-env: {message.strip()}")

    def copy(self, slug: str) -> TenantCopy:
        env = self.environment()
        if slug not in env.tenants:
            pytest.fail(
                f"tenant {slug!r} is not part of environment {env.name!r} "
                f"(tenants: {', '.join(env.tenants)}); "
                "configure it with --driveops-tenants or [tool.driveops-env] tenants",
                pytrace=False,
            )
        if slug not in self.copies:
            self.copies[slug] = TenantCopy(env.state, slug, self.worker)
            self.copies[slug].make()
        return self.copies[slug]

    def prepare_test(self, slug: str, stores: tuple[str, ...], reset_realm: bool) -> TenantCopy:
        """Undo what earlier tests wrote in the stores this test uses."""
        copy = self.copy(slug)
        stale = tuple(s for s in stores if (slug, s) in self.dirty)
        if reset_realm:
            stale += ("keycloak",)
        if stale:
            try:
                timings = copy.restore(stale)
            except Exception as exc:  # a server of the tenant may be gone: say which
                self.fail_with_servers(slug, f"restoring {', '.join(stale)} failed: {exc}")
            for store, seconds in timings.items():
                self.restore_times.setdefault(store, []).append(seconds)
        self.dirty.update((slug, s) for s in stores)
        return copy

    def fail_with_servers(self, slug: str, what: str) -> NoReturn:
        """Fail the test naming the tenant, the servers that are down and how to heal them."""
        env = self.environment()
        down = [r.name for r in env.status() if not r.ok and (r.tenant in (slug, None))]
        name = env.name
        message = f"driveops-env: tenant {slug!r} of environment {name!r}: {what}"
        if down:
            message += (
                f"\n  server(s) down: {', '.join(down)}"
                f"\n  inspect: driveops-env logs {down[0].split('.')[0]} --name {name} --tenant {slug}"
                f"\n  heal: driveops-env up --name {name} (recreates an environment with a dead server)"
            )
        pytest.fail(message, pytrace=False)

    def finish(self) -> None:
        if self.env is None:
            return
        if self.reuse or self.keep:  # the environment outlives the session: drop our worker copies
            for copy in self.copies.values():
                copy.drop()
        if self.worker is not None or self.reuse:
            return
        if self.keep:
            orchestrator.release(self.settings, self.env.name)
            self._progress(
                f"environment {self.env.name!r} kept running (driveops-env down --name {self.env.name})"
            )
        elif self.started_here:
            self.env.down()


MANAGER = pytest.StashKey[Manager]()


def manager_of(config: pytest.Config) -> Manager:
    return config.stash[MANAGER]


# --- xdist: the controller owns the environment -------------------------------------------------


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller hook: workers start the environment on behalf of the controller process."""
    node.workerinput["driveops_controller_pid"] = os.getpid()


def pytest_sessionfinish(session: pytest.Session) -> None:
    manager = session.config.stash.get(MANAGER, None)
    if manager is None:
        return
    is_controller = manager.worker is None and getattr(session.config.option, "numprocesses", None)
    if is_controller and not manager.reuse:
        _controller_finish(manager)
    else:
        manager.finish()


def _controller_finish(manager: Manager) -> None:
    """After every worker is done: down the environment the workers started for us (or hand it over)."""
    try:
        state = orchestrator.load_running(manager.settings, manager.settings.name)
    except DriveopsEnvError:
        return
    if state.owner_pid != os.getpid():
        return
    if manager.keep:
        orchestrator.release(manager.settings, state.name)
    else:
        orchestrator.down(manager.settings, state.name)


# --- tenants from markers ---------------------------------------------------------------------------


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("all_tenants") and "_driveops_slug" in metafunc.fixturenames:
        tenants = manager_of(metafunc.config).all_tenants()
        metafunc.parametrize("_driveops_slug", tenants, indirect=True, ids=tenants)


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    manager = manager_of(config)
    wanted: list[str] = []
    for item in items:
        marker = item.get_closest_marker("tenant")
        if marker and marker.args:
            wanted.append(str(marker.args[0]))
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "_driveops_slug" in callspec.params:
            wanted.append(str(callspec.params["_driveops_slug"]))
    catalogue = list(load_catalogue(manager.settings.seeds_dir / "tenants.json"))
    ordered = sorted(
        dict.fromkeys(wanted), key=lambda s: (catalogue.index(s) if s in catalogue else len(catalogue), s)
    )
    manager.wanted_tenants = ordered
    if manager.smoke:
        items[:] = _smoke_items(session, manager)


# --- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def driveops_env(request: pytest.FixtureRequest) -> Environment:
    """The session's environment (started, or attached to with --driveops-reuse)."""
    return manager_of(request.config).environment()


@pytest.fixture
def _driveops_slug(request: pytest.FixtureRequest) -> str:
    if hasattr(request, "param"):
        return str(request.param)
    marker = request.node.get_closest_marker("tenant")
    if marker and marker.args:
        return str(marker.args[0])
    return manager_of(request.config).tenants()[0]


_STORE_OF_FIXTURE = {"tenant": ("postgres", "mongo", "redis"), "tenant_pg": ("postgres",),
                     "tenant_mongo": ("mongo",), "tenant_redis": ("redis",)}  # fmt: skip


@pytest.fixture
def _driveops_copy(
    request: pytest.FixtureRequest, _driveops_slug: str, driveops_env: Environment
) -> TenantCopy:
    stores: tuple[str, ...] = ()
    for name in request.node.fixturenames:
        stores += tuple(s for s in _STORE_OF_FIXTURE.get(name, ()) if s not in stores)
    reset_realm = request.node.get_closest_marker("keycloak_reset") is not None
    return manager_of(request.config).prepare_test(_driveops_slug, stores, reset_realm)


@pytest.fixture
def tenant(_driveops_copy: TenantCopy, driveops_env: Environment) -> TenantHandle:
    """The tenant's handle, pointing at this test process's own copies of its stores."""
    return TenantHandle(driveops_env, _driveops_copy.record)


@pytest.fixture
def tenant_pg(request: pytest.FixtureRequest, _driveops_copy: TenantCopy) -> Iterator[Any]:
    """A psycopg connection to the tenant's database, as the tenant's role."""
    import psycopg

    assert _driveops_copy.record.postgres is not None, "the environment runs no PostgreSQL"
    try:
        conn = psycopg.connect(_driveops_copy.record.postgres.conninfo)
    except psycopg.OperationalError as exc:
        manager_of(request.config).fail_with_servers(
            _driveops_copy.record.slug, f"cannot connect to PostgreSQL: {exc}"
        )
    with conn:
        yield conn


@pytest.fixture
def tenant_mongo(_driveops_copy: TenantCopy) -> Iterator[Any]:
    """A pymongo ``Database`` of the tenant, as the tenant's user."""
    from driveops_env.services import mongo

    assert _driveops_copy.record.mongo is not None, "the environment runs no MongoDB"
    client = mongo.client(_driveops_copy.record.mongo)
    try:
        yield client[_driveops_copy.record.mongo.database]
    finally:
        client.close()


@pytest.fixture
def tenant_redis(_driveops_copy: TenantCopy) -> Iterator[Any]:
    """A redis-py client with the tenant's credentials; keys go under ``tenant.redis.key_prefix``."""
    from driveops_env.services import redis

    access = _driveops_copy.record.redis
    assert access is not None, "the environment runs no Redis"
    client = redis.client(access.host, access.port, access.username, access.password)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def tenant_keycloak(tenant: TenantHandle) -> Any:
    """python-keycloak ``KeycloakAdmin`` on the tenant's realm."""
    return tenant.keycloak.admin()


@pytest.fixture
def tenant_token(tenant: TenantHandle) -> Callable[..., str]:
    """``tenant_token("admin@acme.test")`` -> an access token (seeded password unless given)."""
    return tenant.token


# --- factories --------------------------------------------------------------------------------------


def driveops_env_factory(**overrides: Any) -> Any:
    """A session fixture for a service repository's own environment, e.g. in its conftest.py::

        from driveops_env.pytest_plugin import driveops_env_factory
        driveops_env = driveops_env_factory(tenants="acme,gamma", seeds_dir="tests/seeds",
                                            realms_dir="tests/realms")

    Naming it ``driveops_env`` makes every tenant fixture use it.  Keyword names are the options'
    names; values are what the command line would take.
    """
    unknown = set(overrides) - {o.name for o in options.OPTIONS}
    if unknown:
        raise UsageError(f"unknown option(s) for driveops_env_factory: {', '.join(sorted(unknown))}")

    @pytest.fixture(scope="session")
    def _fixture(request: pytest.FixtureRequest) -> Environment:
        manager = manager_of(request.config)
        if manager.env is None:
            values = {
                k: ",".join(v) if isinstance(v, (list, tuple)) else str(v) for k, v in overrides.items()
            }
            try:
                resolved = [options.OPTIONS_BY_NAME[k].convert(v, "python") for k, v in values.items()]
            except UsageError as exc:
                raise pytest.UsageError(f"driveops-env: {exc}") from None
            manager.settings = manager.settings.replace(**dict(zip(values, resolved, strict=True)))
            manager.tenants_configured = manager.tenants_configured or "tenants" in overrides
        return manager.environment()

    return _fixture


# --- smoke mode -------------------------------------------------------------------------------------


class SmokeItem(pytest.Item):
    """One health check of one tenant, run as a test."""

    def __init__(self, *, check: str, slug: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check
        self.slug = slug

    def runtest(self) -> None:
        record = _smoke_record(manager_of(self.config), self.slug)
        result = health.run_check(self.check, record)
        if not result.ok:
            raise SmokeFailure(f"check {self.check} failed for tenant {self.slug}: {result.detail}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, SmokeFailure):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[str, int, str]:
        return "driveops-env", 0, f"smoke check {self.check} [{self.slug}]"


class SmokeFailure(Exception):
    pass


def _env_record() -> TenantRecord | None:
    if "DRIVEOPS_TENANT" in os.environ and "DRIVEOPS_TENANT_ID" in os.environ:
        from driveops_env import envvars

        return envvars.record_from_plain(os.environ)
    return None


def _smoke_record(manager: Manager, slug: str) -> TenantRecord:
    from_env = _env_record()
    if from_env is not None:
        return from_env
    return manager.environment().state.tenants[slug]


def _smoke_items(session: pytest.Session, manager: Manager) -> list[pytest.Item]:
    """One item per tenant and check.  Attach order: the DRIVEOPS_* variables of `driveops-env env`,
    else a running environment of that name (left running), else one this session starts."""
    from_env = _env_record()
    if from_env is not None:
        plan = [(from_env.slug, health.checks_for(from_env))]
    else:
        try:
            state = orchestrator.load_running(manager.settings, manager.settings.name)
        except DriveopsEnvError:
            services = manager.settings.services
            checks = [c for c in health.TENANT_CHECKS if _planned(c, services)]
            plan = [(slug, checks) for slug in manager.tenants()]
        else:
            manager.reuse = True  # attach, and leave it running
            plan = [(t.slug, health.checks_for(t)) for t in state.tenants.values()]
    return [
        SmokeItem.from_parent(session, name=f"smoke[{slug}-{check}]", check=check, slug=slug)
        for slug, checks in plan
        for check in checks
    ]


def _planned(check: str, services: tuple[str, ...]) -> bool:
    needs = {"postgres": "postgres", "mongodb": "mongo", "redis": "redis", "keycloak": "keycloak",
             "tenant-validation": "postgres"}  # fmt: skip
    return needs[check] in services


# --- failure reports --------------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    if (
        report.failed
        and call.when in ("setup", "call")
        and "_driveops_copy" in getattr(item, "fixturenames", ())
    ):
        manager = manager_of(item.config)
        slug = item.callspec.params.get("_driveops_slug") if hasattr(item, "callspec") else None
        marker = item.get_closest_marker("tenant")
        slug = slug or (marker.args[0] if marker and marker.args else manager.tenants()[0])
        name = manager.settings.name
        backend = manager.env.backend if manager.env else "?"
        lines = [
            f"tenant {slug!r} of environment {name!r} (backend {backend})",
            f"inspect: driveops-env status --name {name}; "
            f"driveops-env logs postgres --name {name} --tenant {slug}",
        ]
        if manager.keep or manager.reuse:
            lines.append(f"the environment stays up: driveops-env env --name {name} --tenant {slug}")
        else:
            lines.append("rerun with --driveops-keep to keep the environment up after the session")
        report.sections.append(("driveops-env", "\n".join(lines)))
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    manager = terminalreporter.config.stash.get(MANAGER, None)
    if manager is None or not manager.restore_times:
        return
    parts = []
    for store, values in sorted(manager.restore_times.items()):
        ordered = sorted(values)
        p50 = ordered[len(ordered) // 2]
        p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
        parts.append(f"{store} p50 {p50 * 1000:.0f} ms p95 {p95 * 1000:.0f} ms (n={len(values)})")
    terminalreporter.write_line("driveops-env per-test restore: " + "; ".join(parts))


__all__ = ["Manager", "driveops_env_factory"]
