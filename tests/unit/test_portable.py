"""The docker backend's code paths need nothing Linux-only: importing the package and planning an
environment for the docker backend work with /proc unavailable (macOS, Windows)."""

from __future__ import annotations

import builtins
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from driveops_env import options, orchestrator
from driveops_env.backends.base import StartContext
from driveops_env.backends.docker import DockerBackend
from driveops_env.plan import Launch, StartPlan
from driveops_env.ports import PortAllocator
from driveops_env.state import EnvState, StateStore
from driveops_env.tenants import load_catalogue, resolve_tenants


def _no_proc(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(path: object) -> None:
        if str(path).startswith("/proc"):
            raise FileNotFoundError(2, "no /proc on this system", str(path))

    real_open, real_readlink, real_read_text = builtins.open, os.readlink, Path.read_text

    def fake_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        refuse(file)
        return real_open(file, *args, **kwargs)

    def fake_readlink(path: Any, *args: Any, **kwargs: Any) -> Any:
        refuse(path)
        return real_readlink(path, *args, **kwargs)

    def fake_read_text(self: Path, *args: Any, **kwargs: Any) -> str:
        refuse(self)
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(os, "readlink", fake_readlink)
    monkeypatch.setattr(Path, "read_text", fake_read_text)


def test_a_docker_plan_needs_no_proc(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _no_proc(monkeypatch)
    with pytest.raises(FileNotFoundError):
        Path("/proc/self/stat").read_text()  # the patch holds
    settings = options.resolve(
        cli={
            "tenants": "acme,beta",
            "backend": "docker",
            "state_dir": str(tmp_path / "s"),
            "data_dir": str(tmp_path / "d"),
            "isolation": "shared",
        },
        environ={},
        pyproject={},
    )
    tenants = resolve_tenants(settings.tenants, load_catalogue(settings.seeds_dir / "tenants.json"))
    what = orchestrator.plan_input(settings, tenants, "container")
    state = EnvState("x", "docker", "shared", "h", {}, str(tmp_path / "d" / "x"))
    store = StateStore(tmp_path / "s")
    ctx = StartContext("x", "h", tmp_path / "d" / "x", settings, threading.Event(), lambda r: None, PortAllocator())
    steps = StartPlan(what, DockerBackend(settings), ctx, Launch(state, store), lambda _: None).steps()
    names = {s.name for s in steps}
    assert {"postgres.shared", "redis.shared", "mongo.acme", "mongo.beta", "keycloak"} <= names
    assert {"seed postgres.acme", "seed redis.beta", "realm acme", "realm beta"} <= names
    assert all(s.after == () for s in steps if s.name.startswith("mongo."))  # no PostgreSQL under MongoDB
