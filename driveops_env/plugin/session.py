"""The session's environment: which one, started or attached once, finished once.

Two pytest sessions in one checkout (an IDE's runner and a terminal) never share an environment they
did not ask to share: without ``--driveops-name`` each session starts its own, named
``pytest-<checkout>-<session>``, and the next session removes what a dead one left (only that).  A
session that attaches to an environment someone else runs (``--driveops-reuse``, an explicit name that
is already up, a staging descriptor) works on copies of its own and leaves the environment running.

With pytest-xdist one environment serves the run: the controller makes the session id, the first
worker to need the environment starts it on the controller's behalf (the others wait on its lock and
attach), and the controller tears it down once at the end.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from driveops_env import kept, migrating
from driveops_env.environment import Environment
from driveops_env.errors import DriveopsEnvError, UsageError
from driveops_env.plugin import settings as plugin_settings
from driveops_env.plugin.settings import Factory, PluginSettings
from driveops_env.settings import Settings
from driveops_env.tenants import load_catalogue


def _worker(config: pytest.Config) -> str | None:
    workerinput = getattr(config, "workerinput", None)
    return str(workerinput["workerid"]) if workerinput else None


def session_id(config: pytest.Config) -> str:
    """Six hex digits shared by the controller and its workers."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput and "driveops_session" in workerinput:
        return str(workerinput["driveops_session"])
    return secrets.token_hex(3)


