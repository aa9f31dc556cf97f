"""The local Kubernetes cluster, for real: the node becomes Ready, pods of locally imported images run,
a NodePort answers on the node address, Service names resolve inside pods, an unschedulable pod stays
Pending, and stopping leaves nothing (also when the starting process was killed).
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.kube import teardown
from tests.kube.build import KUBERNETES_VERSION, default_cache_dir, ensure_built
from tests.kube.cluster import Cluster, import_image, kubectl, load, load_images, start, stop
from tests.kube.images import BUSYBOX_IMAGE

pytestmark = pytest.mark.kubernetes
REPO = Path(__file__).resolve().parents[2]


def apply(cluster: Cluster, *manifests: dict[str, Any]) -> None:
    done = kubectl(
        cluster, "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(manifests)})
    )
    assert done.returncode == 0, done.stderr


def pod(name: str, command: list[str], image: str = BUSYBOX_IMAGE, **spec: Any) -> dict[str, Any]:
    container = {"name": "main", "image": image, "imagePullPolicy": "Never", "command": command}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"containers": [container], "terminationGracePeriodSeconds": 0, **spec},
    }


def wait_ready(cluster: Cluster, name: str, timeout: int = 120) -> None:
    done = kubectl(
        cluster, "wait", "--for=condition=Ready", f"pod/{name}", f"--timeout={timeout}s", timeout=timeout + 10
    )
    if done.returncode != 0:
        described = kubectl(cluster, "describe", "pod", name).stdout
        pytest.fail(f"pod {name} not Ready: {done.stderr}\n{described[-3000:]}")


def eventually(attempt: Callable[[], str], timeout: float = 20) -> str:
    """The first non-empty answer of ``attempt`` (a Service answers once kube-proxy wrote its rules)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = attempt()
        if answer or time.monotonic() > deadline:
            return answer
        time.sleep(0.3)


def http_get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - http, to our own node
            return str(response.read().decode().strip())
    except OSError:
        return ""


