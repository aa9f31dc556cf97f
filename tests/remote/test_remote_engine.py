"""A remote Docker engine, for real: a second dockerd in a network namespace, reached over TCP at an
address of the benchmarking range 198.18.0.0/15 (traffic never leaves the machine), with the images
loaded into it.  `up`, `env`, `token`, `check`, `reset`, `export`, `down` against it, and nothing left.

Only the network namespace is entered (``nsenter --net``): ``ip netns exec`` remounts /sys and dockerd
then stops with "Devices cgroup isn't mounted".
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.docker]


@dataclass
class RemoteEngine:
    address: str
    socket: str

    @property
    def tcp(self) -> str:
        return f"tcp://{self.address}:2375"

    def docker(self, *args: str) -> str:
        return subprocess.run(["docker", "-H", f"unix://{self.socket}", *args], capture_output=True, text=True,
                              check=True).stdout  # fmt: skip


def _run(*argv: str) -> None:
    subprocess.run(list(argv), check=True, capture_output=True)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RemoteEngine]:
    if os.geteuid() != 0 or shutil.which("dockerd") is None:
        pytest.fail("this test runs as root with Debian's docker.io (scripts/provision --docker installs it)")
    tag = uuid.uuid4().hex[:6]
    subnet = int(tag[:2], 16) % 250 + 1  # 198.18.<n>.0/30, one per run
    ns, host_if, ns_if = f"drv{tag}", f"drvh{tag}", f"drvn{tag}"
    address = f"198.18.{subnet}.2"
    root = Path(f"/var/lib/driveops-test-engine-{tag}")
    pidfile, sock = f"/run/{ns}.pid", f"/run/{ns}.sock"
    _run("ip", "netns", "add", ns)
    _run("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
    _run("ip", "link", "set", ns_if, "netns", ns)
    _run("ip", "addr", "add", f"198.18.{subnet}.1/30", "dev", host_if)
    _run("ip", "link", "set", host_if, "up")
    for cmd in (["ip", "addr", "add", f"{address}/30", "dev", ns_if], ["ip", "link", "set", ns_if, "up"],
                ["ip", "link", "set", "lo", "up"]):  # fmt: skip
        _run("ip", "netns", "exec", ns, *cmd)
    log = open(tmp_path_factory.mktemp("dockerd") / "dockerd.log", "w")  # noqa: SIM115 - closed below
    daemon = subprocess.Popen(
        ["nsenter", f"--net=/run/netns/{ns}", "dockerd", "--data-root", str(root), "--exec-root", f"/run/{ns}",
         "--pidfile", pidfile, "-H", f"tcp://{address}:2375", "-H", f"unix://{sock}",
         "--containerd-namespace", ns, "--containerd-plugins-namespace", f"{ns}p", "--bip", "172.31.250.1/24"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    remote = RemoteEngine(address, sock)
    try:
        for _ in range(120):
            if subprocess.run(["docker", "-H", remote.tcp, "info"], capture_output=True).returncode == 0:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"the second dockerd did not answer: {Path(log.name).read_text()[-2000:]}")
        images = [v for k, v in os.environ.items() if k.startswith(("DRIVEOPS_ENV_IMAGE_",))]
        save = subprocess.Popen(["docker", "save", *images], stdout=subprocess.PIPE)
        subprocess.run(["docker", "-H", f"unix://{sock}", "load"], stdin=save.stdout, check=True, capture_output=True)
        save.wait()
        yield remote
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
        log.close()
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["umount", "-R", str(root)], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(f"/run/{ns}", ignore_errors=True)


def test_the_whole_cycle_on_a_remote_engine(engine: RemoteEngine, tmp_path: Path) -> None:
    from tests.conftest import make_sandbox

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
        assert box.cli("status").returncode == 0
        bindings = json.loads(engine.docker("inspect", *engine.docker("ps", "-q").split()))
        for container in bindings:
            for ports in (container["HostConfig"]["PortBindings"] or {}).values():
                assert all(p["HostIp"] == engine.address for p in ports)  # never 0.0.0.0
        assert box.cli("down").returncode == 0
        label = f"label=org.driveops-env.env={box.name}"
        assert engine.docker("ps", "-aq", "--filter", label).strip() == ""
        assert engine.docker("network", "ls", "-q", "--filter", label).strip() == ""
        assert engine.docker("volume", "ls", "-q", "--filter", label).strip() == ""
