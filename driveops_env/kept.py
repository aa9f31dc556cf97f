"""The copies a failed test used, kept instead of restored (``pytest --driveops-keep-failed``): each a
record in the environment's directory (``kept/<id>.json``, 0600: the copy's access to every store, the
test, when it ends) that ``driveops-env copies`` lists, ``driveops-env env --copy <id>`` prints the
values of, and ``gc`` drops once ``keep_failed_hours`` have passed (``down`` takes them with the
environment).  An environment a session kept only for them is stopped by ``gc`` with the last one."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from driveops_env import files
from driveops_env.errors import UsageError
from driveops_env.running import services_of, sources_of, work_of
from driveops_env.services.capabilities import Copied
from driveops_env.settings import Settings
from driveops_env.state import EnvState, TenantRecord

ONLY_FOR_COPIES = "environment.json"  # an environment kept running for its kept copies alone


@dataclass(frozen=True)
class KeptCopy:
    id: str
    tenant: str
    token: str
    test: str
    created: float
    expires: float
    stores: dict[str, dict[str, Any]] = field(default_factory=dict)
    memo: dict[str, dict[str, str]] = field(default_factory=dict)  # each store's notes (a Redis lease)

    def record(self, state: EnvState) -> TenantRecord:
        """The tenant as the failed test saw it: its stores are the kept copies."""
        if self.tenant not in state.tenants:
            raise UsageError(
                f"kept copy {self.id}: tenant {self.tenant!r} was removed", hint="`driveops-env gc` drops it"
            )
        return replace(state.tenants[self.tenant], stores=self.stores)


def folder_of(state: EnvState) -> Path:
    """Where an environment's kept copies are recorded: its own directory (gone with ``down``)."""
    return Path(state.data_dir) / "kept"


def save(folder: Path, copy: KeptCopy) -> None:
    folder.mkdir(mode=0o700, exist_ok=True)
    files.write_private(folder / f"{copy.id}.json", json.dumps(asdict(copy), indent=1).encode())


def records(folder: Path) -> list[KeptCopy]:
    """Every kept copy of the environment, oldest first (a record that cannot be read is skipped)."""
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        if path.name == ONLY_FOR_COPIES:
            continue
        try:
            found.append(KeptCopy(**files.load_json(path, "kept copy", limit=files.limit_bytes(1))))
        except (TypeError, UsageError):
            continue
    return sorted(found, key=lambda c: c.created)


def find(folder: Path, copy_id: str) -> KeptCopy:
    for copy in records(folder):
        if copy.id == copy_id:
            return copy
    known = ", ".join(c.id for c in records(folder)) or "none"
    raise UsageError(f"no kept copy {copy_id!r}", hint=f"`driveops-env copies` lists them (now: {known})")


def drop(state: EnvState, settings: Settings, folder: Path, copy: KeptCopy) -> None:
    """Every store of the copy dropped, then its record."""
    services = services_of(state, settings)
    base = state.tenants.get(copy.tenant)
    if base is not None:
        for name, raw in copy.stores.items():
            service = services.get(name)
            if isinstance(service, Copied):
                work = work_of(state, base, None, sources_of(state, settings), token=copy.token)
                service.drop_copy(service.load(raw), replace(work, memo=dict(copy.memo.get(name, {}))))
    (folder / f"{copy.id}.json").unlink(missing_ok=True)


def expired(folder: Path, now: float | None = None) -> list[KeptCopy]:
    moment = time.time() if now is None else now
    return [c for c in records(folder) if c.expires <= moment]


def mark_only_for_copies(folder: Path) -> None:
    folder.mkdir(mode=0o700, exist_ok=True)
    files.write_private(folder / ONLY_FOR_COPIES, b'{"stop_with_the_last_copy": true}')


def only_for_copies(folder: Path) -> bool:
    return (folder / ONLY_FOR_COPIES).is_file()
