"""Stopping and removing what an environment started: its servers, its data directory, its state
file; and what a failed or interrupted start left.  Nothing is removed that the environment did not
create: its data directory carries a marker file with a secret that only its state file knows.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType

from driveops_env import paths
from driveops_env.backends import Backend
from driveops_env.errors import DriveopsEnvError, Interrupted, UsageError
from driveops_env.options import Settings
from driveops_env.services import ferretdb, keycloak, postgres, redis
from driveops_env.state import EnvState, ServiceRecord, StateStore, TenantRecord

MARKER = ".driveops-env"
DATA_HINT = "use a data directory of your own (--data-dir / DRIVEOPS_ENV_DATA_DIR)"


def env_dir(settings: Settings, name: str) -> Path:
    return settings.data_dir / name


def data_root(settings: Settings) -> Path:
    """The data root, checked: this user's, not a link, not writable by others (0711 as root, so the
    unprivileged server user may enter; 0700 otherwise)."""
    mode = 0o711 if os.geteuid() == 0 else 0o700
    return paths.private_dir(settings.data_dir, "the data directory", mode=mode, hint=DATA_HINT)


def make_env_dir(settings: Settings, state: EnvState) -> Path:
    """The environment's data directory, made fresh (a name already taken by anything is refused) and
    marked with the state file's secret."""
    root = data_root(settings)
    target = root / state.name
    if os.path.lexists(target):
        if not _ours(target, None):
            raise UsageError(
                f"{target} exists and was not made by driveops-env for environment {state.name!r}",
                hint=f"remove it yourself, or {DATA_HINT}",
            )
        shutil.rmtree(target)  # a leftover of a run of this name that died
    os.mkdir(target, 0o711 if os.geteuid() == 0 else 0o700)
    os.chmod(target, 0o711 if os.geteuid() == 0 else 0o700)
    fd = os.open(target / MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"{state.name} {state.data_marker}\n")
    return target


