"""Evidence of an environment for a pipeline's artifacts: every server's log, ``status --json`` and
``check --json`` in one ``.tar.gz``, with every secret the environment generated redacted."""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from driveops_env import files, render
from driveops_env.backends import Backend
from driveops_env.health import CheckResult
from driveops_env.services.base import Service
from driveops_env.state import EnvState


def secrets_of(state: EnvState, services: Mapping[str, Service[Any, Any]]) -> list[str]:
    """Every secret the state holds: the servers' admin passwords and what each service says of its
    stores (passwords, client secrets, seeded users' passwords)."""
    found = [s.admin_password for s in state.services.values()]
    for tenant in state.tenants.values():
        for name, raw in tenant.stores.items():
            if name in services:
                found += services[name].load(raw).secrets()
    return sorted({s for s in found if s}, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "****")
    return text


def write(
    target: Path,
    state: EnvState,
    backend: Backend,
    services: Mapping[str, Service[Any, Any]],
    results: tuple[list[CheckResult], list[CheckResult]],
) -> list[str]:
    """Write the bundle (``results``: the servers' status, the tenants' checks); returns its members."""
    status, checks = results
    secrets = secrets_of(state, services)
    members: dict[str, str] = {}
    for record in state.services.values():
        try:
            text = backend.logs(record, None)
        except Exception as exc:  # a log that cannot be read is said in the bundle, not fatal
            text = f"(log not available: {exc})\n"
        members[f"logs/{record.key}.log"] = text
    for path in sorted((Path(state.data_dir) / "logs").glob("migrate.*.log")):  # the team's migrations
        members[f"logs/{path.name}"] = files.read_text(path, "migration log", limit=files.limit_bytes())
    status_data = render.endpoints_data(state, services, show_secrets=False) | {"services": [asdict(r) for r in status]}
    members["status.json"] = json.dumps(status_data, indent=2)
    members["check.json"] = json.dumps([asdict(r) for r in checks], indent=2)
    members["check.md"] = render.checks_markdown(checks)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in members.items():
            data = redact(text, secrets).encode()
            info = tarfile.TarInfo(f"driveops-env-{state.name}/{name}")
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o600
            tar.addfile(info, io.BytesIO(data))
    files.write_private(target, buffer.getvalue())  # never through a link planted at the name
    return list(members)
