"""A remote Docker engine, for real: a second dockerd in a network namespace, reached over TCP at an
address of the benchmarking range 198.18.0.0/15 (traffic never leaves the machine), with the images
loaded into it.  `up`, `env`, `token`, `check`, `reset`, `export`, `down` against it, and nothing left.

The engine itself: tests/remote/engine.py.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.remote.engine import RemoteEngine, remote_engine

pytestmark = [pytest.mark.integration, pytest.mark.docker]


@pytest.fixture(scope="module")
def engine() -> Iterator[RemoteEngine]:
    if os.geteuid() != 0 or shutil.which("dockerd") is None:
        pytest.fail("this test runs as root with Debian's docker.io (scripts/provision --docker installs it)")
    images = [v for k, v in os.environ.items() if k.startswith("DRIVEOPS_ENV_IMAGE_")]
    with remote_engine(images) as remote:
        yield remote


def test_the_whole_cycle_on_a_remote_engine(engine: RemoteEngine, tmp_path: Path) -> None:
    from tests.helpers import make_sandbox

    with make_sandbox(tmp_path, services="keycloak,postgres,mongo,redis", backend="docker") as box:
        box.extra_env = {"DOCKER_HOST": engine.tcp}
        up = box.cli("up", "--tenants", "acme,beta", timeout=900)
        assert up.returncode == 0, up.stderr[-3000:]
        assert f"@{engine.address}:" in up.stdout and "127.0.0.1" not in up.stdout
        variables = json.loads(box.cli("env", "--tenant", "acme", "--format", "json").stdout)
        assert variables["PGHOST"] == engine.address and engine.address in variables["DRIVEOPS_REDIS_URL"]
        assert variables["DRIVEOPS_KEYCLOAK_ISSUER"].startswith(f"http://{engine.address}:")
        assert box.cli("token", "--tenant", "beta", "--decode").returncode == 0
        check = box.cli("check")
        assert check.returncode == 0, check.stdout + check.stderr
        assert box.cli("reset", "--tenant", "acme").returncode == 0
        box.extra_env = {}  # without DOCKER_HOST: the environment's engine comes from its state file
        status = box.cli("status")
        assert status.returncode == 0, status.stdout + status.stderr
        bindings = json.loads(engine.docker("inspect", *engine.docker("ps", "-q").split()))
        for container in bindings:
            for ports in (container["HostConfig"]["PortBindings"] or {}).values():
                assert all(p["HostIp"] == engine.address for p in ports)  # never 0.0.0.0
        assert box.cli("down").returncode == 0
        label = f"label=org.driveops-env.env={box.name}"
        assert engine.docker("ps", "-aq", "--filter", label).strip() == ""
        assert engine.docker("network", "ls", "-q", "--filter", label).strip() == ""
        assert engine.docker("volume", "ls", "-q", "--filter", label).strip() == ""
