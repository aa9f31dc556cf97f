"""A developer's own machine: the Quickstart as an unprivileged user (Debian packages present, Go in
/usr/local/go but not on a login shell's PATH), and the docker backend's code paths without /proc."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from driveops_env import options, toolchains
from tests.helpers import REPO, processes_mentioning

pytestmark = [pytest.mark.integration, pytest.mark.local_only]
LOGIN_PATH = "/usr/local/bin:/usr/bin:/bin"  # what a login shell has: no /usr/local/go/bin


@pytest.fixture
def developer() -> Iterator[pwd.struct_passwd]:
    if os.geteuid() != 0:
        pytest.fail("this test runs as root (as CI does): it creates the unprivileged developer it runs as")
    name = f"dev{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", name], check=True)
    user = pwd.getpwnam(name)
    try:
        yield user
    finally:
        subprocess.run(["pkill", "-KILL", "-u", name], check=False)
        subprocess.run(["userdel", "--remove", name], check=False, capture_output=True)
        shutil.rmtree(f"/dev/shm/driveops-env-{user.pw_uid}", ignore_errors=True)


def _as(user: pwd.struct_passwd, script: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {"HOME": user.pw_dir, "PATH": LOGIN_PATH, "LANG": "C.UTF-8", "USER": user.pw_name}
    return subprocess.run(
        ["runuser", "-u", user.pw_name, "--", "env", "-i", *[f"{k}={v}" for k, v in env.items()], "bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=user.pw_dir,
    )


def _seed_downloads(user: pwd.struct_passwd) -> None:
    """The developer's cache gets the downloads (not the builds) this machine already has: the test is
    about running as that user, not about fetching 160 MB again."""
    mine = options.resolve(environ={}, pyproject={}).cache_dir
    theirs = Path(user.pw_dir) / ".cache" / "driveops-env"
    for relative in ("keycloak", "ferretdb"):
        (theirs / relative).mkdir(parents=True, exist_ok=True)
    for archive in (mine / "keycloak").glob("keycloak-quarkus-dist-*.zip"):
        shutil.copy2(archive, theirs / "keycloak" / archive.name)
    for binary in (mine / "ferretdb").glob("ferretdb-v*"):
        if binary.is_file():
            shutil.copy2(binary, theirs / "ferretdb" / binary.name)
    subprocess.run(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", str(Path(user.pw_dir) / ".cache")], check=True)


def test_the_quickstart_as_an_unprivileged_developer(developer: pwd.struct_passwd) -> None:
    clone = Path(developer.pw_dir) / "driveops-env"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, files):
        target = clone / name.decode()
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name.decode(), target)
    _seed_downloads(developer)
    subprocess.run(["chown", "-R", f"{developer.pw_uid}:{developer.pw_gid}", str(clone)], check=True)
    up = _as(developer, "cd ~/driveops-env && PYTHON=/usr/bin/python3 scripts/dev up --tenants acme,beta")
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    assert "How to connect" in up.stdout and "sudo" not in up.stderr
    status = _as(developer, "~/.cache/driveops-env/venv/bin/driveops-env status")
    assert status.returncode == 0, status.stderr
    down = _as(developer, "~/.cache/driveops-env/venv/bin/driveops-env down")
    assert down.returncode == 0, down.stderr
    data = Path(f"/dev/shm/driveops-env-{developer.pw_uid}")
    assert processes_mentioning(str(data)) == []
    assert not data.exists() or [p.name for p in data.iterdir() if not p.name.startswith(".")] == []


def test_go_is_found_where_it_usually_lives(monkeypatch: pytest.MonkeyPatch) -> None:
    if not Path("/usr/local/go/bin/go").exists():
        pytest.fail("this machine kind has Go in /usr/local/go; the test checks it is found there")
    monkeypatch.setenv("PATH", LOGIN_PATH)
    monkeypatch.delenv("GOROOT", raising=False)
    go, env = toolchains.find_go("FerretDB", "mongo", "")
    assert go == Path("/usr/local/go/bin/go") and env["PATH"].startswith("/usr/local/go/bin")
