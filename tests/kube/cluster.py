"""A real single-node Kubernetes cluster on this machine, started and stopped by the tests (and by people,
through scripts/local-cluster): etcd, the API server, the controller manager, the scheduler, the kubelet
with its own containerd, kube-proxy (iptables) and CoreDNS, all plain processes inside a network
namespace of their own, with addresses of the benchmarking range 198.19.0.0/16 (tests/kube/node.py).

    python -m tests.kube.cluster build|up|down|status [--work-dir DIR] [--cache-dir DIR]

The cluster's state (pids, addresses, paths) is kept as JSON in its work directory, so any process can
stop it, also after the one that started it was killed.  Images come from tarballs or the local Docker
engine (``load_images``): no registry is reachable here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.kube import components, images, node, probe, teardown
from tests.kube.build import KUBERNETES_VERSION, Binaries, BuildError, default_cache_dir, ensure_built, kube_cache
from tests.kube.config import Layout

__all__ = [
    "Binaries",
    "BuildError",
    "Cluster",
    "ensure_built",
    "import_image",
    "kubectl",
    "load",
    "load_images",
    "running_cluster",
    "start",
    "status",
    "stop",
]

Progress = Callable[[str], None]
START_TIMEOUT = 240.0


@dataclass
class Cluster:
    """A running (or half-started) cluster, as recorded in ``<work_dir>/cluster.json``."""

    name: str
    work_dir: str
    run_dir: str
    netns: str
    host_interface: str
    node_address: str
    host_address: str
    api_url: str
    kubeconfig: str
    pod_cidr: str
    service_cidr: str
    dns_address: str
    cgroup_root: str
    containerd_socket: str
    kubectl: str
    ctr: str
    kubernetes_version: str = KUBERNETES_VERSION
    pids: dict[str, int] = field(default_factory=dict)
    started_at: float = 0.0

    @property
    def layout(self) -> Layout:
        return Layout(Path(self.work_dir), Path(self.run_dir))

    @property
    def node_name(self) -> str:
        return self.name

    @property
    def service_ip(self) -> str:
        """The ``kubernetes`` Service's address (the first of the service range)."""
        return str(ipaddress.ip_network(self.service_cidr)[1])

    def save(self) -> None:
        path = self.layout.state_file
        partial = path.with_suffix(".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(dataclasses.asdict(self), f, indent=2)
        partial.rename(path)


def load(work_dir: Path) -> Cluster | None:
    """The cluster recorded in ``work_dir``, if any."""
    path = Layout(work_dir, Path()).state_file
    if not path.exists():
        return None
    return Cluster(**json.loads(path.read_text()))


def default_work_dir(cache_dir: Path | None = None) -> Path:
    return kube_cache(cache_dir or default_cache_dir()) / "run"


def _new_cluster(binaries: Binaries, work_dir: Path) -> Cluster:
    """Chooses a name and a free address slot, records the cluster, makes its namespace and run directory."""
    name = f"{node.NAME_PREFIX}{uuid.uuid4().hex[:6]}"
    run_dir = node.MACHINE_DIR / name
    with node.machine_lock():
        addrs = node.addresses(node.free_slot())
        cluster = _record(name, binaries, work_dir, run_dir, addrs)
        try:
            node.create_netns(name, cluster.host_interface, addrs)
            run_dir.mkdir(mode=0o700)
            node.set_kernel_settings()
        except BaseException:
            node.delete_netns(name, cluster.host_interface)
            shutil.rmtree(run_dir, ignore_errors=True)
            cluster.layout.state_file.unlink()
            raise
    return cluster


def _record(name: str, binaries: Binaries, work_dir: Path, run_dir: Path, addrs: node.Addresses) -> Cluster:
    cluster = Cluster(
        name=name,
        work_dir=str(work_dir),
        run_dir=str(run_dir),
        netns=name,
        host_interface=f"{name}h",
        node_address=addrs.node_address,
        host_address=addrs.host_address,
        api_url=f"https://{addrs.node_address}:6443",
        kubeconfig=str(work_dir / "kubeconfig"),
        pod_cidr=addrs.pod_cidr,
        service_cidr=addrs.service_cidr,
        dns_address=addrs.node_address,
        cgroup_root=f"/{name}",
        containerd_socket=str(run_dir / "containerd.sock"),
        kubectl=binaries.kubectl,
        ctr=binaries.ctr,
        started_at=time.time(),
    )
    cluster.save()
    return cluster


def _launch(cluster: Cluster, binaries: Binaries, component: str) -> None:
    layout = cluster.layout
    argv = components.argv(component, binaries, layout, cluster.name, cluster.node_address, cluster.service_cidr)
    cluster.pids[component] = node.launch(cluster.netns, argv, layout.logs / f"{component}.log")
    cluster.save()


def _wait(cluster: Cluster, what: str, check: Callable[[], bool], deadline: float) -> None:
    while not check():
        dead = [c for c, pid in cluster.pids.items() if not node.alive(pid)]
        if dead:
            raise RuntimeError(f"{', '.join(dead)} stopped while waiting for {what}:\n{_log_tails(cluster, dead)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}:\n{_log_tails(cluster, list(cluster.pids))}")
        time.sleep(0.1)


def _log_tails(cluster: Cluster, names: list[str], lines: int = 15) -> str:
    out = []
    for name in names:
        log = cluster.layout.logs / f"{name}.log"
        text = log.read_text(errors="replace").splitlines()[-lines:] if log.exists() else []
        out.append(f"--- {name} ({log}):\n" + "\n".join(text))
    return "\n".join(out)


def _containerd_answers(cluster: Cluster) -> bool:
    argv = images.ctr_argv(cluster.ctr, cluster.containerd_socket, "version")
    return Path(cluster.containerd_socket).exists() and subprocess.run(argv, capture_output=True).returncode == 0


def _api_ready(cluster: Cluster) -> bool:
    return probe.api_get(cluster.node_address, cluster.layout.pki, "/readyz", timeout=2)[0] == 200


def node_ready(cluster: Cluster) -> bool:
    """The node reports Ready and carries no NoSchedule taint (pods would wait for it to go)."""
    code, body = probe.api_get(cluster.node_address, cluster.layout.pki, f"/api/v1/nodes/{cluster.name}", timeout=2)
    if code != 200:
        return False
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in body["status"].get("conditions", []))
    return ready and not any(t["effect"] == "NoSchedule" for t in body["spec"].get("taints", []))