def _ours(target: Path, secret: str | None) -> bool:
    """A real directory of this user's with our marker (and, if given, the state file's secret)."""
    try:
        info = os.lstat(target)
        fd = os.open(target / MARKER, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    with os.fdopen(fd) as handle:
        marker = handle.read().split()
    if not os.path.isdir(target) or os.path.islink(target) or info.st_uid != os.geteuid():
        return False
    return len(marker) == 2 and (secret is None or marker[1] == secret)


def remove_env_dir(state: EnvState) -> None:
    """Delete the data directory the state file says the environment made, if it really did."""
    target = Path(state.data_dir)
    if state.data_marker and _ours(target, state.data_marker) and target.name == state.name:
        shutil.rmtree(target, ignore_errors=True)


def remove_marked(settings: Settings, name: str) -> None:
    """Delete ``<data root>/<name>`` if driveops-env made it for an environment of that name (its
    marker says so): what a lost or corrupted state file left."""
    target = env_dir(settings, name)
    if _ours(target, None) and _marker_name(target) == name:
        shutil.rmtree(target, ignore_errors=True)


def _marker_name(target: Path) -> str:
    try:
        return (target / MARKER).read_text().split()[0]
    except (OSError, IndexError):
        return ""


def teardown(
    state: EnvState, backend: Backend, store: StateStore, settings: Settings, *, remove_data: bool = True
) -> None:
    records = list(state.services.values())
    errors: list[str] = []

    def stop(record: ServiceRecord) -> None:
        try:
            backend.stop(record, fast=remove_data)
        except (OSError, DriveopsEnvError) as exc:
            errors.append(f"{record.key}: {exc}")

    if records:
        with ThreadPoolExecutor(max_workers=len(records)) as pool:
            list(pool.map(stop, records))
    try:  # whatever carries the environment's labels but never reached the state file
        backend.cleanup(state.name)
    except (OSError, DriveopsEnvError) as exc:
        errors.append(f"cleanup: {exc}")
    if remove_data:
        remove_env_dir(state)
        store.delete(state.name)
    else:
        state.status = "stopped"
        state.services = {}
        store.save(state)
    if errors:
        raise DriveopsEnvError("some services could not be stopped:\n  " + "\n  ".join(errors))


def after_failure(
    exc: BaseException,
    state: EnvState,
    backend: Backend,
    store: StateStore,
    settings: Settings,
    progress: Callable[[str], None],
) -> None:
    """A start failed or was interrupted: stop and remove everything it made, then say so."""
    interrupted = isinstance(exc, KeyboardInterrupt | Interrupted)
    progress("interrupted; stopping what was started" if interrupted else "start-up failed; stopping what was started")
    with_sigint_ignored(lambda: teardown(state, backend, store, settings))


def with_sigint_ignored(action: Callable[[], None]) -> None:
    """Run cleanup without a second Ctrl-C cutting it short (only possible in the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        action()
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        action()
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def signals_held() -> Iterator[Callable[[], bool]]:
    """Ctrl-C and SIGTERM wait until the block ends (stopping servers is never cut short, nor a lock
    file's release), then interrupt; the block may ask whether one came (to stop waiting for a lock)."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    received: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: bool(received)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    if received:
        raise KeyboardInterrupt


@contextlib.contextmanager
def signals_cancel(cancel: threading.Event, interrupted: threading.Event) -> Iterator[None]:
    """While servers start, Ctrl-C and SIGTERM only set ``cancel``: a KeyboardInterrupt raised at a
    random point (inside a thread pool, say) could let a step run on after the cleanup."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        interrupted.set()
        cancel.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def remove_tenants(state: EnvState, backend: Backend, slugs: list[str], *, keep_servers: set[str]) -> None:
    """Remove tenants from a running environment: servers of their own are stopped; on shared servers
    their database, role, seed template and Redis user and keys go; their realms are deleted."""
    for slug in slugs:
        record = state.tenants.pop(slug, None)
        own = [r for r in state.services.values() if r.tenant == slug and r.key not in keep_servers]
        for server in own:
            with contextlib.suppress(OSError, DriveopsEnvError):
                backend.stop(server, fast=True)
            _remove_server_dir(state, server)
            del state.services[server.key]
        if record is None:
            continue
        with contextlib.suppress(Exception):  # best effort: the server may be the tenant's own, now gone
            _remove_from_shared(state, record)
        if record.keycloak is not None and "keycloak" in state.services:
            server = state.services["keycloak"]
            with contextlib.suppress(DriveopsEnvError):
                keycloak.RealmAdmin(record.keycloak.base_url, server.admin_user, server.admin_password).delete_realm(
                    record.realm
                )


def _remove_server_dir(state: EnvState, server: ServiceRecord) -> None:
    """A local server's own directory, inside the environment's (a re-added tenant starts afresh)."""
    env = Path(state.data_dir)
    if state.backend != "local" or not state.data_marker or not _ours(env, state.data_marker):
        return
    targets = [Path(server.data_dir)] if server.data_dir else []
    if server.kind == "postgres":
        targets.append(postgres.socket_dir(env, server.key))
    for target in targets:
        if paths.is_within(target, env) and target != env and not target.is_symlink():
            shutil.rmtree(target, ignore_errors=True)


def _remove_from_shared(state: EnvState, record: TenantRecord) -> None:
    pg, rd = record.postgres, record.redis
    if pg is not None and pg.service in state.services:
        admin = postgres.admin_conninfo(state.services[pg.service])
        postgres.drop_tenant(admin, database=pg.database, role=pg.user)
        if record.mongo is not None and state.backend == "local":  # its FerretDB's database and roles
            ferretdb.drop_postgres(admin, tenant=record.slug, owner=record.mongo.user)
    if rd is not None and rd.service in state.services and rd.username:
        server = state.services[rd.service]
        client = redis.client(server.host, server.port, None, server.admin_password)
        try:
            redis.delete_prefixed(client, rd.key_prefix)
            redis.delete_acl_user(client, rd.username)
        finally:
            client.close()
