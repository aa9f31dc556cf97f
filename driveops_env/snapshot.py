"""A snapshot file: one tenant's data in every store, as a tar archive (uncompressed: nothing in it
expands when read) of a manifest and a part per store.

``manifest.json`` (the first member) says the format version, the driveops-env version, the tenant,
the migrations' key, whether it was masked, and for each part its member name, size and SHA-256.
Nothing machine-specific is in it: no ports, no paths, no secret of the environment.

Reading trusts nothing: only regular members of the names the manifest lists (``parts/<service>``),
each the size and hash the manifest says, no claimed size beyond the file's own, a manifest of
bounded size and depth; a part is copied into a private folder under a name of ours, never extracted
by its member name.  Any difference is a :class:`~driveops_env.errors.UsageError` (exit 2) naming what
is wrong, before anything is changed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from driveops_env import files
from driveops_env.errors import UsageError

FORMAT = 1
MANIFEST = "manifest.json"
MANIFEST_LIMIT = 1024 * 1024
PART_NAME = re.compile(r"parts/[a-z][a-z0-9_-]{0,40}")
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Part:
    """One store's data in the file."""

    service: str
    size: int
    sha256: str

    @property
    def member(self) -> str:
        return f"parts/{self.service}"


@dataclass(frozen=True)
class Manifest:
    tenant: str
    migrations: dict[str, str]
    masked: bool
    parts: dict[str, Part]
    created: str = ""
    version: str = ""  # driveops-env's, when written
    identity: dict[str, str] = field(default_factory=dict)  # the tenant's id and name (load --as replaces them)

    def as_json(self) -> bytes:
        body = {
            "format": FORMAT,
            "driveops_env": self.version or _version(),
            "tenant": self.tenant,
            "identity": self.identity,
            "created": self.created,
            "migrations": self.migrations,
            "masked": self.masked,
            "parts": {n: {"member": p.member, "size": p.size, "sha256": p.sha256} for n, p in self.parts.items()},
        }
        return json.dumps(body, indent=2, sort_keys=True).encode()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("driveops-env")
    except PackageNotFoundError:  # run from a checkout that is not installed
        return "unknown"


def digest_of(path: Path) -> tuple[int, str]:
    """A file's size and SHA-256."""
    sha, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            sha.update(chunk)
            size += len(chunk)
    return size, sha.hexdigest()


def write(
    target: Path,
    tenant: str,
    migrations: Mapping[str, str],
    masked: bool,
    parts: Mapping[str, Path],
    identity: Mapping[str, str] | None = None,
) -> Manifest:
    """``parts`` (service -> a file of its data) written to ``target`` (0600, no link followed) with
    their manifest; the manifest."""
    described = {n: Part(n, *digest_of(p)) for n, p in parts.items()}
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    manifest = Manifest(tenant, dict(migrations), masked, described, created, identity=dict(identity or {}))
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle, tarfile.open(fileobj=handle, mode="w", format=tarfile.PAX_FORMAT) as tar:
            _add(tar, MANIFEST, io.BytesIO(manifest.as_json()), len(manifest.as_json()))
            for name, part in described.items():
                with parts[name].open("rb") as data:
                    _add(tar, part.member, data, part.size)
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return manifest


