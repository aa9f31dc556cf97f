"""A running environment described for other machines: ``driveops-env export`` writes it, and
``--from FILE`` (CLI) or ``--driveops-from FILE`` (pytest) use it without any state of their own.

The descriptor (JSON, mode 0600: it holds credentials) carries the endpoints and credentials of every
server and tenant, and the seed and realm files the environment was made from (the fixtures restore
their own copies from them).  It carries no path, process id or container id of the machine that made
it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from driveops_env import files, paths, typed_json
from driveops_env.errors import UsageError
from driveops_env.state import EnvState, ServiceRecord, TenantRecord

FORMAT = "driveops-env/descriptor-1"
LOCAL_FIELDS = ("process", "container", "pod")  # each backend's own part: this machine's, or its engine's


def _files(directory: Path) -> dict[str, str]:
    if not directory.is_dir():
        return {}
    return {
        str(path.relative_to(directory)): path.read_text(encoding="utf-8")
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def export(state: EnvState) -> dict[str, Any]:
    services = {}
    for key, record in state.services.items():
        raw = asdict(record)
        for name in LOCAL_FIELDS:
            raw.pop(name, None)
        raw["extra"] = {k: v for k, v in record.extra.items() if not k.startswith("local_")}  # machine-local
        services[key] = raw
    return {
        "format": FORMAT,
        "name": state.name,
        "backend": state.backend,
        "isolation": state.isolation,
        "fingerprint": state.fingerprint,
        "services": services,
        "tenants": {slug: asdict(t) for slug, t in state.tenants.items()},
        "seeds": _files(Path(state.seeds_dir)),
        "realms": _files(Path(state.realms_dir)),
    }


def write(state: EnvState, target: Path | None) -> str:
    """The descriptor as text; written to ``target`` (mode 0600) when given."""
    text = json.dumps(export(state), indent=2, sort_keys=True) + "\n"
    if target is not None:
        files.write_private(target, text.encode())
    return text


def _materialise(files: dict[str, str], target: Path) -> Path:
    """Seed files of a descriptor, written once into a private folder of the cache."""
    paths.private_dir(target, "the descriptor cache", hint="check --cache-dir")
    for relative, text in files.items():
        path = (target / relative).resolve()
        if not paths.is_within(path, target):
            raise UsageError(f"the descriptor names a seed file outside its folder: {relative!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue  # another test process of this run wrote it: never emptied under a reader
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    return target


def _current(record: Any) -> Any:
    """A server as an earlier driveops-env exported it (its image and stop signals beside the rest: a
    backend's own fields, which a descriptor no longer carries)."""
    old = ("image", "stop_signals", *LOCAL_V3)
    return {k: v for k, v in record.items() if k not in old} if isinstance(record, dict) else record


LOCAL_V3 = ("log_path", "data_dir", "pid", "pid_start", "argv0", "container_id", "container_name", "network")


def load(path: Path, cache_dir: Path) -> EnvState:
    raw = files.load_json(path, "descriptor")
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise UsageError(
            f"{path} is not a driveops-env descriptor ({FORMAT})", hint="write one with `driveops-env export`"
        )
    digest = hashlib.sha256(json.dumps([raw.get("seeds"), raw.get("realms")], sort_keys=True).encode()).hexdigest()[:16]
    root = cache_dir / "descriptors" / digest
    try:
        services = {
            k: typed_json.build(ServiceRecord, _current(v), f"services.{k}") for k, v in raw["services"].items()
        }
        tenants = {k: typed_json.build(TenantRecord, v, f"tenants.{k}") for k, v in raw["tenants"].items()}
        seeds = _materialise(dict(raw.get("seeds") or {}), root / "seeds")
        realms = _materialise(dict(raw.get("realms") or {}), root / "realms")
        return EnvState(
            name=str(raw["name"]),
            backend="descriptor",
            isolation=str(raw["isolation"]),
            spec_hash="",
            fingerprint=dict(raw.get("fingerprint") or {}),
            data_dir="",
            seeds_dir=str(seeds),
            realms_dir=str(realms),
            status="running",
            services=services,
            tenants=tenants,
        )
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise UsageError(
            f"the descriptor {path} is not valid: {exc}", hint="write it again with `driveops-env export`"
        ) from exc
