"""The local backend: every server is a process on this machine, bound to 127.0.0.1.

As root, PostgreSQL and Redis run as ``--local-user`` (PostgreSQL refuses to run as root).  Each
server gets its own directory under ``<data_dir>/<env>/<service key>`` and a log under ``logs/``.
"""

from __future__ import annotations

import os
import pwd
import re
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from driveops_env import process, readiness
from driveops_env.backends.base import StartContext
from driveops_env.errors import Interrupted, MissingDependencyError, StartupError
from driveops_env.options import Settings
from driveops_env.secret import generate_secret
from driveops_env.services import ferretdb, keycloak, keycloak_dist, mongo, postgres, redis
from driveops_env.services.redis import AclUser
from driveops_env.state import MongoAccess, ServiceRecord

PORT_RETRIES = 3
_PORT_CLASH = re.compile(r"address already in use|could not bind|could not create any TCP", re.IGNORECASE)


class LocalBackend:
    name = "local"
    mongo_needs_postgres = True  # FerretDB with its PostgreSQL handler
    mongo_per_tenant = False

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pg_bin: Path | None = None
        self._pg_template: Path | None = None
        self._keycloak: keycloak_dist.KeycloakInstall | None = None
        self._ferretdb: Path | None = None

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

    def prepare(self, progress: Callable[[str], None]) -> dict[str, str]:
        settings = self.settings
        versions: dict[str, str] = {}
        needs_postgres = (
            "postgres" in settings.services
            or "mongo" in settings.services  # FerretDB keeps its data in PostgreSQL
            or ("keycloak" in settings.services and settings.keycloak_db == "postgres")
        )
        if needs_postgres:
            self._pg_bin = postgres.find_bin_dir(settings.postgres_bin)
            self._pg_template = postgres.ensure_template(
                self._pg_bin, settings.cache_dir, self._staging_root(), user=self.run_as()
            )
            versions["postgres"] = postgres.server_version(self._pg_bin)
        if "redis" in settings.services:
            redis_server = redis.find_server(settings.redis_server)
            out = subprocess.run([redis_server, "--version"], capture_output=True, text=True, check=False)
            match = re.search(r"v=(\S+)", out.stdout)
            versions["redis"] = match.group(1) if match else "unknown"
        if "mongo" in settings.services:
            self._ferretdb = ferretdb.build(settings.cache_dir, ferretdb.DEFAULT_VERSION, progress)
            versions["mongo"] = f"FerretDB {ferretdb.DEFAULT_VERSION}"
        if "keycloak" in settings.services:
            self._keycloak = keycloak_dist.ensure_install(
                settings.cache_dir, version=settings.keycloak_version, db=settings.keycloak_db,
                java_home=settings.java_home, heap_mb=settings.keycloak_heap_mb, progress=progress,
            )  # fmt: skip
            versions["keycloak"] = f"{settings.keycloak_version}/{settings.keycloak_db}"
        return versions

    def _staging_root(self) -> Path:
        """The data root, ours alone: created 0700 (0711 as root, so the server user may enter it)."""
        root = self.settings.data_dir
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = root.lstat()
        if root.is_symlink() or info.st_uid != os.geteuid():
            raise MissingDependencyError(
                f"the data directory {root} is not owned by this user (or is a symlink)",
                hint="remove it, or choose another with --data-dir / DRIVEOPS_ENV_DATA_DIR",
            )
        root.chmod(0o711 if os.geteuid() == 0 else 0o700)
        return root

    # --- starting ---------------------------------------------------------------------------------

    def _server_dir(self, ctx: StartContext, key: str) -> Path:
        ctx.env_dir.mkdir(parents=True, exist_ok=True)
        ctx.env_dir.chmod(0o711 if os.geteuid() == 0 else 0o700)
        return ctx.env_dir / key

    def _log_path(self, ctx: StartContext, key: str) -> Path:
        logs = ctx.env_dir / "logs"
        logs.mkdir(mode=0o700, parents=True, exist_ok=True)
        return logs / f"{key}.log"

    def _chown(self, path: Path, user: str | None) -> None:
        if user is None:
            return
        record = pwd.getpwnam(user)
        for root, dirs, files in os.walk(path):
            os.chown(root, record.pw_uid, record.pw_gid)
            for name in dirs + files:
                os.chown(os.path.join(root, name), record.pw_uid, record.pw_gid)

    def _launch(
        self,
        ctx: StartContext,
        *,
        key: str,
        kind: str,
        tenant: str | None,
        prepare: Callable[[int], tuple[list[str], dict[str, int]]],
        probe: Callable[[ServiceRecord], None],
        admin_user: str,
        admin_password: str,
        data_dir: Path,
        user: str | None,
        stop_signals: tuple[int, int] = (signal.SIGTERM, signal.SIGKILL),
        env: dict[str, str] | None = None,
        fixed_port: int | None = None,
    ) -> ServiceRecord:
        """Start a server, register it at once, wait until ``probe`` answers.

        ``prepare(port)`` gives the argv and any further ports it took.  A port taken between choosing
        and binding it is retried with another port (unless the user fixed the port).
        ``stop_signals``: the (graceful, fast) signals ``stop`` sends.
        """
        log_path = self._log_path(ctx, key)
        for attempt in range(1, PORT_RETRIES + 1):
            if ctx.cancel.is_set():
                raise Interrupted("start-up was cancelled", service=kind, tenant=tenant)
            port = fixed_port or ctx.ports.allocate()
            argv, more_ports = prepare(port)
            try:
                ref = process.spawn(argv, log_path=log_path, user=user, cwd=data_dir, env=env)
            except OSError as exc:
                raise StartupError(
                    f"cannot run {argv[0]}: {exc.strerror}",
                    service=kind,
                    tenant=tenant,
                    hint="check the binary and its permissions (scripts/provision installs them)",
                ) from exc
            record = ServiceRecord(
                key=key, kind=kind, tenant=tenant, host="127.0.0.1", port=port, admin_user=admin_user,
                admin_password=admin_password, log_path=str(log_path), data_dir=str(data_dir),
                pid=ref.pid, pid_start=ref.start_time, ports=more_ports,
                extra={"stop_signal": f"{int(stop_signals[0])}",
                       "fast_stop_signal": f"{int(stop_signals[1])}"},
            )  # fmt: skip
            ctx.register(record)
            try:
                readiness.wait_until(
                    lambda: probe(record),  # noqa: B023 - called within this iteration
                    timeout=ctx.timeout, service=kind, tenant=tenant, cancel=ctx.cancel,
                    alive=lambda: process.is_alive(ref),  # noqa: B023
                    logs=lambda: process.tail(log_path),
                )  # fmt: skip
            except StartupError as exc:
                clash = _PORT_CLASH.search(exc.log_tail or "")
                if attempt < PORT_RETRIES and not fixed_port and not ctx.cancel.is_set() and clash:
                    self.stop(record, fast=True)
                    continue
                raise
            return record
        raise AssertionError("unreachable")

    def start_postgres(self, key: str, tenant: str | None, ctx: StartContext) -> ServiceRecord:
        assert self._pg_bin is not None and self._pg_template is not None, "prepare() first"
        bin_dir, template = self._pg_bin, self._pg_template
        data_dir = self._server_dir(ctx, key)
        postgres.copy_cluster(template, data_dir)
        password = generate_secret()

        def socket_info(port: int) -> str:
            return postgres.conninfo(str(data_dir), port, postgres.SUPERUSER, None, "postgres")

        record = self._launch(
            ctx,
            key=key,
            kind="postgres",
            tenant=tenant,
            prepare=lambda port: (postgres.server_argv(bin_dir, data_dir, port), {}),
            probe=lambda record: postgres.probe(socket_info(record.port)),
            admin_user=postgres.SUPERUSER,
            admin_password=password,
            data_dir=data_dir,
            user=self.run_as(),
            # fast shutdown; immediate (SIGQUIT, which still cleans up) when the data is thrown away
            stop_signals=(signal.SIGINT, signal.SIGQUIT),
        )
        postgres.set_superuser_password(socket_info(record.port), password)
        return record

    def start_redis(
        self, key: str, tenant: str | None, users: list[AclUser], ctx: StartContext
    ) -> ServiceRecord:
        server = redis.find_server(self.settings.redis_server)
        data_dir = self._server_dir(ctx, key)
        data_dir.mkdir(mode=0o700, exist_ok=True)
        password = generate_secret()
        user = self.run_as()
        config = data_dir / "redis.conf"

        def prepare(port: int) -> tuple[list[str], dict[str, int]]:
            fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(
                    redis.config_text(port=port, data_dir=data_dir, admin_password=password, tenants=users)
                )
            self._chown(data_dir, user)
            return [server, str(config)], {}

        return self._launch(
            ctx,
            key=key,
            kind="redis",
            tenant=tenant,
            prepare=prepare,
            probe=lambda record: redis.probe(record.host, record.port, None, password),
            admin_user="default",
            admin_password=password,
            data_dir=data_dir,
            user=user,
        )

    def start_mongo(
        self,
        key: str,
        tenant: str | None,
        users: list[mongo.MongoUser],
        ctx: StartContext,
        pg: ServiceRecord | None,
    ) -> ServiceRecord:
        """FerretDB on the PostgreSQL server ``pg``; ``users`` become PostgreSQL roles that FerretDB
        passes the clients' credentials through to."""
        binary = self._ferretdb
        assert binary is not None and pg is not None, "prepare() first; FerretDB needs its PostgreSQL"
        data_dir = self._server_dir(ctx, key)
        data_dir.mkdir(mode=0o700, exist_ok=True)
        probe_user, probe_password = f"driveops_probe_{key.replace('.', '_')}", generate_secret()
        admin = postgres.admin_conninfo(pg)
        ferretdb.prepare_postgres(
            admin, roles={probe_user: probe_password, **{u.name: u.password for u in users}}
        )

        def probe(record: ServiceRecord) -> None:
            mongo.probe(
                MongoAccess(key, record.host, record.port, "admin", probe_user, probe_password, "PLAIN")
            )

        record = self._launch(
            ctx, key=key, kind="mongo", tenant=tenant,
            prepare=lambda port: (ferretdb.server_argv(binary, port=port, pg_host=pg.host, pg_port=pg.port),
                                  {}),
            probe=probe, admin_user=probe_user, admin_password=probe_password, data_dir=data_dir,
            user=None,
        )  # fmt: skip
        record.extra["auth_mechanism"] = "PLAIN"
        record.extra["server"] = f"FerretDB {ferretdb.DEFAULT_VERSION} (PostgreSQL handler)"
        ctx.register(record)
        return record

    def start_keycloak(
        self,
        key: str,
        ctx: StartContext,
        database: keycloak.Database | None,
        db_server: ServiceRecord | None,
    ) -> ServiceRecord:
        install = self._keycloak
        assert install is not None, "prepare() first"
        data_dir = self._server_dir(ctx, key)
        data_dir.mkdir(mode=0o700, exist_ok=True)
        password = generate_secret()
        env = install.server_env(self.settings.keycloak_heap_mb)
        admin_user = keycloak_dist.TEMPLATE_ADMIN
        if install.base_data is not None:
            keycloak_dist.copy_base_data(install, data_dir)
        else:  # a fresh database: Keycloak creates the admin from these at first start
            env |= {"KC_BOOTSTRAP_ADMIN_USERNAME": admin_user, "KC_BOOTSTRAP_ADMIN_PASSWORD": password}
        if database is not None and db_server is not None:
            env |= {
                "KC_DB_URL": f"jdbc:postgresql://{db_server.host}:{db_server.port}/{database.name}",
                "KC_DB_USERNAME": database.user,
                "KC_DB_PASSWORD": database.password,
            }

        def prepare(port: int) -> tuple[list[str], dict[str, int]]:
            management = ctx.ports.allocate()
            return install.server_argv(data_dir, port, management), {"management": management}

        def probe(record: ServiceRecord) -> None:
            readiness.http_ok(f"http://{record.host}:{record.ports['management']}/health/ready")

        record = self._launch(
            ctx, key=key, kind="keycloak", tenant=None, prepare=prepare, probe=probe,
            admin_user=admin_user, admin_password=password, data_dir=data_dir, user=None, env=env,
            fixed_port=self.settings.keycloak_port or None,
        )  # fmt: skip
        if install.template_password is not None:
            base_url = f"http://{record.host}:{record.port}"
            keycloak.set_admin_password(base_url, admin_user, install.template_password, password)
        return record

    # --- running ----------------------------------------------------------------------------------

    def _ref(self, record: ServiceRecord) -> process.ProcessRef | None:
        if record.pid is None or record.pid_start is None:
            return None
        return process.ProcessRef(record.pid, record.pid_start)

    def stop(self, record: ServiceRecord, *, fast: bool = False) -> None:
        """Stop a server: gracefully, or ``fast`` when its data is about to be removed anyway."""
        ref = self._ref(record)
        if ref is None:
            return
        name = "fast_stop_signal" if fast else "stop_signal"
        sig = int(record.extra.get(name, int(signal.SIGTERM)))
        process.terminate(ref, sig=sig)

    def is_running(self, record: ServiceRecord) -> bool:
        ref = self._ref(record)
        return ref is not None and process.is_alive(ref)

    def cleanup(self, env_name: str) -> list[str]:
        """Servers of the environment the state file does not know (a run killed before recording
        them): found by their working directory, which is inside the environment's data directory."""
        removed = []
        for ref in process.running_in(self.settings.data_dir / env_name):
            process.terminate(ref, sig=signal.SIGKILL)
            removed.append(f"process {ref.pid}")
        return removed

    def logs(self, record: ServiceRecord, lines: int | None) -> str:
        if record.log_path is None:
            return ""
        if lines is None:
            try:
                return Path(record.log_path).read_text(errors="replace")
            except OSError:
                return ""
        return process.tail(record.log_path, lines)
