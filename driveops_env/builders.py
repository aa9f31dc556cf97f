"""Builders: a server started once to make something the cache keeps (a server's initialised data, a
snapshot of the tenants' data): a process in a ``*.partial`` folder of the cache, or a container of the engine.
Each runs while its maker holds a lock file; a builder whose lock is free has lost its maker (a killed
``up``) and is removed by the next ``up`` and by ``gc``: its process or container, and its half-made
folder.  And what is kept: the most recently used few of each kind of snapshot; none is pruned while an
``up`` (or a tenant's addition) uses the cache (:func:`using`), from its preparation to its servers'
start, when the engine's own refusal (an image a container runs) takes over."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from driveops_env import process, readiness
from driveops_env.errors import ReadinessTimeoutError

LABEL = "org.driveops-env"
BUILDER = f"{LABEL}.builder"  # what it builds
BUILDER_LOCK = f"{LABEL}.builder-lock"  # the lock file its maker holds while it runs


def lock_of(target: Path) -> Path:
    """The lock file that guards making ``target`` (``<dir>/.<name>.lock``)."""
    return target.parent / f".{target.name}.lock"


def labels(what: str, lock: Path) -> dict[str, str]:
    """Labels of a builder container: what it makes, and the lock its maker holds."""
    return {BUILDER: what, BUILDER_LOCK: str(lock)}


@contextlib.contextmanager
def abandoned(lock: Path) -> Iterator[bool]:
    """True (holding the lock meanwhile) when nobody holds ``lock``: whatever it guards was left by a
    maker that died."""
    guard = FileLock(str(lock))
    try:
        guard.acquire(timeout=0)
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        guard.release()


def sweep_folders(roots: list[Path], commands: tuple[str, ...]) -> list[str]:
    """Half-made builder folders (``<root>/*.partial``) whose maker is gone: their processes (by command
    name) stopped, the folders removed."""
    removed = []
    for staging in (s for root in roots for s in sorted(root.glob("*.partial"))):
        target = staging.with_name(staging.name.removesuffix(".partial"))
        with abandoned(lock_of(target)) as dead:
            if not dead:
                continue
            for ref in process.running_in(staging, commands):
                process.terminate(ref)
                removed.append(f"builder process {ref.pid}")
            shutil.rmtree(staging, ignore_errors=True)
            removed.append(f"builder folder {staging}")
    return removed


def sweep_containers(client: Any, cache: Path) -> list[str]:
    """Builder containers of this cache whose maker is gone (another cache's are left alone)."""
    import docker.errors

    removed = []
    for container in client.api.containers(all=True, filters={"label": [BUILDER]}):
        labels = container.get("Labels") or {}
        if not labels.get(BUILDER) or labels.get(f"{LABEL}.env"):
            continue  # an environment's server whose image a builder made (its labels came along): not one
        lock = Path(labels.get(BUILDER_LOCK, ""))
        if not lock.is_absolute() or not _inside(lock, cache):
            continue
        with abandoned(lock) as dead:
            if dead:
                with contextlib.suppress(docker.errors.NotFound):
                    client.api.remove_container(container["Id"], force=True, v=True)
                removed.append(f"builder container {(container.get('Names') or [container['Id'][:12]])[0]}")
    return removed


def _inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


# --- what is kept, and for how long -----------------------------------------------------------------

KEEP = 3  # realm snapshots (and optimized Keycloak images) kept per cache, the most recently used
IN_USE = ".in-use.lock"  # held shared by every ``up`` of a cache, exclusively by ``gc`` while it prunes
PRUNE_WAIT = 60.0  # seconds ``gc`` waits for the ups of its cache to start their servers before pruning


@contextlib.contextmanager
def using(cache: Path) -> Iterator[None]:
    """Held while an ``up`` (or a tenant's addition) may take a cached image or snapshot: ``gc`` prunes
    none of ``cache`` meanwhile.  Shared: any number of ``up`` at once.  A cache that is not there yet
    (or not usable: the ``up`` says so itself) holds nothing to protect."""
    descriptor = _in_use_lock(cache)
    try:
        if descriptor is not None:
            fcntl.flock(descriptor, fcntl.LOCK_SH)
        yield
    finally:
        if descriptor is not None:
            os.close(descriptor)


def unless_used(cache: Path, prune: Callable[[], list[str]], wait: float = PRUNE_WAIT) -> list[str] | None:
    """``prune()`` holding ``cache`` alone, once no ``up`` uses it: polled for up to ``wait`` seconds
    (an ``up`` may start meanwhile, and is waited for too); None when it was still in use then."""
    descriptor = _in_use_lock(cache)
    if descriptor is None:
        return prune()
    try:
        try:
            readiness.wait_until(
                lambda: fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB), timeout=wait, service="gc"
            )
        except ReadinessTimeoutError:
            return None
        return prune()
    finally:
        os.close(descriptor)


def _in_use_lock(cache: Path) -> int | None:
    try:
        return os.open(cache / IN_USE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError:
        return None


def used(path: Path) -> None:
    """Mark a cached artefact (a snapshot folder, an image's lock or secrets file) as used now."""
    with contextlib.suppress(OSError):
        path.touch()


def prune_folders(roots: list[Path], keep: int = KEEP) -> list[str]:
    """Snapshot folders beyond the ``keep`` most recently used in each of ``roots``."""
    removed = []
    for root in roots:
        snapshots = sorted(
            (p for p in root.iterdir() if p.is_dir() and "." not in p.name), key=lambda p: p.stat().st_mtime
        )
        for old in snapshots[: max(0, len(snapshots) - keep)]:
            with abandoned(lock_of(old)) as free:
                if free:
                    shutil.rmtree(old, ignore_errors=True)
                    removed.append(f"snapshot {old}")
    return removed


def prune_images(client: Any, cache: Path, kinds: list[tuple[str, str]], keep: int = KEEP) -> list[str]:
    """This cache's images of each repository of ``kinds`` (repository, the file of ``<cache>/docker``
    touched at every use, ``{}`` the tag), in order, beyond the ``keep`` most recently used; an image a
    container still runs is kept (the engine refuses, and that is fine)."""
    removed = []
    docker_dir = cache / "docker"
    for repository, use_file in kinds:
        images = _images_of(client, repository, cache)
        images.sort(key=lambda item: _mtime(docker_dir / use_file.format(item[0]), item[1]))
        for tag, _ in images[: max(0, len(images) - keep)]:
            if _remove_image(client, f"{repository}:{tag}"):
                removed.append(f"image {repository}:{tag}")
                with contextlib.suppress(OSError):
                    (docker_dir / use_file.format(tag)).unlink()
    return removed


def _images_of(client: Any, repository: str, cache: Path) -> list[tuple[str, float]]:
    """(tag, created) of the images of ``repository`` labelled with this cache."""
    found = []
    wanted = f"{LABEL}.cache={cache.resolve()}"
    for image in client.api.images(name=repository, filters={"label": [wanted]}):
        for reference in image.get("RepoTags") or []:
            if reference.startswith(f"{repository}:"):
                found.append((reference.split(":", 1)[1], float(image.get("Created", 0))))
    return found


def prune_untagged(client: Any, cache: Path) -> list[str]:
    """This cache's images that lost their tag to a newer one (``up --recreate`` while a container
    still ran the old one)."""
    wanted = f"{LABEL}.cache={cache.resolve()}"
    old = client.api.images(filters={"label": [wanted], "dangling": True})
    return [f"image {image['Id'][7:19]} (untagged)" for image in old if _remove_image(client, image["Id"])]


def _mtime(path: Path, fallback: float) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return fallback


def _remove_image(client: Any, reference: str) -> bool:
    import docker.errors

    try:
        client.api.remove_image(reference)
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError:  # in use by a container, or the parent of an image that is
        return False
    return True


def image_present(client: Any, tag: str) -> bool:
    """Whether the engine has the image (the docker backend asks this too)."""
    try:
        client.images.get(tag)
    except Exception:  # ImageNotFound
        return False
    return True
