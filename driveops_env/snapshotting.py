"""``driveops-env snapshot save`` and ``snapshot load``: a tenant's data in every store of a running
environment written to one file (:mod:`driveops_env.snapshot`), and such a file loaded in place of a
tenant's data.  Each store's part is its service's (the ``Snapshots`` capability); the stores are
saved and loaded in parallel.  A load checks the whole file first (nothing changes when any part is
wrong) and refuses a file of other migrations than the environment's unless forced."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from driveops_env import snapshot, snapshot_seeds, timing
from driveops_env.diagnosis import diagnose
from driveops_env.errors import DriveopsEnvError, ServiceError, UsageError
from driveops_env.masking import Masking, Replacing
from driveops_env.running import load_running, running_settings, services_of, sources_of, work_of
from driveops_env.services.capabilities import Snapshots, seed_of
from driveops_env.settings import Settings
from driveops_env.state import EnvState, StateStore, TenantRecord

MIGRATIONS = "migrate-"  # the fingerprint entries of a store's migrations (``Migrates.migration_key``)


@dataclass(frozen=True)
class Done:
    """What a save or a load did: the manifest, and the seconds per store."""

    manifest: snapshot.Manifest
    seconds: dict[str, float]


def migrations_of(state: EnvState) -> dict[str, str]:
    return {k: v for k, v in sorted(state.fingerprint.items()) if k.startswith(MIGRATIONS)}


def save(state: EnvState, settings: Settings, slug: str, target: Path, *, mask: bool) -> Done:
    """Tenant ``slug``'s data in every store of ``state`` (a running environment's, or a descriptor's:
    only read there, but for a masked SQL store's scratch database) into ``target``."""
    record = _tenant(state, slug)
    if not target.parent.is_dir() or target.is_dir():
        raise UsageError(f"cannot write {target}: its folder does not exist or it is a folder", hint="name a file")
    stores = _stores(state, settings, record)
    masking = Masking.of(settings.mask) if mask else None
    sources = sources_of(state, settings)
    with _scratch(settings) as folder:
        parts = {n: folder / n for n in stores}
        jobs = {
            n: _said(
                n, slug, _saving(s, s.load(record.stores[n]), work_of(state, record, None, sources), parts[n], masking)
            )
            for n, s in stores.items()
        }
        seconds = timing.run_timed(jobs)
        identity = {"tenant_id": record.tenant_id, "name": record.display_name}
        manifest = snapshot.write(target, slug, migrations_of(state), mask, parts, identity)
    return Done(manifest, seconds)


def _saving(service: Snapshots, access: Any, work: Any, target: Path, masking: Masking | None) -> Callable[[], None]:
    return lambda: service.save_data(access, work, target, masking)


def _said(store: str, tenant: str, job: Callable[[], None]) -> Callable[[], None]:
    """``job``, whose failure (a server's, whatever its library) is an error naming the store and the
    tenant; ours already are."""

    def run() -> None:
        try:
            job()
        except DriveopsEnvError:
            raise
        except Exception as exc:
            detail, hint = diagnose(exc, [])
            raise ServiceError(
                f"the snapshot's {store} part failed: {detail}",
                service=store,
                tenant=tenant,
                hint=hint or "the other stores are done; what failed was left as it was",
            ) from None

    return run


def load(settings: Settings, name: str, source: Path, slug: str | None, *, force: bool) -> Done:
    """The file's data in place of tenant ``slug``'s (default: the tenant it was saved from)."""
    store = StateStore(settings.state_dir)
    with store.lock(name), _scratch(settings) as folder:
        state = load_running(settings, name)
        running = running_settings(settings, state)
        manifest, parts = snapshot.read(source, folder)
        record = _tenant(state, slug or manifest.tenant)
        _check(source, manifest, state, _stores(state, running, record), force=force)
        try:
            seconds = load_parts(state, running, record, parts, replacing=_replacing(manifest, record))
        finally:
            store.save(state)  # what the stores that were loaded need (a realm's new users' passwords)
    return Done(manifest, seconds)


