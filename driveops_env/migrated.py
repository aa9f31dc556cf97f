"""The state a team's migrations built, kept in the cache by key: the command ran once per key (for
the first tenant that needed it), every other tenant, test copy and later ``up`` starts from what it
built.  A store's unit says how its state is saved and loaded (a dump of the database, say);
this module keeps the files: ``<cache>/migrations/<service>/<key>.<suffix>`` with a manifest beside
it (the command, the folder it ran in, each input's hash), a lock per key, and which earlier key a
grown history starts from.

A history *grew* when the command and its folder are the same and every input the earlier key hashed
is still there with the same bytes (files were only added): its state plus the pending migrations is
the new key's state.  Anything else (a revision edited or removed, another command) runs from scratch.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from driveops_env import builders, files, migrate, process, readiness
from driveops_env.errors import ReadinessTimeoutError, StartupError
from driveops_env.settings import Settings

KEEP = 3  # states kept per repository (the folder a command runs in), the most recently used
MANIFEST = ".json"


def folder(cache: Path, service: str) -> Path:
    """Where a service's migrated states are kept."""
    return cache / "migrations" / service


@dataclass(frozen=True)
class Kept:
    """One key's state in the cache: the file a unit saves and loads, its manifest, its lock."""

    folder: Path
    key: str
    suffix: str

    @property
    def state(self) -> Path:
        return self.folder / f"{self.key}{self.suffix}"

    @property
    def manifest(self) -> Path:
        return self.folder / f"{self.key}{MANIFEST}"

    def ready(self) -> bool:
        return self.state.is_file() and self.manifest.is_file()

    @property
    def failed(self) -> Path:
        """Written when the build failed: who failed, so the other tenants of that run do not try again."""
        return self.folder / f".{self.key}.failed"

    @contextlib.contextmanager
    def building(
        self, timeout: float, *, service: str, tenant: str, cancel: threading.Event | None = None
    ) -> Iterator[None]:
        """Held while one tenant runs the command and saves its state; the others wait here (``cancel``
        ends the wait), then load it, or fail at once when it failed in this very run."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        guard = FileLock(str(builders.lock_of(self.state)))
        try:
            readiness.wait_until(
                lambda: guard.acquire(timeout=0), timeout=timeout, service=service, tenant=tenant, cancel=cancel
            )
        except ReadinessTimeoutError:
            raise StartupError(
                f"another run has been migrating key {self.key} for {timeout:g} s",
                service=service,
                tenant=tenant,
                hint="wait for it (`driveops-env status` of the other environments), then run up again",
            ) from None
        try:
            self._not_failed_here(service, tenant)
        except StartupError:
            guard.release()
            raise
        try:
            yield
        except BaseException:
            files.write_private(self.failed, f"{_me()} {tenant}".encode())
            raise
        finally:
            guard.release()

    def _not_failed_here(self, service: str, tenant: str) -> None:
        with contextlib.suppress(OSError):
            me, _, who = self.failed.read_text().rpartition(" ")
            if me == _me():
                raise StartupError(
                    f"the migration of key {self.key} failed for tenant {who} in this run",
                    service=service,
                    tenant=tenant,
                    hint=f"its last lines are above; `driveops-env logs migrate --tenant {who}` has them all",
                )
            self.failed.unlink()  # another run's: this one tries again

    def save(self, manifest: Mapping[str, Any]) -> None:
        """The manifest written last: a state without one (a run killed while saving) is not ready."""
        files.write_private(self.manifest, json.dumps(dict(manifest), indent=1, sort_keys=True).encode())

    def used(self) -> None:
        builders.used(self.state)


@dataclass(frozen=True)
class Tenant:
    """One tenant's store as :func:`once` works on it: its unit's way to run the command on it, and to
    save and load its state (a file), and the tenant's migration log."""

    slug: str
    command: Callable[[], float]
    save: Callable[[Path], None]
    load: Callable[[Path], None]
    log: Path


def once(
    kept: Kept,
    manifest: Mapping[str, Any],
    store: Tenant,
    *,
    service: str,
    timeout: float,
    cancel: threading.Event | None = None,
) -> None:
    """``store`` brought to ``kept``'s state: loaded when another tenant (or an earlier ``up``) built
    it, else built here, holding the key's lock (the other tenants wait for it, then load it).
    ``timeout``: the command's; the wait for another's build allows it twice and a minute more."""
    if not kept.ready():
        with kept.building(2 * timeout + 60, service=service, tenant=store.slug, cancel=cancel):
            if not kept.ready():
                _build(kept, manifest, store)
                return
    started = time.monotonic()
    store.load(kept.state)
    kept.used()
    took = time.monotonic() - started
    migrate.note(store.log, f"key {kept.key} loaded from {kept.state} in {took:.2f} s: the command did not run")


