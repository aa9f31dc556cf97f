"""Helpers the tests share (the fixtures live in conftest.py): a sandbox per test (own state and data
directories, own environment name), a CLI runner, a leak detector that finds any process or directory
a test left behind, and ``wait_for`` instead of sleeps."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from driveops_env import options
from driveops_env.settings import Settings

REPO = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def wait_for(found: Callable[[], T], timeout: float = 120, what: str = "the condition") -> T:
    """Poll ``found`` until it returns something true (and return that): the tests wait for what they
    need, never for a guessed time."""
    deadline = time.monotonic() + timeout
    while not (value := found()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(0.05)
    return value


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


def pid_of(record: dict[str, Any]) -> int | None:
    """A state file's server: its process's pid (the local backend's part), if it has one."""
    found = (record.get("process") or {}).get("pid")
    return int(found) if found is not None else None


def container_of(record: dict[str, Any]) -> str | None:
    """A state file's server: its container's id (the docker backend's part), if it has one."""
    found = (record.get("container") or {}).get("id")
    return str(found) if found else None


def backend_under_test() -> str:
    """The backend the integration tests run on: scripts/test runs them once per backend."""
    return os.environ.get("DRIVEOPS_TEST_BACKEND", "local")


def docker_client() -> Any:
    import docker

    return docker.from_env()


def _list_containers(filters: dict[str, str]) -> list[Any]:
    """The docker SDK inspects each listed container: one removed meanwhile raises NotFound."""
    import docker.errors

    for _ in range(20):
        try:
            return list(docker_client().containers.list(all=True, filters=filters))
        except docker.errors.NotFound:
            time.sleep(0.1)
    return list(docker_client().containers.list(all=True, filters=filters))


@dataclass
class Sandbox:
    name: str
    state_dir: Path
    data_dir: Path
    services: str = "postgres,redis"  # Keycloak costs seconds: tests about it ask for it
    backend: str = "local"
    extra_env: dict[str, str] = field(default_factory=dict)  # e.g. DOCKER_HOST of a remote engine

    def settings(self, **cli: Any) -> Settings:
        values = {
            "name": self.name,
            "state_dir": str(self.state_dir),
            "data_dir": str(self.data_dir),
            "backend": self.backend,
            "services": self.services,
        }
        values.update(cli)
        # the images, and the cache (pytester points HOME elsewhere; the box fixture names the real cache)
        inherited = {
            k: v for k, v in os.environ.items() if k.startswith(("DRIVEOPS_ENV_IMAGE_", "DRIVEOPS_ENV_CACHE_DIR"))
        }
        return options.resolve(cli=values, environ=inherited, pyproject={})

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "DRIVEOPS_ENV_STATE_DIR": str(self.state_dir),
                "DRIVEOPS_ENV_DATA_DIR": str(self.data_dir),
                "DRIVEOPS_ENV_NAME": self.name,
                "DRIVEOPS_ENV_BACKEND": self.backend,
                "DRIVEOPS_ENV_SERVICES": self.services,
            }
        )
        env.update(self.extra_env)
        return env

    def cli_command(self) -> str:
        """The CLI as a shell command (for pipelines in tests)."""
        return f"{shlex.quote(sys.executable)} -m driveops_env.cli"

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "driveops_env.cli", *args],
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout,
            cwd=self.state_dir.parent,
            check=False,
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "driveops_env.cli", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(),
            cwd=self.state_dir.parent,
            preexec_fn=_ctrl_c_as_in_a_terminal,
        )

    def state(self) -> dict[str, Any]:
        return self.state_of(self.name)

    def state_of(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = json.loads((self.state_dir / f"{name}.json").read_text())
        return result

    def home_label(self) -> str:
        return hashlib.sha256(str(self.state_dir.resolve()).encode()).hexdigest()[:12]

    def containers(self) -> list[Any]:
        """This sandbox's containers (docker backend), running or not."""
        if self.backend != "docker":
            return []
        return _list_containers({"label": f"org.driveops-env.home={self.home_label()}"})

    def leftovers(self) -> list[str]:
        """Everything of this sandbox still running or on disk: processes, containers, networks,
        volumes, data directories, state files."""
        left = processes_mentioning(str(self.data_dir))
        if self.data_dir.exists():
            left += [f"dir: {p}" for p in self.data_dir.iterdir() if not p.name.startswith(".pg-template")]
        left += [f"state: {p}" for p in self.state_dir.glob("*.json")]
        if self.backend == "docker":
            client = docker_client()
            label = {"label": f"org.driveops-env.home={self.home_label()}"}
            left += [f"container: {c.name}" for c in _list_containers(label)]
            left += [f"network: {n.name}" for n in client.networks.list(filters=label)]
            left += [f"volume: {v.name}" for v in client.volumes.list(filters=label)]
        return left

    def kill_server(self, key: str) -> None:
        """Kill one server of the running environment the hard way (SIGKILL); returns once it is dead."""
        record = self.state()["services"][key]
        if container_of(record):
            docker_client().containers.get(container_of(record)).kill()
        else:
            os.killpg(int(pid_of(record) or 0), signal.SIGKILL)  # each server leads its process group
        wait_for(lambda: not self.server_alive(record), 30, f"the death of {key}")

    def server_alive(self, record: dict[str, Any]) -> bool:
        if container_of(record):
            try:
                return bool(docker_client().containers.get(container_of(record)).status == "running")
            except Exception:
                return False
        stat = Path(f"/proc/{pid_of(record)}/stat")
        return stat.exists() and stat.read_text().split(") ")[1][0] not in "ZX"


def _ctrl_c_as_in_a_terminal() -> None:
    """A command started from a background job inherits SIGINT ignored (as a shell does for `cmd &`);
    the tests' Ctrl-C is a terminal's, whatever started the suite."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextlib.contextmanager
def make_sandbox(tmp_path: Path, services: str = "postgres,redis", backend: str | None = None) -> Iterator[Sandbox]:
    # The data root must be enterable by the PostgreSQL user when tests run as root (pytest's
    # tmp_path is 0700 under /tmp/pytest-of-root), hence a separate 0711 directory, in RAM if possible.
    ram = Path("/dev/shm")
    data_dir = Path(tempfile.mkdtemp(prefix="driveops-test-", dir=ram if ram.is_dir() else "/tmp"))
    data_dir.chmod(0o711)
    (tmp_path / "state").mkdir()
    box = Sandbox("t" + uuid.uuid4().hex[:8], tmp_path / "state", data_dir, services, backend or backend_under_test())
    try:
        yield box
    finally:
        left = box.leftovers()
        if left:  # clean up for the next tests, then fail this one
            box.cli("down", "--name", box.name)
            for line in processes_mentioning(str(data_dir)):
                os.kill(int(line.split(":")[0]), 9)
            if box.backend == "docker":
                from driveops_env.backends.docker import sweep

                sweep(docker_client(), {"org.driveops-env.home": box.home_label()})
        shutil.rmtree(data_dir, ignore_errors=True)
    assert not left, f"the test left things behind: {left}"


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=600)


def userinfo_status(access: Any, token: str) -> int:
    """The status the realm's userinfo endpoint answers a token with (200, or 401 for another realm's)."""
    from keycloak.exceptions import KeycloakError

    from driveops_env.services.keycloak import admin

    try:
        admin.openid(access).userinfo(token)
    except KeycloakError as exc:
        return int(exc.response_code or 500)
    return 200
