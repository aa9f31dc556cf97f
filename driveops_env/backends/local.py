"""The local backend: every server is a process on this machine, bound to 127.0.0.1.

As root, servers that ask for it (some refuse to run as root) run as ``--local-user``, by default the
account a service names (``Service.local_user``).  Each
server gets its own directory under ``<data_dir>/<env>/<server key>``, runs in it, and logs to
``logs/<key>.log``.  A process is stopped only if it is demonstrably the server that was started:
same pid and start time, running in its data directory under this data root, same program.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from driveops_env import builders, envdirs, paths, process, readiness
from driveops_env.backends.base import StartContext, Started, launch, record_of
from driveops_env.errors import MissingDependencyError, StartupError, UsageError
from driveops_env.services import registry
from driveops_env.services.base import PROCESS, Engine, ProcessSpec, Server
from driveops_env.services.capabilities import KeepsBuilds, Prunes
from driveops_env.settings import Settings
from driveops_env.state import ProcessPart, ServiceRecord


class LocalBackend:
    name = "local"
    family = PROCESS

    def __init__(self, settings: Settings, engine: str = "") -> None:
        self.settings = settings

    @classmethod
    def available(cls, settings: Settings, progress: Callable[[str], None]) -> bool:
        return True  # the fallback of ``auto``: a missing binary is said by the service that needs it

    @classmethod
    def collect(cls, settings: Settings, *, dry_run: bool) -> list[str]:
        """What ``gc`` removes of the cache: builders an interrupted run left."""
        if dry_run:
            return []
        removed = []
        for service in registry.every(settings).values():
            if isinstance(service, KeepsBuilds):
                removed += builders.sweep_folders(service.builds(settings.cache_dir), service.commands)
        return removed

    @classmethod
    def prune(cls, settings: Settings) -> list[str]:
        """The cache's realm snapshots beyond the most recently used."""
        services = registry.every(settings).values()
        return [line for s in services if isinstance(s, Prunes) for line in s.collect(settings.cache_dir, None)]

    def engine(self) -> Engine | None:
        return None

    def run_as(self) -> str | None:
        """The unprivileged user servers run as when we are root, else None (ourselves)."""
        if os.geteuid() != 0:
            return None
        named = [(cls.title, cls.local_user) for cls in registry.classes() if cls.local_user]
        user = self.settings.local_user or (named[0][1] if named else "nobody")
        try:
            pwd.getpwnam(user)
        except KeyError:
            wanted = f" ({named[0][0]}'s)" if named and not self.settings.local_user else ""
            raise MissingDependencyError(
                f"the local user {user!r}{wanted} does not exist; as root, servers run as another user",
                hint="run scripts/provision (it installs the servers and their accounts), or set --local-user",
            ) from None
        return user

    def prepare(self, progress: Callable[[str], None]) -> None:
        """The data root (this user's, enterable by the server user) and the cache, before anything starts;
        builders an interrupted run left are removed."""
        root = envdirs.data_root(self.settings)
        user = self.run_as()
        blocked = paths.blocking_dir(root, user) if user is not None else None
        if blocked is not None:
            raise UsageError(
                f"the data directory {root} cannot be reached by the user {user!r} the servers run as: "
                f"{blocked} does not let it in",
                hint=f"chmod o+x {blocked} (or a+x), or choose another --data-dir, or set --local-user",
            )
        cache = self.settings.cache_dir
        paths.usable_dir(cache, "the cache directory", hint="set --cache-dir / DRIVEOPS_ENV_CACHE_DIR")
        for service in registry.every(self.settings).values():
            builds = service.builds(cache) if isinstance(service, KeepsBuilds) else []
            for line in builders.sweep_folders(builds, service.commands):
                progress(f"removed a {line} an interrupted run left")

    # --- starting ---------------------------------------------------------------------------------

    def start(self, server: Server, ctx: StartContext) -> ServiceRecord:
        spec = server.process
        if spec is None:
            raise StartupError(f"{server.service} describes no local process", service=server.service)
        data_dir = ctx.env_dir / server.key
        user = self.run_as() if spec.as_local_user else None
        if spec.setup is not None:
            spec.setup(data_dir)
        paths.own_dir(data_dir, 0o700, user)
        base = record_of(server, "127.0.0.1", ports={name: ctx.ports.allocate() for name in spec.ports})
        start = self._spawner(ctx, base, spec, (data_dir, user), server.cpu_weight)
        return launch(ctx, server, start, lambda r: self.stop(r, fast=True))

    def _spawner(
        self, ctx: StartContext, base: ServiceRecord, spec: ProcessSpec, place: tuple[Path, str | None], weight: int
    ) -> Callable[[int | None], Started]:
        """How :func:`launch` starts this server: a fresh port each attempt (unless fixed), its files
        written, the process in its data directory (``place``: and the user it runs as), the record
        filled with what identifies it."""
        log_path = envdirs.log_path(ctx.env_dir, base.key)
        data_dir, user = place

        def start(_: int | None) -> Started:
            port = spec.fixed_port or ctx.ports.allocate()
            for name, text in (spec.files(data_dir, port) if spec.files else {}).items():
                _write(data_dir / name, text, user)
            argv = spec.argv(data_dir, port, base.ports)
            try:
                ref = process.spawn(argv, log_path=log_path, user=user, cwd=data_dir, env=spec.env)
            except OSError as exc:
                raise StartupError(
                    f"cannot run {argv[0]}: {exc.strerror}",
                    service=base.kind,
                    tenant=base.tenant,
                    hint="check the binary and its permissions (scripts/provision installs them)",
                ) from exc
            process.weigh(ref.pid, weight)
            signals = list(spec.stop_signals)
            found = ProcessPart(ref.pid, ref.start_time, argv[0], str(data_dir), str(log_path), signals)
            record = replace(base, port=port, ports=dict(base.ports), process=found)
            return Started(record, lambda: process.is_alive(ref), lambda: process.log_excerpt(log_path))

        return start

    # --- running ----------------------------------------------------------------------------------

    def _ref(self, record: ServiceRecord) -> process.ProcessRef | None:
        """The server's process, if the record's pid is demonstrably it: same start time, running in
        the record's data directory, which lies under this data root, same program."""
        found = record.process
        if found is None or not paths.is_within(found.data_dir, self.settings.data_dir):
            return None
        ref = process.ProcessRef(found.pid, found.pid_start)
        return ref if process.runs(ref, cwd=found.data_dir, program=found.argv0) else None

    def stop(self, record: ServiceRecord, *, fast: bool = False) -> None:
        """Stop a server: gracefully, or ``fast`` when its data is about to be removed anyway."""
        ref = self._ref(record)
        if ref is not None:
            signals = record.process.stop_signals if record.process else [15, 9]
            process.terminate(ref, sig=signals[1 if fast else 0])

    def remove(self, record: ServiceRecord) -> None:
        """Stopped, and its directories (its data, and those its service listed in ``extra["local_dirs"]``, a
        socket folder) removed, if they lie inside this data root."""
        self.stop(record, fast=True)
        dirs = [record.process.data_dir if record.process else "", *record.extra.get("local_dirs", "").split(",")]
        for folder in (Path(d) for d in dirs if d):
            inside = paths.is_within(folder, self.settings.data_dir) and folder != self.settings.data_dir
            if inside and not folder.is_symlink():
                shutil.rmtree(folder, ignore_errors=True)

    def is_running(self, record: ServiceRecord) -> bool:
        return self._ref(record) is not None

    def cleanup(self, env_name: str) -> list[str]:
        """Servers of the environment the state file does not know (a run killed before recording
        them): found by their working directory, which is inside the environment's data directory."""
        removed = []
        commands = tuple(c for s in registry.every(self.settings).values() for c in s.commands)
        for ref in process.running_in(self.settings.data_dir / env_name, commands):
            process.terminate(ref, sig=signal.SIGKILL)
            removed.append(f"process {ref.pid}")
        return removed

    def _own_log(self, record: ServiceRecord) -> Path | None:
        """The record's log file, only if it is one of this data root's logs (not a link)."""
        if record.process is None:
            return None
        path = Path(record.process.log_path)
        if path.parent.name != "logs" or path.is_symlink() or not paths.is_within(path, self.settings.data_dir):
            raise UsageError(
                f"the log file {path} recorded for {record.key} is not a log of this data directory",
                hint="the state file was changed by someone else; run `driveops-env gc`",
            )
        return path

    def logs(self, record: ServiceRecord, lines: int | None) -> str:
        path = self._own_log(record)
        if path is None:
            return ""
        if lines is None:
            try:
                return path.read_text(errors="replace")
            except OSError:
                return ""
        return process.tail(path, lines)

    def follow(self, record: ServiceRecord) -> Iterator[str]:
        path = self._own_log(record)
        if path is None:
            return
        with open(path, errors="replace") as handle:
            handle.seek(0, os.SEEK_END)
            for _ in readiness.ticks(0.3):
                yield from iter(handle.readline, "")


def _write(path: Path, text: str, user: str | None) -> None:
    """A server's file (it may hold secrets): 0600, never through a link, owned by the server's user."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    if user is not None:
        account = pwd.getpwnam(user)
        os.chown(path, account.pw_uid, account.pw_gid)