def _build(kept: Kept, manifest: Mapping[str, Any], store: Tenant) -> None:
    """The command run once for ``kept``'s key (from a grown history's earlier state when there is
    one), the result saved for every other tenant."""
    base = grown_from(kept, manifest)
    if base is not None:
        store.load(base.state)
    took = store.command()
    store.save(kept.state)
    kept.save(manifest)
    start = f"from key {base.key}'s state (pending migrations only)" if base else "from an empty store"
    migrate.note(store.log, f"the command ran once for key {kept.key}, {start}, in {took:.2f} s; saved to {kept.state}")


def _me() -> str:
    """This process, as the failed marker names it: its id and start time."""
    return f"{os.getpid()}:{process.start_time_of(os.getpid())}"


def manifest_of(command: str, cwd: Path, found: Mapping[str, str], scope: str = "") -> dict[str, Any]:
    """What a state was built from; ``scope``: what else its key says (a server's major version, a
    tenant of its own): a state of another scope is never a grown history's start."""
    return {"command": command, "cwd": str(cwd), "files": dict(found), "scope": scope}


def grown_from(kept: Kept, manifest: Mapping[str, Any]) -> Kept | None:
    """The most recently used earlier state whose history the new one only adds to, if any."""
    candidates = []
    for path in kept.folder.glob(f"*{MANIFEST}"):
        other = Kept(kept.folder, path.name.removesuffix(MANIFEST), kept.suffix)
        earlier = _read(path)
        if other.key == kept.key or earlier is None or not other.ready():
            continue
        if _grew(earlier, manifest):
            candidates.append((other.state.stat().st_mtime, other))
    return max(candidates, key=lambda pair: pair[0])[1] if candidates else None


def grew_since(settings: Settings, argv: tuple[str, ...], service: str, earlier: object) -> bool:
    """Whether ``service``'s history (``argv`` and the inputs on disk now) only grew since the key
    ``earlier`` an environment recorded (True without one: nothing to compare)."""
    if not earlier or not argv:
        return True
    found = migrate.of(settings, argv)
    now = manifest_of(found.command, found.cwd, migrate.files_of(found))
    return only_grew(folder(settings.cache_dir, service), str(earlier), now)


def only_grew(folder: Path, earlier_key: str, now: Mapping[str, Any]) -> bool:
    """Whether the history of ``earlier_key`` (a key an environment was set up with) is a start of
    ``now``'s (files only added, same command): what a migration tool can apply; True when no state of
    that key is kept any more (nothing to compare with)."""
    for path in sorted(folder.glob(f"{earlier_key}*{MANIFEST}")):
        earlier = _read(path)
        if earlier is not None:
            return _grew({**earlier, "scope": ""}, {**now, "scope": ""}) or earlier.get("files") == now["files"]
    return True


def _grew(earlier: Mapping[str, Any], now: Mapping[str, Any]) -> bool:
    if (earlier.get("command"), earlier.get("cwd"), earlier.get("scope", "")) != (
        now["command"],
        now["cwd"],
        now.get("scope", ""),
    ):
        return False
    before, after = earlier.get("files"), now["files"]
    return isinstance(before, dict) and len(after) > len(before) and all(after.get(k) == v for k, v in before.items())


def _read(path: Path) -> dict[str, Any] | None:
    with contextlib.suppress(OSError, ValueError):
        found = json.loads(path.read_text())
        return found if isinstance(found, dict) else None
    return None


def prune(folder: Path, suffix: str, keep: int = KEEP) -> list[str]:
    """States beyond the ``keep`` most recently used of each repository, and every state of a
    repository whose folder is gone (what ``gc`` removes); one being built (its lock held) stays."""
    by_repository: dict[str, list[tuple[float, Kept]]] = {}
    for path in folder.glob(f"*{MANIFEST}") if folder.is_dir() else ():
        kept = Kept(folder, path.name.removesuffix(MANIFEST), suffix)
        with contextlib.suppress(OSError):
            used = kept.state.stat().st_mtime
            by_repository.setdefault(str((_read(path) or {}).get("cwd")), []).append((used, kept))
    removed = []
    for repository, states in by_repository.items():
        most = keep if Path(repository).is_dir() else 0
        for _, old in sorted(states, key=lambda pair: pair[0])[: max(0, len(states) - most)]:
            lock = builders.lock_of(old.state)
            with builders.abandoned(lock) as free:
                if free:  # the state, its manifest, what a failed or killed build left, its lock
                    partial = old.state.with_name(f".{old.state.name}.partial")
                    for path in (old.manifest, old.state, old.failed, partial, lock):
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(path)
                    removed.append(f"migrated state {old.state}")
    return removed
