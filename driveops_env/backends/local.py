"""The local backend: every server is a process on this machine, bound to 127.0.0.1.

As root, PostgreSQL and Redis run as ``--local-user`` (PostgreSQL refuses to run as root).  Each
server gets its own directory under ``<data_dir>/<env>/<service key>``, runs in it, and logs to
``logs/<key>.log``.  A process is stopped only if it is demonstrably the server that was started:
same pid and start time, running in its data directory under this data root, same program.
"""

from __future__ import annotations

import os
import pwd
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from driveops_env import builders, paths, process
from driveops_env.backends.base import Servers, StartContext, Started, launch
from driveops_env.errors import MissingDependencyError, StartupError, UsageError
from driveops_env.options import Settings
from driveops_env.secret import generate_secret
from driveops_env.services import ferretdb, keycloak, keycloak_dist, keycloak_snapshot, mongo, postgres, redis
from driveops_env.services.mongo import MongoUser
from driveops_env.state import MongoAccess, MongoLogin, ServiceRecord

_PORT_CLASH = re.compile(r"address already in use|could not bind|could not create any TCP", re.IGNORECASE)


def _clash(log: str) -> bool:
    return _PORT_CLASH.search(log) is not None


class LocalBackend:
    name = "local"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pg_bin: Path | None = None
        self._pg_template: Path | None = None
        self._keycloak: keycloak_dist.KeycloakInstall | None = None
        self._ferretdb: Path | None = None
        self._snapshot: Path | None = None

    def realm_snapshot(self, realms: list[dict[str, Any]], progress: Callable[[str], None]) -> bool:
        install = self._keycloak
        if install is None or install.base_data is None or install.template_password is None or not realms:
            return False
        self._snapshot = keycloak_snapshot.ensure(
            install, realms, self.settings.keycloak_heap_mb, progress, self.settings.keycloak_jvm_options
        )
        return True

    def needs(self, kind: str) -> tuple[str, ...]:
        return ("postgres",) if kind == "mongo" else ()  # FerretDB keeps its data in PostgreSQL

    # --- prerequisites ----------------------------------------------------------------------------

    def run_as(self) -> str | None:
        """The unprivileged user servers run as when we are root, else None (ourselves)."""
        if os.geteuid() != 0:
            return None
        user = self.settings.local_user
        try:
            pwd.getpwnam(user)
        except KeyError:
            raise MissingDependencyError(
                f"the local user {user!r} does not exist; as root, PostgreSQL must run as another user",
                hint="run scripts/provision (it installs the postgres user), or set --local-user",
            ) from None
        return user

    def _check_enterable(self, root: Path) -> None:
        """As root, servers run as ``--local-user``: it must reach the data root (a 0700 folder of root's
        on the way would let PostgreSQL fail only after everything else started)."""
        user = self.run_as()
        blocked = paths.blocking_dir(root, user) if user is not None else None
        if blocked is not None:
            raise UsageError(
                f"the data directory {root} cannot be reached by the user {user!r} the servers run as: "
                f"{blocked} does not let it in",
                hint=f"chmod o+x {blocked} (or a+x), or choose another --data-dir, or set --local-user",
            )

    def prepare(self, progress: Callable[[str], None]) -> dict[str, str]:
        from driveops_env import teardown

        settings = self.settings
        services = settings.services
        root = teardown.data_root(settings)  # checked for every service set, before anything starts
        self._check_enterable(root)
        paths.usable_dir(settings.cache_dir, "the cache directory", hint="set --cache-dir / DRIVEOPS_ENV_CACHE_DIR")
        for line in builders.sweep_folders(settings.cache_dir):
            progress(f"removed a {line} an interrupted run left")
        versions: dict[str, str] = {}
        if "postgres" in services or "mongo" in services:
            postgres.check_socket_path(teardown.env_dir(settings, settings.name))
        if (
            "postgres" in services
            or "mongo" in services
            or ("keycloak" in services and settings.keycloak_db == "postgres")
        ):
            self._pg_bin = postgres.find_bin_dir(settings.postgres_bin)
            self._pg_template = postgres.ensure_template(
                self._pg_bin, settings.cache_dir, teardown.data_root(settings), user=self.run_as()
            )
            versions["postgres"] = postgres.server_version(self._pg_bin)
        if "redis" in services:
            redis_server = redis.find_server(settings.redis_server)
            out = subprocess.run([redis_server, "--version"], capture_output=True, text=True, check=False)
            match = re.search(r"v=(\S+)", out.stdout)
            versions["redis"] = match.group(1) if match else "unknown"
        if "mongo" in services:
            self._ferretdb = ferretdb.build(settings.cache_dir, ferretdb.DEFAULT_VERSION, progress)
            versions["mongo"] = f"FerretDB {ferretdb.DEFAULT_VERSION}"
        if "keycloak" in services:
            self._keycloak = keycloak_dist.ensure_install(
                settings.cache_dir, version=settings.keycloak_version, db=settings.keycloak_db,
                java_home=settings.java_home, heap_mb=settings.keycloak_heap_mb, progress=progress,
                providers=settings.keycloak_providers_dir,
            )  # fmt: skip
            versions["keycloak"] = f"{settings.keycloak_version}/{settings.keycloak_db}"
        return versions

    # --- starting ---------------------------------------------------------------------------------

    def _server_dir(self, ctx: StartContext, key: str, user: str | None) -> Path:
        path = ctx.env_dir / key
        path.mkdir(mode=0o700)
        if user is not None:
            record = pwd.getpwnam(user)
            os.chown(path, record.pw_uid, record.pw_gid)
        return path

    def _log_path(self, ctx: StartContext, key: str) -> Path:
        logs = ctx.env_dir / "logs"
        logs.mkdir(mode=0o700, exist_ok=True)
        return logs / f"{key}.log"

    def _spawner(
        self, ctx: StartContext, base: ServiceRecord, argv_of: Callable[[int], list[str]], *,
        user: str | None, env: dict[str, str] | None = None, fixed_port: int | None = None,
    ) -> Callable[[int | None], Started]:  # fmt: skip
        """How :func:`launch` starts this server: a fresh port each attempt (unless fixed), the
        process in its data directory, the record filled with what identifies it."""
        log_path = self._log_path(ctx, base.key)

        def start(_: int | None) -> Started:
            port = fixed_port or ctx.ports.allocate()
            argv = argv_of(port)
            try:
                ref = process.spawn(argv, log_path=log_path, user=user, cwd=Path(str(base.data_dir)), env=env)
            except OSError as exc:
                raise StartupError(
                    f"cannot run {argv[0]}: {exc.strerror}", service=base.kind, tenant=base.tenant,
                    hint="check the binary and its permissions (scripts/provision installs them)",
                ) from exc  # fmt: skip
            record = _copy(
                base, port=port, pid=ref.pid, pid_start=ref.start_time, argv0=argv[0], log_path=str(log_path)
            )
            return Started(record, lambda: process.is_alive(ref), lambda: process.log_excerpt(log_path))

        return start

    def _launch(self, ctx: StartContext, base: ServiceRecord, start: Callable[[int | None], Started],
                probe: Callable[[ServiceRecord], object], fixed: bool = False) -> ServiceRecord:  # fmt: skip
        return launch(
            ctx,
            start,
            probe,
            lambda r: self.stop(r, fast=True),
            retry_on=(lambda _: False) if fixed else _clash,
        )

    def start_postgres(self, key: str, tenant: str | None, ctx: StartContext) -> ServiceRecord:
        assert self._pg_bin is not None and self._pg_template is not None, "prepare() first"
        bin_dir, data_dir = self._pg_bin, ctx.env_dir / key
        postgres.copy_cluster(self._pg_template, data_dir)
        (ctx.env_dir / "sock").mkdir(mode=0o711, exist_ok=True)
        sockets = self._server_dir(ctx, f"sock/{postgres.socket_dir(ctx.env_dir, key).name}", self.run_as())
        password = generate_secret()
        # fast shutdown; immediate (SIGQUIT, which still cleans up) when the data is thrown away
        base = ServiceRecord(key, "postgres", tenant, "127.0.0.1", 0, postgres.SUPERUSER, password,
                             data_dir=str(data_dir), stop_signals=[signal.SIGINT, signal.SIGQUIT])  # fmt: skip

        def socket_info(port: int) -> str:
            return postgres.conninfo(str(sockets), port, postgres.SUPERUSER, None, "postgres")

        def argv_of(port: int) -> list[str]:
            return postgres.server_argv(bin_dir, data_dir, port, sockets)

        start = self._spawner(ctx, base, argv_of, user=self.run_as())
        record = self._launch(ctx, base, start, lambda r: postgres.probe(socket_info(r.port)))
        postgres.set_superuser_password(socket_info(record.port), password)
        return record

    def start_redis(self, key: str, tenant: str | None, ctx: StartContext) -> ServiceRecord:
        server = redis.find_server(self.settings.redis_server)
        user = self.run_as()
        data_dir = self._server_dir(ctx, key, user)
        password = generate_secret()
        config = data_dir / "redis.conf"
        base = ServiceRecord(key, "redis", tenant, "127.0.0.1", 0, "default", password, data_dir=str(data_dir))

        def argv_of(port: int) -> list[str]:
            fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(redis.config_text(port=port, data_dir=data_dir, admin_password=password))
            if user is not None:
                record = pwd.getpwnam(user)
                os.chown(config, record.pw_uid, record.pw_gid)
            return [server, str(config)]

        start = self._spawner(ctx, base, argv_of, user=user)
        return self._launch(ctx, base, start, lambda r: redis.probe(r.host, r.port, None, password))

    def start_mongo(self, key: str, tenant: str, user: MongoUser, ctx: StartContext, deps: Servers) -> ServiceRecord:
        """FerretDB over the tenant's own database of the PostgreSQL server ``deps["postgres"]``; the
        tenant's user is a PostgreSQL role that FerretDB passes the client's credentials through to."""
        binary, pg = self._ferretdb, deps["postgres"]
        assert binary is not None, "prepare() first"
        data_dir = self._server_dir(ctx, key, None)
        probe_user, probe_password = ferretdb.probe_role(tenant), generate_secret()
        database = ferretdb.pg_database(tenant)
        ferretdb.prepare_postgres(postgres.admin_conninfo(pg), database=database,
                                  owner=(user.name, user.password), probe=(probe_user, probe_password))  # fmt: skip
        login = MongoLogin(f"FerretDB {ferretdb.DEFAULT_VERSION} (PostgreSQL handler)", mechanism="PLAIN")
        base = ServiceRecord(key, "mongo", tenant, "127.0.0.1", 0, probe_user, probe_password,
                             data_dir=str(data_dir), depends_on=[pg.key], mongo=login)  # fmt: skip

        def argv_of(port: int) -> list[str]:
            return ferretdb.server_argv(binary, port=port, pg_host=pg.host, pg_port=pg.port, database=database)

        def probe(record: ServiceRecord) -> None:
            mongo.probe(MongoAccess(key, record.host, record.port, "admin", probe_user, probe_password, "PLAIN"))

        return self._launch(ctx, base, self._spawner(ctx, base, argv_of, user=None), probe)

    def start_keycloak(
        self, key: str, ctx: StartContext, database: keycloak.Database | None, db_server: ServiceRecord | None
    ) -> ServiceRecord:
        install = self._keycloak
        assert install is not None, "prepare() first"
        data_dir = self._server_dir(ctx, key, None)
        password = generate_secret()
        env = install.server_env(self.settings.keycloak_heap_mb, self.settings.keycloak_jvm_options)
        if (initialised := self._snapshot or install.base_data) is not None:
            keycloak_dist.copy_h2(initialised, data_dir)
        else:  # a fresh database: Keycloak creates the admin from these at first start
            env |= install.versions.bootstrap_admin_env(keycloak_dist.TEMPLATE_ADMIN, password)
        if database is not None and db_server is not None:
            env |= keycloak_dist.database_env(database, f"{db_server.host}:{db_server.port}")
        base = ServiceRecord(key, "keycloak", None, "127.0.0.1", 0, keycloak_dist.TEMPLATE_ADMIN, password,
                             data_dir=str(data_dir))  # fmt: skip
        management = ctx.ports.allocate() if install.versions.has_management_port else None
        if management is not None:
            base.ports["management"] = management

        def argv_of(port: int) -> list[str]:
            return install.server_argv(data_dir, port, management)

        start = self._spawner(ctx, base, argv_of, user=None, env=env, fixed_port=self.settings.keycloak_port or None)
        record = self._launch(ctx, base, start, keycloak.probe_ready, fixed=bool(self.settings.keycloak_port))
        if install.template_password is not None:
            keycloak.set_admin_password(
                keycloak.base_url(record), record.admin_user, install.template_password, password
            )
        return record

    # --- running ----------------------------------------------------------------------------------

    def _ref(self, record: ServiceRecord) -> process.ProcessRef | None:
        """The server's process, if the record's pid is demonstrably it: same start time, running in
        the record's data directory, which lies under this data root, same program."""
        if record.pid is None or record.pid_start is None or record.data_dir is None or record.argv0 is None:
            return None
        if not paths.is_within(record.data_dir, self.settings.data_dir):
            return None
        ref = process.ProcessRef(record.pid, record.pid_start)
        return ref if process.runs(ref, cwd=record.data_dir, program=record.argv0) else None

    def stop(self, record: ServiceRecord, *, fast: bool = False) -> None:
        """Stop a server: gracefully, or ``fast`` when its data is about to be removed anyway."""
        ref = self._ref(record)
        if ref is not None:
            process.terminate(ref, sig=record.stop_signals[1 if fast else 0])

    def is_running(self, record: ServiceRecord) -> bool:
        return self._ref(record) is not None

    def cleanup(self, env_name: str) -> list[str]:
        """Servers of the environment the state file does not know (a run killed before recording
        them): found by their working directory, which is inside the environment's data directory."""
        removed = []
        for ref in process.running_in(self.settings.data_dir / env_name):
            process.terminate(ref, sig=signal.SIGKILL)
            removed.append(f"process {ref.pid}")
        return removed

    def _own_log(self, record: ServiceRecord) -> Path | None:
        """The record's log file, only if it is one of this data root's logs (not a link)."""
        if record.log_path is None:
            return None
        path = Path(record.log_path)
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
            while True:
                line = handle.readline()
                if line:
                    yield line
                else:
                    time.sleep(0.3)


def _copy(base: ServiceRecord, **changes: object) -> ServiceRecord:
    from dataclasses import replace

    return replace(base, ports=dict(base.ports), **changes)  # type: ignore[arg-type]
