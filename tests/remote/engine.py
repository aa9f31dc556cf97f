"""A second Docker engine on this machine, reached like a remote one: a dockerd in a network namespace
with an address of the benchmarking range 198.18.0.0/15 (traffic never leaves the machine).  Used by
tests/remote and by the benchmark (remote engine against local engine, side by side).

Only the network namespace is entered (``nsenter --net``): ``ip netns exec`` remounts /sys and dockerd
then stops with "Devices cgroup isn't mounted".  Its own containerd namespaces keep it apart from the
local engine's containers.  Images move with ``docker save | docker -H ... load``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass
class RemoteEngine:
    address: str
    socket: str

    @property
    def tcp(self) -> str:
        return f"tcp://{self.address}:2375"

    def docker(self, *args: str) -> str:
        return subprocess.run(
            ["docker", "-H", f"unix://{self.socket}", *args], capture_output=True, text=True, check=True
        ).stdout


def _run(*argv: str) -> None:
    subprocess.run(list(argv), check=True, capture_output=True)


@contextlib.contextmanager
def remote_engine(images: Sequence[str]) -> Iterator[RemoteEngine]:
    """A running second engine holding ``images``; everything of it is removed afterwards."""
    if os.geteuid() != 0 or shutil.which("dockerd") is None:
        raise RuntimeError("a second engine needs root and Debian's docker.io (scripts/provision --docker)")
    tag = uuid.uuid4().hex[:6]
    subnet = int(tag[:2], 16) % 127 + 1  # 198.18.1-127.x/30; 198.18.128.0/17 holds the engines' networks
    ns, host_if, ns_if = f"drv{tag}", f"drvh{tag}", f"drvn{tag}"
    address = f"198.18.{subnet}.2"
    root = Path(f"/var/lib/driveops-test-engine-{tag}")
    sock = f"/run/{ns}.sock"
    _run("ip", "netns", "add", ns)
    _run("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
    _run("ip", "link", "set", ns_if, "netns", ns)
    _run("ip", "addr", "add", f"198.18.{subnet}.1/30", "dev", host_if)
    _run("ip", "link", "set", host_if, "up")
    for cmd in (
        ["ip", "addr", "add", f"{address}/30", "dev", ns_if],
        ["ip", "link", "set", ns_if, "up"],
        ["ip", "link", "set", "lo", "up"],
    ):
        _run("ip", "netns", "exec", ns, *cmd)
    log_path = Path(tempfile.mkdtemp(prefix="driveops-engine-")) / "dockerd.log"
    with open(log_path, "w") as log:
        daemon = subprocess.Popen(
            [
                "nsenter",
                f"--net=/run/netns/{ns}",
                "dockerd",
                "--data-root",
                str(root),
                "--exec-root",
                f"/run/{ns}",
                "--pidfile",
                f"/run/{ns}.pid",
                "-H",
                f"tcp://{address}:2375",
                "-H",
                f"unix://{sock}",
                "--containerd-namespace",
                ns,
                "--containerd-plugins-namespace",
                f"{ns}p",
                "--bip",
                "198.18.129.1/24",
                "--default-address-pool",
                "base=198.18.192.0/19,size=24",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    engine = RemoteEngine(address, sock)
    try:
        for _ in range(120):
            if subprocess.run(["docker", "-H", engine.tcp, "info"], capture_output=True).returncode == 0:
                break
            time.sleep(0.5)
        else:
            raise RuntimeError(f"the second dockerd did not answer: {log_path.read_text()[-2000:]}")
        save = subprocess.Popen(["docker", "save", *images], stdout=subprocess.PIPE)
        subprocess.run(["docker", "-H", f"unix://{sock}", "load"], stdin=save.stdout, check=True, capture_output=True)
        save.wait()
        yield engine
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["umount", "-R", str(root)], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(f"/run/{ns}", ignore_errors=True)
        shutil.rmtree(log_path.parent, ignore_errors=True)
