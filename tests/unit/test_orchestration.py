"""The orchestration's decisions with a fake backend (the Backend protocol allows it): reuse or sweep,
the start plan's graph, teardown, the plugin's choice of tenants and copies.  Nothing starts."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from driveops_env import options, orchestrator, teardown
from driveops_env.backends.base import StartContext
from driveops_env.errors import DriveopsEnvError, SpecMismatchError
from driveops_env.plan import Launch, StartPlan
from driveops_env.plugin.session import SessionEnvironment
from driveops_env.plugin.settings import PluginSettings
from driveops_env.ports import PortAllocator
from driveops_env.services.base import Engine, Preparation, Server
from driveops_env.settings import Settings
from driveops_env.state import EnvState, ServiceRecord, StateStore


@dataclass
class FakeBackend:
    """A backend of the given family that "starts" any server at once: the Backend protocol is all the
    orchestration knows."""

    settings: Settings | None = None
    engine_url: str = ""
    name: str = "fake"
    family: str = "process"
    dead: set[str] = field(default_factory=set)
    stopped: list[tuple[str, bool]] = field(default_factory=list)
    fail_stop: set[str] = field(default_factory=set)

    @classmethod
    def available(cls, settings: Settings, progress: Callable[[str], None]) -> bool:
        return True

    @classmethod
    def collect(cls, settings: Settings, *, dry_run: bool) -> list[str]:
        return []

    @classmethod
    def prune(cls, settings: Settings) -> list[str]:
        return []

    def prepare(self, progress: Callable[[str], None]) -> None:
        pass

    def engine(self) -> Engine | None:
        return None

    def run_as(self) -> str | None:
        return None

    def start(self, server: Server, ctx: StartContext) -> ServiceRecord:
        return ServiceRecord(server.key, server.service, server.tenant, "127.0.0.1", 1, "admin", "pw")

    def stop(self, record: ServiceRecord, *, fast: bool = False) -> None:
        if record.key in self.fail_stop:
            raise DriveopsEnvError(f"{record.key} would not stop")
        self.stopped.append((record.key, fast))

    def remove(self, record: ServiceRecord) -> None:
        self.stop(record, fast=True)

    def cleanup(self, env_name: str) -> list[str]:
        return []

    def is_running(self, record: ServiceRecord) -> bool:
        return record.key not in self.dead

    def logs(self, record: ServiceRecord, lines: int | None) -> str:
        return ""

    def follow(self, record: ServiceRecord) -> Iterator[str]:
        return iter(())


def _settings(tmp_path: Path, **cli: str) -> Settings:
    values = {"state_dir": str(tmp_path / "state"), "data_dir": str(tmp_path / "data"), "name": "x"} | cli
    return options.resolve(cli=values, environ={}, pyproject={})


def _prepared(tmp_path: Path, backend: FakeBackend, **cli: str) -> orchestrator.Prepared:
    settings = _settings(tmp_path, **cli)
    from driveops_env.tenants import load_catalogue, resolve_tenants

    tenants = resolve_tenants(settings.tenants, load_catalogue(settings.seeds_dir / "tenants.json"))
    what = orchestrator.plan_input(settings, tenants, backend.family)
    finger = orchestrator.fingerprint(backend.name, what)
    return orchestrator.Prepared(settings, backend, what, finger, orchestrator.hash_of(finger))


def _running(prepared: orchestrator.Prepared, **changes: Any) -> EnvState:
    redis = ServiceRecord("redis.acme", "redis", "acme", "h", 1, "u", "p")
    state = EnvState(
        "x",
        "fake",
        "dedicated",
        prepared.spec_hash,
        prepared.finger,
        "/nowhere",
        status="running",
        services={"redis.acme": redis},
    )
    for key, value in changes.items():
        setattr(state, key, value)
    return state


def test_reuse_attaches_only_to_a_live_running_environment_of_the_same_spec(tmp_path: Path) -> None:
    backend = FakeBackend()
    prepared = _prepared(tmp_path, backend, tenants="acme")
    quiet: Callable[[str], None] = lambda _: None  # noqa: E731
    assert orchestrator._reuse(_running(prepared), prepared, backend, False, quiet) is True
    assert orchestrator._reuse(_running(prepared, status="starting"), prepared, backend, False, quiet) is False
    assert (
        orchestrator._reuse(_running(prepared, owner_pid=2**22 + 7, owner_start=1), prepared, backend, False, quiet)
        is False
    )
    backend.dead.add("redis.acme")
    assert orchestrator._reuse(_running(prepared), prepared, backend, False, quiet) is False  # healed by recreating
    other = _running(prepared, spec_hash="different", fingerprint={"tenants": ["beta=x/beta"]})
    with pytest.raises(SpecMismatchError, match="tenants"):
        orchestrator._reuse(other, prepared, backend, False, quiet)
    assert orchestrator._reuse(other, prepared, backend, True, quiet) is False


@pytest.mark.parametrize("isolation", ["dedicated", "shared"])
def test_the_start_plan_orders_servers_seeds_and_realms(tmp_path: Path, isolation: str) -> None:
    backend = FakeBackend()  # the process family: FerretDB keeps its data in PostgreSQL
    prepared = _prepared(tmp_path, backend, tenants="acme,beta", isolation=isolation)
    state = EnvState("x", "fake", isolation, "h", {}, str(tmp_path))
    ctx = StartContext("x", "h", tmp_path, _settings(tmp_path), threading.Event(), lambda r: None, PortAllocator())
    what = replace(prepared.what, prepared={"keycloak": Preparation(step_limit=3)})  # what prepare found
    plan = StartPlan(what, backend, ctx, Launch(state, StateStore(tmp_path)), lambda _: None)
    steps = {s.name: s for s in plan.steps()}
    pg = "postgres.acme" if isolation == "dedicated" else "postgres.shared"
    assert steps["prepare mongo.acme"].after == (pg,)  # FerretDB keeps its data in PostgreSQL on this backend
    assert steps["mongo.acme"].after == (pg, "prepare mongo.acme")  # its database there, made first
    assert steps["keycloak"].after == ("prepare keycloak",)  # the realms' snapshot, made first
    assert steps["seed postgres.acme"].after == (pg,) and steps["realm acme"].after == ("keycloak",)
    assert {"mongo.acme", "mongo.beta"} <= set(steps)  # a MongoDB server per tenant in both modes
    assert ("redis.beta" in steps) == (isolation == "dedicated")
    assert steps["realm beta"].group == "keycloak" and steps[pg].group == "server"
    assert plan.limits() == {"server": 12, "keycloak": 3}
    container = StartPlan(
        prepared.what, FakeBackend(family="container"), ctx, Launch(state, StateStore(tmp_path)), lambda _: None
    ).steps()
    assert next(s for s in container if s.name == "mongo.acme").after == ()  # a mongod keeps its own data


def test_teardown_stops_every_server_then_removes_the_state_and_reports_what_would_not_stop(tmp_path: Path) -> None:
    backend = FakeBackend(fail_stop={"redis.acme"})
    settings = _settings(tmp_path)
    store = StateStore(settings.state_dir)
    services = {k: ServiceRecord(k, k.split(".")[0], "acme", "h", 1, "u", "p") for k in ("postgres.acme", "redis.acme")}
    state = EnvState("x", "fake", "dedicated", "h", {}, str(tmp_path / "data" / "x"), services=services)
    store.save(state)
    with pytest.raises(DriveopsEnvError, match=r"redis\.acme would not stop"):
        teardown.teardown(state, backend, store)
    assert backend.stopped == [("postgres.acme", True)]
    assert store.load("x") is None  # the state file goes: the next up sweeps by label and directory


PLUGIN = PluginSettings(reuse=False, keep=False, keep_failed=False, smoke=False, from_file=None)


def _session(tmp_path: Path, worker: str | None = None, **cli: str) -> SessionEnvironment:
    return SessionEnvironment(_settings(tmp_path, **cli), PLUGIN, tmp_path, worker, None, "abc123")


def test_the_plugin_chooses_tenants_and_names(tmp_path: Path) -> None:
    unconfigured = _session(tmp_path)
    assert unconfigured.default_tenant() == "acme"
    unconfigured.wanted_tenants = ["beta"]
    assert unconfigured.tenants() == ["acme", "beta"]  # the default tenant beside the marked ones
    assert unconfigured.all_tenants() == ["acme", "beta"]  # the catalogue's
    configured = _session(tmp_path, tenants="gamma,beta")
    configured.wanted_tenants = ["acme"]
    assert configured.default_tenant() == "gamma" and configured.tenants() == ["gamma", "beta"]
    assert unconfigured.settings.name == "x"  # a name given is kept
    own = SessionEnvironment(options.resolve(environ={}, pyproject={}), PLUGIN, tmp_path, "gw1", 1, "abc123")
    assert own.settings.name.startswith("pytest-") and own.settings.name.endswith("-abc123")
    assert own.copy_token() == "gw1_abc123"  # no environment of its own yet: a shared one's copies carry the session