def _workloads_accepted(cluster: Cluster) -> bool:
    """Pods are admitted once the default ServiceAccount exists, and DNS answers for the API's Service."""
    code, _ = probe.api_get(
        cluster.node_address, cluster.layout.pki, "/api/v1/namespaces/default/serviceaccounts/default"
    )
    answer = probe.resolve(cluster.dns_address, "kubernetes.default.svc.cluster.local")
    return code == 200 and answer == [cluster.service_ip]


def _start_processes(cluster: Cluster, binaries: Binaries, progress: Progress, deadline: float) -> None:
    """etcd, containerd and the API server at once; the node's agents once containerd holds the pause
    image; the controller manager and scheduler once the API server is ready (they give up otherwise)."""
    began = time.monotonic()
    cluster.layout.logs.mkdir(parents=True, exist_ok=True)
    for component in ("etcd", "containerd", "kube-apiserver"):
        _launch(cluster, binaries, component)
    _wait(cluster, "containerd", lambda: _containerd_answers(cluster), deadline)
    images.import_tar(cluster.ctr, cluster.containerd_socket, binaries.pause_image)
    for component in ("kubelet", "kube-proxy", "coredns"):
        _launch(cluster, binaries, component)
    progress(f"containerd ready, pause image imported (+{time.monotonic() - began:.1f}s)")
    _wait(cluster, "the API server", lambda: _api_ready(cluster), deadline)
    progress(f"API server ready at {cluster.api_url} (+{time.monotonic() - began:.1f}s)")
    for component in ("kube-controller-manager", "kube-scheduler"):
        _launch(cluster, binaries, component)
    _wait(cluster, f"node {cluster.name} Ready", lambda: node_ready(cluster), deadline)
    progress(f"node {cluster.name} Ready (+{time.monotonic() - began:.1f}s)")
    _wait(cluster, "the default ServiceAccount and cluster DNS", lambda: _workloads_accepted(cluster), deadline)
    progress(f"pods admitted, cluster DNS answers (+{time.monotonic() - began:.1f}s)")


def start(
    cache_dir: Path | None = None,
    work_dir: Path | None = None,
    progress: Progress = lambda _: None,
    timeout: float = START_TIMEOUT,
) -> Cluster:
    """Builds what is missing, starts a cluster and returns it once the node is Ready, pods are admitted
    and cluster DNS answers.  On failure everything started is removed again."""
    if os.geteuid() != 0:
        raise RuntimeError("the local cluster needs root (network namespaces, mounts, cgroups)")
    binaries = ensure_built(cache_dir or default_cache_dir(), progress)
    work_dir = (work_dir or default_work_dir(cache_dir)).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    previous = load(work_dir)
    if previous is not None:
        raise RuntimeError(f"{work_dir} already holds cluster {previous.name}: stop it first (down)")
    began = time.monotonic()
    cluster = _new_cluster(binaries, work_dir)
    try:
        layout = cluster.layout
        node.run("mount", "-t", "tmpfs", "-o", "mode=0700,size=1g", f"driveops-kube-{cluster.name}", cluster.run_dir)
        teardown.make_cgroup_root(cluster.cgroup_root)
        components.write_files(layout, cluster.name, cluster.node_address, cluster.service_ip, cluster.pod_cidr)
        _start_processes(cluster, binaries, progress, began + timeout)
    except BaseException:
        with contextlib.suppress(Exception):
            stop(cluster)
        raise
    progress(f"cluster {cluster.name} ready in {time.monotonic() - began:.1f}s (kubeconfig {cluster.kubeconfig})")
    return cluster


