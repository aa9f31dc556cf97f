"""Shared test helpers: a sandbox per test (own state and data directories, own environment name),
a CLI runner, and a leak detector that finds any process or directory a test left behind."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from driveops_env import options

REPO = Path(__file__).resolve().parents[1]
pytest_plugins = ["pytester"]


def processes_mentioning(text: str) -> list[str]:
    """Live (non-zombie) processes whose command line or working directory contains ``text``
    (redis-server rewrites its command line; every local server runs in its data directory)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (proc / "stat").read_text()
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if (text in cmdline or text in cwd) and stat[stat.rindex(")") + 2] not in "ZX":
            found.append(f"{proc.name}: {cmdline[:160]}")
    return found


@dataclass
class Sandbox:
    name: str
    state_dir: Path
    data_dir: Path
    services: str = "postgres,redis"  # Keycloak costs seconds: tests about it ask for it

    def settings(self, **cli: Any) -> options.Settings:
        values = {
            "name": self.name,
            "state_dir": str(self.state_dir),
            "data_dir": str(self.data_dir),
            "backend": "local",
            "services": self.services,
        }
        values.update(cli)
        return options.resolve(cli=values, environ={}, pyproject={})

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "DRIVEOPS_ENV_STATE_DIR": str(self.state_dir),
                "DRIVEOPS_ENV_DATA_DIR": str(self.data_dir),
                "DRIVEOPS_ENV_NAME": self.name,
                "DRIVEOPS_ENV_BACKEND": "local",
                "DRIVEOPS_ENV_SERVICES": self.services,
            }
        )
        return env

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "driveops_env.cli", *args], capture_output=True, text=True,
            env=self.env(), timeout=timeout, cwd=self.state_dir.parent, check=False,
        )  # fmt: skip

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "driveops_env.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=self.env(), cwd=self.state_dir.parent,
        )  # fmt: skip

    def state(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads((self.state_dir / f"{self.name}.json").read_text())
        return result

    def leftovers(self) -> list[str]:
        """Everything of this sandbox still running or on disk."""
        left = processes_mentioning(str(self.data_dir))
        if self.data_dir.exists():
            left += [f"dir: {p}" for p in self.data_dir.iterdir() if not p.name.startswith(".pg-template")]
        left += [f"state: {p}" for p in self.state_dir.glob("*.json")]
        return left


@contextlib.contextmanager
def make_sandbox(tmp_path: Path, services: str = "postgres,redis") -> Iterator[Sandbox]:
    # The data root must be enterable by the PostgreSQL user when tests run as root (pytest's
    # tmp_path is 0700 under /tmp/pytest-of-root), hence a separate 0711 directory, in RAM if possible.
    ram = Path("/dev/shm")
    data_dir = Path(tempfile.mkdtemp(prefix="driveops-test-", dir=ram if ram.is_dir() else "/tmp"))
    data_dir.chmod(0o711)
    (tmp_path / "state").mkdir()
    box = Sandbox("t" + uuid.uuid4().hex[:8], tmp_path / "state", data_dir, services)
    try:
        yield box
    finally:
        left = box.leftovers()
        if left:  # clean up for the next tests, then fail this one
            box.cli("down", "--name", box.name)
            for line in processes_mentioning(str(data_dir)):
                os.kill(int(line.split(":")[0]), 9)
        shutil.rmtree(data_dir, ignore_errors=True)
    assert not left, f"the test left things behind: {left}"


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    with make_sandbox(tmp_path) as box:
        yield box


@pytest.fixture
def kc_sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    """A sandbox whose environments run Keycloak too."""
    with make_sandbox(tmp_path, services="keycloak,postgres,redis") as box:
        yield box