@dataclass
class SessionEnvironment:
    """Options, tenant choice and lifecycle of the session's environment."""

    base: Settings  # as resolved from flags, environment, pyproject and ini (before the factory)
    plugin: PluginSettings
    rootpath: Path
    worker: str | None
    controller_pid: int | None
    session: str
    wanted_tenants: list[str] = field(default_factory=list)  # what the collected tests ask for
    env: Environment | None = None
    error: str | None = None
    progress: Callable[[str], None] | None = None
    factory: Factory | None = None  # a conftest's driveops_env_factory(...), once found

    @classmethod
    def from_config(cls, config: pytest.Config) -> SessionEnvironment:
        base, plugin = plugin_settings.resolve(config)
        workerinput = getattr(config, "workerinput", None)
        controller = int(workerinput["driveops_controller_pid"]) if workerinput else None
        return cls(base, plugin, config.rootpath, _worker(config), controller, session_id(config))

    # --- settings -----------------------------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        """The session's settings: a conftest's factory options applied, and the environment's name."""
        settings = self.configured()
        if self.name_given():
            return settings
        return settings.replace(name="default" if self.plugin.reuse else self.own_name())

    def configured(self) -> Settings:
        """The settings as configured: a conftest's factory options applied."""
        return self.factory.apply(self.base) if self.factory is not None else self.base

    def name_given(self) -> bool:
        """Whether the environment's name was configured (flag, variable, pyproject, ini, factory)."""
        return self.configured().sources.get("name", "default") != "default"

    def own_name(self) -> str:
        return f"{self.own_prefix()}{self.session}"

    def own_prefix(self) -> str:
        return f"pytest-{hashlib.sha256(str(self.rootpath).encode()).hexdigest()[:6]}-"

    @property
    def tenants_configured(self) -> bool:
        return self.settings.sources.get("tenants", "default") != "default"

    def default_tenant(self) -> str:
        """What an unmarked test gets: the first configured tenant, else the catalogue's first."""
        if self.tenants_configured:
            return self.settings.tenants[0]
        return next(iter(self.catalogue()), "acme")

    def catalogue(self) -> list[str]:
        return list(load_catalogue(self.settings.seeds_dir / "tenants.json"))

    def tenants(self) -> list[str]:
        """The tenants the environment holds: the configured ones, else the default tenant and every
        tenant a collected test asks for."""
        if self.tenants_configured:
            return list(self.settings.tenants)
        return list(dict.fromkeys([self.default_tenant(), *self.wanted_tenants]))

    def all_tenants(self) -> list[str]:
        """What ``@pytest.mark.all_tenants`` runs over: the configured tenants, else the catalogue's."""
        if self.tenants_configured:
            return list(self.settings.tenants)
        return self.catalogue() or ["acme"]

    # --- lifecycle ----------------------------------------------------------------------------------

    @property
    def owner_pid(self) -> int:
        return self.controller_pid or os.getpid()

    def environment(self) -> Environment:
        """Started or attached once; a failure is remembered and fails every test that needs it."""
        if self.env is None and self.error is None:
            try:
                self.env = self._start_or_attach()
            except DriveopsEnvError as exc:
                self.error = f"driveops-env could not provide environment {self.settings.name!r}:\n{exc}"
        if self.env is None:
            pytest.fail(self.error or "driveops-env: no environment", pytrace=False)
        return self.env

    def _start_or_attach(self) -> Environment:
        settings = self.settings.replace(tenants=tuple(self.tenants()))
        if self.plugin.from_file is not None:
            return Environment.from_descriptor(self.plugin.from_file)
        if self.plugin.reuse:
            try:
                env = Environment.attach(settings.name, settings=settings)
            except DriveopsEnvError:
                return Environment.up(settings=settings, detach=True, progress=self._report)
            self._migrate(env, settings)
            self._check_tenants(env, settings.tenants)
            return env
        if settings.name.startswith(self.own_prefix()):  # what dead sessions of this checkout left
            Environment.sweep_dead(settings, prefix=self.own_prefix(), progress=self._report)
        return Environment.up(settings=settings, owner_pid=self.owner_pid, progress=self._report)

    def _migrate(self, env: Environment, settings: Settings) -> None:
        """A reused environment whose migrations changed since it started gets the pending ones (every
        tenant and its seed, said in the session's output), not a recreate."""
        if migrating.pending(env.state, settings):
            env.migrate(progress=self._report)

    def _check_tenants(self, env: Environment, wanted: tuple[str, ...]) -> None:
        missing = [t for t in wanted if t not in env.tenants]
        if missing:
            env.add_tenants(missing, progress=self._report)

    def exclusive(self) -> bool:
        """Whether this session (or its xdist run) owns the environment: nobody else's tests use it."""
        env = self.env
        return env is not None and env.state.owner_pid == self.owner_pid

    def copy_token(self) -> str:
        """Names this process's copies: the worker, plus the session when others share the environment."""
        token = self.worker or "main"
        return token if self.exclusive() else f"{token}_{self.session}"

    def finish(self) -> None:
        """This process's part of the end: an environment it owns goes down (or stays with ``keep``)."""
        env = self.env
        if env is None or self.worker is not None or not self.exclusive() or self.plugin.reuse:
            return
        if self.plugin.keep:
            env.release()
            self._report(f"environment {env.name!r} kept running (driveops-env down --name {env.name})")
        elif not self._kept_for_copies(env):
            env.down()

    def _kept_for_copies(self, env: Environment) -> bool:
        """An environment that holds copies a failed test used stays up for them (``keep_failed``), until
        ``gc`` drops the last one."""
        folder = kept.folder_of(env.state)
        if not self.plugin.keep_failed or not kept.records(folder):
            return False
        env.release()
        kept.mark_only_for_copies(folder)
        count = len(kept.records(folder))
        self._report(
            f"environment {env.name!r} kept running for {count} failed test(s)' copies: "
            f"driveops-env copies --name {env.name}; gc stops it when they expire"
        )
        return True

    def controller_finish(self) -> None:
        """After every worker is done: down the environment the workers started for us (or keep it)."""
        if self.plugin.reuse or self.plugin.from_file is not None:
            return
        try:
            env = Environment.attach(self.settings.name, settings=self.settings)
        except DriveopsEnvError:
            return
        if env.state.owner_pid != os.getpid():
            return
        if self.plugin.keep:
            env.release()
        elif not self._kept_for_copies(env):
            env.down()

    def _report(self, message: str) -> None:
        if self.progress is not None:
            self.progress(message)


def check_usage(session_env: SessionEnvironment) -> None:
    """Errors in the settings surface as usage errors before any test runs."""
    try:
        _ = session_env.settings
    except UsageError as exc:
        raise pytest.UsageError(f"driveops-env: {exc}") from None