def _add(tar: tarfile.TarFile, name: str, data: Any, size: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o600, int(time.time())
    tar.addfile(info, data)


def read(source: Path, folder: Path) -> tuple[Manifest, dict[str, Path]]:
    """The manifest of the snapshot ``source`` and its parts, each verified and copied into
    ``folder`` (a private folder of the caller's)."""
    try:
        size = _regular_size(source)
        with tarfile.open(source, mode="r:") as tar:
            first = [member] if (member := tar.next()) is not None else []
            manifest = _manifest(source, tar, first, size)
            return manifest, _parts(source, tar, first + _members(source, tar, len(manifest.parts)), manifest, folder)
    except (tarfile.TarError, EOFError) as exc:
        raise _bad(source, f"not a snapshot file (a tar archive): {exc}") from None


def _members(source: Path, tar: tarfile.TarFile, wanted: int) -> list[tarfile.TarInfo]:
    """The members after the manifest, read one header at a time: no more than it lists."""
    found = []
    while (member := tar.next()) is not None:
        found.append(member)
        if len(found) > wanted:
            raise _bad(source, f"it has more members than the {wanted} part(s) its manifest lists")
    return found


def _regular_size(source: Path) -> int:
    try:
        info = os.stat(source)
    except OSError as exc:
        raise UsageError(f"cannot read the snapshot {source}: {exc.strerror}", hint="check the path") from None
    if not os.path.isfile(source):
        raise _bad(source, "not a regular file")
    return info.st_size


def _manifest(source: Path, tar: tarfile.TarFile, members: list[tarfile.TarInfo], size: int) -> Manifest:
    if not members or members[0].name != MANIFEST or not members[0].isfile():
        raise _bad(source, f"its first member is not {MANIFEST}")
    if members[0].size > MANIFEST_LIMIT:
        raise _bad(source, f"its manifest claims {members[0].size} bytes (at most {MANIFEST_LIMIT})")
    handle = tar.extractfile(members[0])
    text = handle.read(MANIFEST_LIMIT + 1).decode("utf-8", "replace") if handle else ""
    raw = files.parse_json(text, source, "snapshot manifest")
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise _bad(source, f"its manifest is not of format {FORMAT}")
    parts = raw.get("parts")
    if (
        not isinstance(parts, dict)
        or not isinstance(raw.get("tenant"), str)
        or not isinstance(raw.get("migrations"), dict)
    ):
        raise _bad(source, "its manifest lacks tenant, migrations or parts")
    described = {str(n): _part(source, str(n), p, size) for n, p in parts.items()}
    migrations = {str(k): str(v) for k, v in raw["migrations"].items()}
    identity = raw.get("identity") or {}
    if not isinstance(identity, dict) or not all(isinstance(v, str) for v in identity.values()):
        raise _bad(source, "its manifest's identity is not names and values")
    version, created = str(raw.get("driveops_env", "")), str(raw.get("created", ""))
    masked = bool(raw.get("masked"))
    return Manifest(
        raw["tenant"], migrations, masked, described, created, version, {str(k): v for k, v in identity.items()}
    )


def _part(source: Path, name: str, raw: Any, size: int) -> Part:
    if not isinstance(raw, dict) or not isinstance(raw.get("size"), int) or not isinstance(raw.get("sha256"), str):
        raise _bad(source, f"part {name!r} of its manifest lacks a size or a sha256")
    part = Part(name, raw["size"], raw["sha256"])
    if not PART_NAME.fullmatch(part.member) or raw.get("member") != part.member:
        raise _bad(source, f"part {name!r} has member name {raw.get('member')!r}; expected parts/<service>")
    if not 0 <= part.size <= size:
        raise _bad(source, f"part {name!r} claims {part.size} bytes, more than the file's {size}")
    return part


def _parts(
    source: Path, tar: tarfile.TarFile, members: list[tarfile.TarInfo], manifest: Manifest, folder: Path
) -> dict[str, Path]:
    by_member = {p.member: p for p in manifest.parts.values()}
    found: dict[str, Path] = {}
    for member in members[1:]:
        part = by_member.get(member.name)
        if part is None or part.service in found:
            raise _bad(source, f"member {member.name!r} is not a part its manifest lists once")
        if not member.isfile() or member.size != part.size:
            raise _bad(source, f"member {member.name!r} is not a file of the {part.size} bytes its manifest says")
        found[part.service] = _copy(source, tar, member, part, folder)
    missing = sorted(set(manifest.parts) - set(found))
    if missing:
        raise _bad(source, f"part(s) {', '.join(missing)} its manifest lists are missing (a truncated file?)")
    return found


def _copy(source: Path, tar: tarfile.TarFile, member: tarfile.TarInfo, part: Part, folder: Path) -> Path:
    target = folder / f"part-{part.service}"
    handle = tar.extractfile(member)
    sha, size = hashlib.sha256(), 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as out:
        while handle is not None and (chunk := handle.read(CHUNK)):
            size += len(chunk)
            if size > part.size:
                break
            sha.update(chunk)
            out.write(chunk)
    if size != part.size or sha.hexdigest() != part.sha256:
        raise _bad(source, f"part {part.service!r} is not what its manifest says (size or SHA-256 differ)")
    return target


def _bad(source: Path, what: str) -> UsageError:
    return UsageError(
        f"the snapshot {source} is refused: {what}; nothing was changed",
        hint="use a file `driveops-env snapshot save` wrote, copied whole",
    )