def get(cluster: Cluster, *what: str) -> Any:
    done = kubectl(cluster, "get", *what, "-o", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_node_is_ready_on_its_own_address(kube_cluster: Cluster) -> None:
    item = get(kube_cluster, "node", kube_cluster.name)
    ready = {c["type"]: c["status"] for c in item["status"]["conditions"]}["Ready"]
    assert ready == "True"
    internal = [a["address"] for a in item["status"]["addresses"] if a["type"] == "InternalIP"]
    assert internal == [kube_cluster.node_address]
    benchmarking = ipaddress.ip_network("198.18.0.0/15")
    for cidr in (kube_cluster.node_address, kube_cluster.pod_cidr, kube_cluster.service_cidr):
        assert ipaddress.ip_network(cidr).subnet_of(benchmarking)  # type: ignore[arg-type]
    assert item["status"]["nodeInfo"]["kubeletVersion"] == KUBERNETES_VERSION
    version = json.loads(kubectl(kube_cluster, "version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == KUBERNETES_VERSION


def test_a_pod_of_a_locally_imported_image_runs_and_answers_on_a_node_port(kube_cluster: Cluster) -> None:
    serve = "mkdir -p /www && echo hello from $(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www"
    apply(
        kube_cluster,
        pod("web", ["sh", "-c", serve]),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )
    wait_ready(kube_cluster, "web")
    pod_ip = get(kube_cluster, "pod", "web")["status"]["podIP"]
    assert ipaddress.ip_address(pod_ip) in ipaddress.ip_network(kube_cluster.pod_cidr)
    exec_ = kubectl(kube_cluster, "exec", "web", "--", "cat", "/www/index.html")
    assert exec_.returncode == 0 and exec_.stdout.strip() == "hello from web", exec_.stderr
    node_port = get(kube_cluster, "service", "web")["spec"]["ports"][0]["nodePort"]
    assert eventually(lambda: http_get(f"http://{kube_cluster.node_address}:{node_port}/")) == "hello from web"


def test_a_service_name_resolves_and_answers_inside_a_pod(kube_cluster: Cluster) -> None:
    apply(
        kube_cluster,
        pod("echo", ["sh", "-c", "echo echoed > /tmp/i && exec httpd -f -p 8080 -h /tmp"]),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "echo-svc"},
            "spec": {"selector": {"app": "echo"}, "ports": [{"port": 8081, "targetPort": 8080}]},
        },
        pod("client", ["sleep", "3600"]),
    )
    wait_ready(kube_cluster, "echo")
    wait_ready(kube_cluster, "client")
    service_ip = get(kube_cluster, "service", "echo-svc")["spec"]["clusterIP"]
    looked_up = kubectl(kube_cluster, "exec", "client", "--", "nslookup", "echo-svc.default.svc.cluster.local")
    assert looked_up.returncode == 0 and service_ip in looked_up.stdout, looked_up.stdout + looked_up.stderr
    request = 'printf "GET /i HTTP/1.0\\r\\n\\r\\n" | nc -w 5 echo-svc 8081'  # the short name, through the search list

    def fetch() -> str:
        done = kubectl(kube_cluster, "exec", "client", "--", "sh", "-c", request)
        return done.stdout.splitlines()[-1] if done.returncode == 0 and done.stdout else ""

    assert eventually(fetch) == "echoed"


def test_a_pod_too_big_for_the_node_stays_pending_as_unschedulable(kube_cluster: Cluster) -> None:
    big = pod("too-big", ["sleep", "3600"])
    big["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "64", "memory": "1Ti"}}
    apply(kube_cluster, big)
    deadline = time.monotonic() + 60
    reason = None
    while time.monotonic() < deadline and reason is None:
        conditions = get(kube_cluster, "pod", "too-big")["status"].get("conditions", [])
        reason = next(
            (c.get("reason") for c in conditions if c["type"] == "PodScheduled" and c["status"] == "False"), None
        )
        time.sleep(0.5)
    assert reason == "Unschedulable"
    time.sleep(3)
    assert get(kube_cluster, "pod", "too-big")["status"]["phase"] == "Pending"


def _docker_images() -> list[str]:
    done = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"], capture_output=True, text=True, check=False
    )
    return done.stdout.split() if done.returncode == 0 else []


def test_an_image_of_the_local_docker_engine_runs_in_the_cluster(kube_cluster: Cluster) -> None:
    redis = sorted(i for i in _docker_images() if i.startswith("driveops-env/redis:"))
    # scripts/test provisions the engine and the stand-in images before the Kubernetes tests
    assert redis, "no Docker engine with the stand-in redis image: run scripts/provision --docker"
    load_images(kube_cluster, redis[:1])
    apply(kube_cluster, pod("redis", ["redis-server", "--port", "6379", "--save", ""], image=redis[0]))
    wait_ready(kube_cluster, "redis")
    ping = kubectl(kube_cluster, "exec", "redis", "--", "redis-cli", "ping")
    assert ping.returncode == 0 and ping.stdout.strip() == "PONG", ping.stderr


def _leftovers(cluster: Cluster) -> list[str]:
    paths = [Path(cluster.work_dir), Path(cluster.run_dir)]
    return teardown.leftovers(cluster.name, paths, cluster.host_interface, cluster.cgroup_root)


def _kinds(found: list[str]) -> set[str]:
    return {f.split(" ")[0] for f in found}


def test_stop_leaves_nothing_behind(tmp_path: Path) -> None:
    """A second cluster beside the session's, with a pod holding volumes, stopped: nothing of it is left."""
    cluster = start(work_dir=tmp_path)
    try:
        import_image(cluster, ensure_built(default_cache_dir()).busybox_image)
        memory = {"name": "scratch", "emptyDir": {"medium": "Memory"}}
        apply(cluster, pod("holder", ["sleep", "3600"], volumes=[memory]))
        wait_ready(cluster, "holder")
        assert any("/kubelet/pods/" in str(m) for m in teardown.mounts_under([tmp_path]))
        assert {"process", "mount", "network", "interface", "cgroup", "run"} <= _kinds(_leftovers(cluster))
        state = Path(cluster.run_dir) / "containerd"
        outside = teardown.shim_sockets(state, cluster.containerd_socket)  # under /run/containerd/s
        outside |= {teardown.CNI_CACHE / f"cni-loopback-{s}-lo" for s in teardown.sandbox_ids(state)}
        assert outside and all(p.exists() for p in outside)
    finally:
        began = time.monotonic()
        stop(cluster)
        print(f"stop took {time.monotonic() - began:.1f}s")
    assert _leftovers(cluster) == []
    assert list(tmp_path.iterdir()) == []
    assert [p for p in outside if p.exists()] == []


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.kube.cluster", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_command_line_starts_reports_and_stops_a_cluster(tmp_path: Path) -> None:
    up = _cli("up", "--work-dir", str(tmp_path))
    assert up.returncode == 0, up.stderr
    assert f"export KUBECONFIG={tmp_path / 'kubeconfig'}" in up.stdout.splitlines()
    again = _cli("up", "--work-dir", str(tmp_path))
    assert again.returncode == 0 and "already runs" in again.stderr
    status = _cli("status", "--work-dir", str(tmp_path))
    assert status.returncode == 0 and "node: Ready" in status.stdout, status.stdout
    assert _cli("down", "--work-dir", str(tmp_path)).returncode == 0
    after = _cli("status", "--work-dir", str(tmp_path))
    assert after.returncode == 3 and "no cluster" in after.stdout


def _recorded_pids(work_dir: Path) -> dict[str, int]:
    cluster = load(work_dir) if (work_dir / "cluster.json").exists() else None
    return cluster.pids if cluster is not None else {}


def test_a_cluster_whose_starter_was_killed_is_stopped_from_its_state_file(tmp_path: Path) -> None:
    starter = subprocess.Popen(
        [sys.executable, "-m", "tests.kube.cluster", "up", "--work-dir", str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while "kubelet" not in _recorded_pids(tmp_path):
        if time.monotonic() > deadline:
            starter.kill()
            pytest.fail("the starter never launched the kubelet")
        time.sleep(0.1)
    time.sleep(2)  # the kubelet and containerd make their cgroups and mounts
    os.kill(starter.pid, signal.SIGKILL)
    starter.wait()
    cluster = load(tmp_path)
    assert cluster is not None
    assert {"process", "network", "interface", "cgroup", "run"} <= _kinds(_leftovers(cluster))
    down = _cli("down", "--work-dir", str(tmp_path))
    assert down.returncode == 0, down.stderr
    assert _leftovers(cluster) == []
    assert not (tmp_path / "cluster.json").exists()