def _ours(cluster: Cluster, pid: int) -> bool:
    """The recorded pid is still the cluster's process (not a reused pid): its command line names the
    cluster's directories."""
    line = node.cmdline(pid)
    return node.alive(pid) and (f"{cluster.work_dir}/" in line or f"{cluster.run_dir}/" in line)


def _stop_processes(cluster: Cluster) -> tuple[set[Path], list[str]]:
    """The control plane and agents, then every container and shim, then containerd.  Returns the shims'
    sockets and the pod sandboxes' ids (for what they leave outside the cluster's directories)."""
    recorded = {c: pid for c, pid in cluster.pids.items() if _ours(cluster, pid)}
    # a short grace: all is thrown away, and the API server alone would take seconds to drain
    node.terminate([pid for c, pid in recorded.items() if c != "containerd"], grace=0.5)
    state = cluster.layout.run_dir / "containerd"
    sockets = teardown.shim_sockets(state, cluster.containerd_socket)  # no new shim: the kubelet is gone
    teardown.kill_containers(cluster.cgroup_root, cluster.containerd_socket)
    if "containerd" in recorded:
        node.terminate([recorded["containerd"]], grace=2)
    return sockets | teardown.shim_sockets(state, cluster.containerd_socket), teardown.sandbox_ids(state)


def stop(cluster: Cluster) -> None:
    """Removes everything of the cluster: processes, containers, mounts, cgroups, the namespace (with its
    veth, routes and iptables rules), its files; restores the kernel settings when it was the last
    cluster.  Raises, after trying everything, if something could not be removed."""
    layout = cluster.layout
    sockets, sandboxes = _stop_processes(cluster)
    problems = [
        f"mount {m}" for m in teardown.unmount_all([layout.run_dir, layout.kubelet_root, layout.containerd_root])
    ]
    problems += [f"cgroup {c}" for c in teardown.remove_cgroups(cluster.cgroup_root)]
    problems += [f"process {c} ({pid})" for c, pid in cluster.pids.items() if _ours(cluster, pid)]
    for socket in sockets:
        with contextlib.suppress(OSError):
            socket.unlink()
    teardown.remove_cni_cache(cluster.name, sandboxes)
    node.delete_netns(cluster.netns, cluster.host_interface)
    if node.netns_exists(cluster.netns):
        problems.append(f"network namespace {cluster.netns}")
    with node.machine_lock():
        if not problems:
            shutil.rmtree(layout.run_dir, ignore_errors=True)
            for directory in layout.owned_dirs():
                shutil.rmtree(directory, ignore_errors=True)
            layout.kubeconfig.unlink(missing_ok=True)
            layout.state_file.unlink(missing_ok=True)
        node.restore_kernel_settings()
    if problems:
        raise RuntimeError(f"cluster {cluster.name} was not removed entirely: {', '.join(problems)}")


def status(cluster: Cluster) -> str:
    """A few lines: the API and kubeconfig, each process running or not, the node's readiness."""
    lines = [
        f"cluster {cluster.name}: {cluster.api_url} (Kubernetes {cluster.kubernetes_version})",
        f"  kubeconfig: {cluster.kubeconfig}",
        f"  node {cluster.node_address}, pods {cluster.pod_cidr}, services {cluster.service_cidr}, "
        f"DNS {cluster.dns_address}",
    ]
    for component in components.COMPONENTS:
        pid = cluster.pids.get(component)
        state = f"running (pid {pid})" if pid and _ours(cluster, pid) else "not running"
        lines.append(f"  {component}: {state}")
    lines.append(f"  node: {'Ready' if is_running(cluster) and node_ready(cluster) else 'not ready'}")
    return "\n".join(lines)


def is_running(cluster: Cluster) -> bool:
    """Every recorded process is alive."""
    return set(cluster.pids) == set(components.COMPONENTS) and all(_ours(cluster, p) for p in cluster.pids.values())


def load_images(cluster: Cluster, names: list[str]) -> None:
    """Copies images from the local Docker engine into the cluster's containerd (``docker save`` |
    ``ctr images import``).  Pods use them with ``imagePullPolicy: Never`` (or IfNotPresent)."""
    images.import_from_docker(cluster.ctr, cluster.containerd_socket, names)


def import_image(cluster: Cluster, tarball: Path) -> None:
    """Imports a docker-archive or OCI tarball into the cluster's containerd."""
    images.import_tar(cluster.ctr, cluster.containerd_socket, tarball)


def kubectl(
    cluster: Cluster, *args: str, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Runs the cluster's kubectl with its admin kubeconfig; never raises on a non-zero exit."""
    return subprocess.run(
        [cluster.kubectl, f"--kubeconfig={cluster.kubeconfig}", *args],
        input=stdin,
        text=True,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


@contextlib.contextmanager
def running_cluster(
    cache_dir: Path | None = None, work_dir: Path | None = None, progress: Progress = lambda _: None
) -> Iterator[Cluster]:
    """A started cluster, stopped (everything removed) when the block ends."""
    cluster = start(cache_dir, work_dir, progress)
    try:
        yield cluster
    finally:
        stop(cluster)


if __name__ == "__main__":
    from tests.kube.cli import main

    sys.exit(main())