def verify(settings: Settings, name: str, source: Path, *, force: bool) -> snapshot.Manifest:
    """The file read whole and checked against the running environment, nothing changed (``--as``
    checks before it adds the tenant)."""
    with _scratch(settings) as folder:
        state = load_running(settings, name)
        running = running_settings(settings, state)
        manifest, _ = snapshot.read(source, folder)
        services = services_of(state, running)
        stores = {n: s for n, s in services.items() if isinstance(s, Snapshots)}
        _check(source, manifest, state, stores, force=force)
    return manifest


def _replacing(manifest: snapshot.Manifest, record: TenantRecord) -> Replacing | None:
    """The file's tenant's id, slug and name replaced by ``record``'s when the file is another tenant's."""
    if manifest.tenant == record.slug:
        return None
    theirs = {"tenant_id": record.tenant_id, "name": record.display_name}
    values = {v: theirs[k] for k, v in manifest.identity.items() if k in theirs and v != theirs[k]}
    return Replacing(values | {manifest.tenant: record.slug})


def start_from(state: EnvState, settings: Settings) -> None:
    """``up --snapshot``: each named tenant's stores loaded from its file (checked before the start),
    the file's data kept as what the tenant's restores go back to."""
    for slug, file in snapshot_seeds.files_of(settings).items():
        with _scratch(settings) as folder:
            _, parts = snapshot.read(file, folder)
            kept = snapshot_seeds.keep(settings, slug, parts)
        load_parts(state, settings, state.tenants[slug], kept, as_seed=True)


def load_parts(
    state: EnvState,
    settings: Settings,
    record: TenantRecord,
    parts: dict[str, Path],
    *,
    as_seed: bool = False,
    replacing: Replacing | None = None,
) -> dict[str, float]:
    """Each part loaded into the tenant's store, in parallel; its record updated (not saved)."""
    stores, sources = _stores(state, settings, record), sources_of(state, settings)
    loaded: dict[str, Any] = {}

    def loading(n: str, service: Snapshots) -> Callable[[], None]:
        access = service.load(record.stores[n])  # type: ignore[attr-defined]
        work = work_of(state, record, seed_of(service, record.as_tenant(), sources, access), sources)
        return _said(
            n,
            record.slug,
            lambda: loaded.__setitem__(
                n, service.load_data(access, work, parts[n], as_seed=as_seed, replacing=replacing)
            ),
        )

    try:
        return timing.run_timed({n: loading(n, s) for n, s in stores.items() if n in parts})
    finally:
        record.stores.update({n: asdict(a) for n, a in loaded.items()})


def _check(source: Path, manifest: snapshot.Manifest, state: EnvState, stores: dict[str, Any], *, force: bool) -> None:
    """A file of other migrations, or with data of a store the environment does not run: refused
    (exit 2) unless forced."""
    theirs, ours = manifest.migrations, migrations_of(state)
    if theirs != ours and not force:
        raise UsageError(
            f"the snapshot {source} was saved with other migrations ({_keys(theirs)}) than environment "
            f"{state.name!r} runs ({_keys(ours)}); nothing was changed",
            hint="load it into an environment of the same migrations, or pass --force to load it anyway",
        )
    extra = sorted(set(manifest.parts) - set(stores))
    if extra and not force:
        raise UsageError(
            f"the snapshot {source} holds data of {', '.join(extra)}, which environment {state.name!r} does "
            "not run; nothing was changed",
            hint="start the environment with those services, or pass --force to load the other stores",
        )


def _keys(migrations: dict[str, str]) -> str:
    return ", ".join(f"{k} {v[:12]}" for k, v in migrations.items()) or "none"


def _tenant(state: EnvState, slug: str) -> TenantRecord:
    if slug not in state.tenants:
        raise UsageError(
            f"environment {state.name!r} has no tenant {slug!r} (it has {', '.join(state.tenants)})",
            hint=f"`driveops-env tenant add {slug}` adds it, or name another with --tenant",
        )
    return state.tenants[slug]


def _stores(state: EnvState, settings: Settings, record: TenantRecord) -> dict[str, Any]:
    services = services_of(state, settings)
    return {n: s for n, s in services.items() if isinstance(s, Snapshots) and n in record.stores}


@contextmanager
def _scratch(settings: Settings) -> Iterator[Path]:
    """A private folder (0700) in the cache for the parts (as large as the file), removed after."""
    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".snapshot-", dir=settings.cache_dir) as folder:
        yield Path(folder)
