"""Removing what a cluster left on the machine, from its recorded state alone (the process that started
it may be gone): container processes (found through the cluster's cgroups), containerd's shims (their
command line names the cluster's socket), mounts under the cluster's directories, its cgroups, and
containerd's CNI result cache entries.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

from tests.kube import node

CGROUP_FS = Path("/sys/fs/cgroup")
CNI_CACHE = Path("/var/lib/cni/results")
SHIM_SOCKETS = "/run/containerd/s/"


def cgroup_dirs(cgroup_root: str) -> list[Path]:
    """Every cgroup under the cluster's root, in every hierarchy, deepest first."""
    found: list[Path] = []
    for hierarchy in CGROUP_FS.iterdir():
        top = hierarchy / cgroup_root.strip("/")
        if top.is_dir() and not top.is_symlink():
            found += [Path(d) for d, _, _ in os.walk(top)]
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def make_cgroup_root(cgroup_root: str) -> None:
    """The kubelet's cgroupRoot, in every hierarchy (the kubelet wants it there); a cpuset gets its
    parent's CPUs and memory nodes (a new one has none)."""
    for hierarchy in CGROUP_FS.iterdir():
        if not os.path.ismount(hierarchy):
            continue
        top = hierarchy / cgroup_root.strip("/")
        top.mkdir(exist_ok=True)
        for setting in ("cpuset.cpus", "cpuset.mems"):
            if (hierarchy / setting).exists():
                (top / setting).write_text((hierarchy / setting).read_text())


def cgroup_pids(cgroup_root: str) -> set[int]:
    pids: set[int] = set()
    for directory in cgroup_dirs(cgroup_root):
        with contextlib.suppress(OSError):
            pids |= {int(p) for p in (directory / "cgroup.procs").read_text().split()}
    return pids


def shim_pids(containerd_socket: str) -> list[int]:
    """containerd's shims for this cluster (``-address <socket>`` on their command line)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and f"-address {containerd_socket} " in node.cmdline(int(entry.name)) + " ":
            found.append(int(entry.name))
    return found


def shim_sockets(state_dir: Path, containerd_socket: str) -> set[Path]:
    """The shims' own sockets (under /run/containerd/s, shared with every containerd): those the cluster's
    live shims hold, and those their bundles name (read both before the shims go)."""
    sockets = set()
    for address in state_dir.glob("io.containerd.runtime.v2.task/*/*/address"):
        with contextlib.suppress(OSError):
            sockets.add(Path(address.read_text().strip().removeprefix("unix://")))
    for pid in shim_pids(containerd_socket):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/unix").read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) == 8 and fields[7].startswith(SHIM_SOCKETS):
                    sockets.add(Path(fields[7]))
    return sockets


def kill_containers(cgroup_root: str, containerd_socket: str) -> None:
    """SIGKILL to every process in the cluster's cgroups, then to its shims, until none is left."""
    for _ in range(20):
        pids = cgroup_pids(cgroup_root) | set(shim_pids(containerd_socket))
        if not pids:
            return
        node.terminate(sorted(pids), grace=0)


def mounts_under(paths: list[Path]) -> list[Path]:
    """Mount points at or under ``paths``, deepest first (from /proc/self/mountinfo)."""
    roots = [str(p.resolve()) for p in paths]
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if any(point == r or point.startswith(r + "/") for r in roots):
            found.append(Path(point))
    return sorted(set(found), key=lambda p: len(p.parts), reverse=True)


def unmount_all(paths: list[Path]) -> list[str]:
    """Unmounts everything under ``paths``; returns what could not be unmounted."""
    for _ in range(5):
        points = mounts_under(paths)
        if not points:
            return []
        for point in points:
            done = subprocess.run(["umount", str(point)], capture_output=True, check=False)
            if done.returncode != 0:
                subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)
    return [str(p) for p in mounts_under(paths)]


def remove_cgroups(cgroup_root: str) -> list[str]:
    """rmdir of the cluster's cgroups (empty by now); returns those still there."""
    for directory in cgroup_dirs(cgroup_root):
        with contextlib.suppress(OSError):
            directory.rmdir()
    return [str(d) for d in cgroup_dirs(cgroup_root)]


def sandbox_ids(state_dir: Path) -> list[str]:
    """The cluster's pod sandboxes, from containerd's state (read before it is unmounted)."""
    return [d.name for d in state_dir.glob("io.containerd.grpc.v1.cri/sandboxes/*")]


def remove_cni_cache(network: str, sandboxes: list[str]) -> None:
    """containerd's CNI library keeps results under /var/lib/cni/results: <network>-<sandbox>-eth0 and
    cni-loopback-<sandbox>-lo (removed by CNI DEL, which a killed sandbox never had)."""
    for entry in [*CNI_CACHE.glob(f"{network}-*"), *(CNI_CACHE / f"cni-loopback-{s}-lo" for s in sandboxes)]:
        with contextlib.suppress(OSError):
            entry.unlink()


def leftovers(name: str, paths: list[Path], host_interface: str, cgroup_root: str) -> list[str]:
    """What of a cluster is still on the machine: processes whose command line names ``paths``, mounts
    under them, its namespace, its veth (and so its routes), its cgroups, CNI cache entries, its run directory."""
    roots = [f"{p}/" for p in paths]
    pids = [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit()]
    found = [
        f"process {p}: {node.cmdline(p)[:120]}"
        for p in pids
        if node.alive(p) and any(r in node.cmdline(p) for r in roots)
    ]
    found += [f"mount {m}" for m in mounts_under(paths)]
    found += [f"network namespace {name}"] if node.netns_exists(name) else []
    veth = subprocess.run(["ip", "link", "show", "dev", host_interface], capture_output=True, check=False)
    found += [f"interface {host_interface}"] if veth.returncode == 0 else []
    found += [f"cgroup {c}" for c in cgroup_dirs(cgroup_root)]
    found += [f"CNI cache {e}" for e in CNI_CACHE.glob(f"{name}-*")]
    found += [f"run directory {node.MACHINE_DIR / name}"] if (node.MACHINE_DIR / name).exists() else []
    return found
