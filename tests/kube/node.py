"""The node's machine side: addresses, the network namespace and its veth, processes started inside it
(``nsenter --net``: ``ip netns exec`` remounts /sys and runc then finds no cgroup mounts), and the
machine-wide kernel settings the kubelet insists on.

Addresses: 198.19.0.0/16, inside the benchmarking range 198.18.0.0/15, cut into 16 slots of a /20, one
per cluster running at the same time.  Slot ``s`` (block ``b = 16 * s``): the link 198.19.b.0/30 (the
machine's end .1, the node .2), pods 198.19.(b+1).0/24, services 198.19.(b+2).0/24.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

CLUSTER_RANGE = ipaddress.ip_network("198.19.0.0/16")
SLOTS = 16
MACHINE_DIR = Path("/run/driveops-kube")  # one directory per running cluster, the lock, the kernel record
NAME_PREFIX = "drvk"
# what the kubelet checks (protectKernelDefaults): /proc/sys path -> value
KERNEL_SETTINGS = MappingProxyType(
    {
        "vm/overcommit_memory": 1,
        "vm/panic_on_oom": 0,
        "kernel/panic": 10,
        "kernel/panic_on_oops": 1,
        "kernel/keys/root_maxkeys": 1000000,
        "kernel/keys/root_maxbytes": 25000000,
    }
)
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Addresses:
    slot: int
    host_address: str
    node_address: str
    pod_cidr: str
    service_cidr: str

    @property
    def service_ip(self) -> str:
        """The ``kubernetes`` Service's address: the first of the service range."""
        return str(ipaddress.ip_network(self.service_cidr)[1])


def addresses(slot: int) -> Addresses:
    block = ipaddress.IPv4Network(f"198.19.{16 * slot}.0/20")
    link = next(block.subnets(new_prefix=30))
    cidrs = list(block.subnets(new_prefix=24))
    return Addresses(slot, str(link[1]), str(link[2]), str(cidrs[1]), str(cidrs[2]))


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return done


def _networks_in_use() -> list[ipaddress.IPv4Network]:
    found: list[ipaddress.IPv4Network] = []
    for entry in json.loads(run("ip", "-4", "-j", "addr", "show").stdout or "[]"):
        for info in entry.get("addr_info", []):
            found.append(ipaddress.IPv4Network(f"{info['local']}/{info['prefixlen']}", strict=False))
    for route in json.loads(run("ip", "-4", "-j", "route", "show", "table", "all").stdout or "[]"):
        if route.get("dst", "default") not in ("default", "") and "/" in route["dst"]:
            found.append(ipaddress.IPv4Network(route["dst"], strict=False))
    return found


def free_slot() -> int:
    """The first slot whose /20 no address or route of this machine touches (call under ``machine_lock``)."""
    used = _networks_in_use()
    for slot in range(SLOTS):
        block = ipaddress.ip_network(f"198.19.{16 * slot}.0/20")
        if not any(block.overlaps(n) for n in used):
            return slot
    raise RuntimeError(f"all {SLOTS} cluster address slots of {CLUSTER_RANGE} are in use")


@contextlib.contextmanager
def machine_lock() -> Iterator[None]:
    """Serialises slot choice and the kernel-settings record between clusters starting or stopping."""
    MACHINE_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(MACHINE_DIR / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def create_netns(netns: str, host_if: str, addrs: Addresses) -> None:
    """The namespace, a veth to the machine, routes to the pod and service ranges through the node."""
    run("ip", "netns", "add", netns)
    run("ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", netns)
    run("ip", "addr", "add", f"{addrs.host_address}/30", "dev", host_if)
    run("ip", "link", "set", host_if, "up")
    inside = ["nsenter", f"--net=/run/netns/{netns}"]
    for argv in (
        ["ip", "addr", "add", f"{addrs.node_address}/30", "dev", "eth0"],
        ["ip", "link", "set", "eth0", "up"],
        ["ip", "link", "set", "lo", "up"],
        ["sysctl", "-qw", "net.ipv4.ip_forward=1"],
        # processes of the node (not pods) reach Services through kube-proxy's OUTPUT rules; no default route
        ["ip", "route", "add", addrs.service_cidr, "via", addrs.host_address],
    ):
        run(*inside, *argv)
    for cidr in (addrs.pod_cidr, addrs.service_cidr):  # the machine reaches pods and Services directly
        run("ip", "route", "add", cidr, "via", addrs.node_address, "dev", host_if)


def netns_exists(netns: str) -> bool:
    return Path("/run/netns", netns).exists()


def delete_netns(netns: str, host_if: str) -> None:
    run("ip", "link", "del", host_if, check=False)
    if netns_exists(netns):
        run("ip", "netns", "del", netns)


def launch(netns: str, argv: list[str], log: Path) -> int:
    """Starts ``argv`` inside the namespace, in a session of its own (it outlives its starter)."""
    with open(log, "ab") as out:
        process = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{netns}", "--", *argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PATH": PATH},
        )
    return process.pid


def proc_state(pid: int) -> str:
    """The process's state letter, or "" when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat[stat.rindex(")") + 2]


def alive(pid: int) -> bool:
    return proc_state(pid) not in ("", "Z", "X")


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        os.kill(pid, sig)


def terminate(pids: list[int], grace: float = 5.0) -> None:
    """SIGTERM to each process (and its group when it leads one), SIGKILL to what outlives ``grace``."""
    pids = [p for p in pids if alive(p)]
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        for pid in pids:
            _reap(pid)
        pids = [p for p in pids if alive(p)]
        if not pids:
            return
        time.sleep(0.05)
    for pid in pids:
        _signal(pid, signal.SIGKILL)
    for _ in range(100):
        for pid in pids:
            _reap(pid)
        if not any(alive(p) for p in pids):
            return
        time.sleep(0.05)


def live_clusters() -> list[str]:
    """Clusters running on this machine: their run directory is a mounted tmpfs (gone after a reboot, even
    where /run is not a tmpfs itself)."""
    if not MACHINE_DIR.exists():
        return []
    return sorted(d.name for d in MACHINE_DIR.iterdir() if d.is_dir() and os.path.ismount(d))


def _kernel(path: str) -> Path:
    return Path("/proc/sys", path)


def set_kernel_settings() -> None:
    """Records the machine's values once (the first running cluster does) and sets the kubelet's; the
    kubelet runs with protectKernelDefaults, so it only checks them.  Call under ``machine_lock``."""
    record = MACHINE_DIR / "kernel-settings.json"
    if not record.exists() or not live_clusters():  # a record with no cluster running is from before a reboot
        original = {p: int(_kernel(p).read_text().split()[0]) for p in KERNEL_SETTINGS}
        record.write_text(json.dumps(original))
    for path, value in KERNEL_SETTINGS.items():
        if int(_kernel(path).read_text().split()[0]) != value:
            _kernel(path).write_text(f"{value}\n")


def restore_kernel_settings() -> None:
    """Puts the recorded values back when no cluster runs any more.  Call under ``machine_lock``."""
    record = MACHINE_DIR / "kernel-settings.json"
    if not record.exists() or live_clusters():
        return
    for path, value in json.loads(record.read_text()).items():
        _kernel(path).write_text(f"{value}\n")
    record.unlink()
