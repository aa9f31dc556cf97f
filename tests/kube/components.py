"""The node's processes: how each is started (argv), and the files they read, written before any starts.
Every process runs inside the cluster's network namespace; the API server listens on the node address,
everything else on the namespace's loopback or the node address.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

from tests.kube import config, pki
from tests.kube.build import Binaries
from tests.kube.config import Layout

# started in this order; stop goes the other way (containerd after its containers)
COMPONENTS = (
    "etcd",
    "containerd",
    "kube-apiserver",
    "kubelet",
    "kube-proxy",
    "coredns",
    "kube-controller-manager",
    "kube-scheduler",
)
ETCD = "http://127.0.0.1:2379"
# client certificate (pki stem) of each component that talks to the API server
CLIENT_OF = MappingProxyType(
    {
        "kubelet": "kubelet",
        "kube-proxy": "kube-proxy",
        "coredns": "coredns",
        "kube-controller-manager": "controller-manager",
        "kube-scheduler": "scheduler",
    }
)


def write_files(layout: Layout, name: str, node_address: str, service_ip: str, pod_cidr: str) -> None:
    """Certificates, kubeconfigs and configuration files of every component, and the admin's kubeconfig."""
    pki.make_pki(layout.pki, name, node_address, service_ip)
    layout.conf.mkdir(mode=0o700, parents=True, exist_ok=True)
    (layout.work_dir / "cni" / "net.d").mkdir(parents=True, exist_ok=True)
    server = f"https://{node_address}:6443"
    ca = layout.pki / "ca.crt"
    for component, stem in CLIENT_OF.items():
        text = config.kubeconfig(server, ca, layout.pki / f"{stem}.crt", layout.pki / f"{stem}.key", stem)
        _private(layout.conf / f"{component}.kubeconfig", text)
    _private(
        layout.kubeconfig, config.kubeconfig(server, ca, layout.pki / "admin.crt", layout.pki / "admin.key", "admin")
    )
    (layout.conf / "containerd.toml").write_text(config.containerd_toml(layout))
    (layout.work_dir / "cni" / "net.d" / "10-driveops.conflist").write_text(
        config.cni_conflist(name, pod_cidr, layout.work_dir / "cni" / "ipam")
    )
    cgroup_root = f"/{name}"
    (layout.conf / "kubelet.json").write_text(config.kubelet_config(layout, node_address, node_address, cgroup_root))
    (layout.conf / "resolv.conf").write_text(f"nameserver {node_address}\n")
    (layout.conf / "kube-proxy.json").write_text(
        config.kube_proxy_config(layout.conf / "kube-proxy.kubeconfig", name, node_address, pod_cidr)
    )
    (layout.conf / "Corefile").write_text(config.corefile(node_address, layout.conf / "coredns.kubeconfig"))


def _private(path: Path, text: str) -> None:
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text)


def _apiserver(b: Binaries, layout: Layout, node_address: str, service_cidr: str) -> list[str]:
    p = layout.pki
    return [
        b.kube("kube-apiserver"),
        f"--advertise-address={node_address}",
        "--bind-address=0.0.0.0",
        "--secure-port=6443",
        f"--etcd-servers={ETCD}",
        f"--service-cluster-ip-range={service_cidr}",
        f"--tls-cert-file={p / 'apiserver.crt'}",
        f"--tls-private-key-file={p / 'apiserver.key'}",
        f"--client-ca-file={p / 'ca.crt'}",
        f"--kubelet-certificate-authority={p / 'ca.crt'}",
        f"--kubelet-client-certificate={p / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={p / 'apiserver-kubelet-client.key'}",
        "--kubelet-preferred-address-types=InternalIP",
        f"--service-account-issuer=https://{node_address}:6443",  # the API server itself: no outside name
        f"--service-account-key-file={p / 'sa.pub'}",
        f"--service-account-signing-key-file={p / 'sa.key'}",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
        "--allow-privileged=true",
        f"--requestheader-client-ca-file={p / 'ca.crt'}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        "--profiling=false",
        "--v=1",
        f"--proxy-client-cert-file={p / 'front-proxy-client.crt'}",
        f"--proxy-client-key-file={p / 'front-proxy-client.key'}",
    ]


def _controller_manager(b: Binaries, layout: Layout, name: str) -> list[str]:
    kubeconfig, p = layout.conf / "kube-controller-manager.kubeconfig", layout.pki
    return [
        b.kube("kube-controller-manager"),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        "--leader-elect=false",
        "--use-service-account-credentials=false",
        f"--service-account-private-key-file={p / 'sa.key'}",
        f"--root-ca-file={p / 'ca.crt'}",
        f"--cluster-signing-cert-file={p / 'ca.crt'}",
        f"--cluster-signing-key-file={p / 'ca.key'}",
        f"--cluster-name={name}",
        "--v=1",
    ]


def argv(component: str, b: Binaries, layout: Layout, name: str, node_address: str, service_cidr: str) -> list[str]:
    """The command line of ``component`` (one of ``COMPONENTS``)."""
    conf = layout.conf
    if component == "etcd":
        peer = "http://127.0.0.1:2380"
        return [
            b.etcd,
            "--name",
            name,
            "--data-dir",
            str(layout.etcd_data),
            "--listen-client-urls",
            ETCD,
            "--advertise-client-urls",
            ETCD,
            "--listen-peer-urls",
            peer,
            "--initial-advertise-peer-urls",
            peer,
            "--initial-cluster",
            f"{name}={peer}",
            "--logger",
            "zap",
            "--log-outputs",
            "stderr",
            "--log-level",
            "warn",
        ]
    if component == "containerd":
        return [b.containerd, "--config", str(conf / "containerd.toml"), "--log-level", "warn"]
    if component == "kube-apiserver":
        return _apiserver(b, layout, node_address, service_cidr)
    if component == "kube-controller-manager":
        return _controller_manager(b, layout, name)
    if component == "kube-scheduler":
        kubeconfig = conf / "kube-scheduler.kubeconfig"
        return [
            b.kube("kube-scheduler"),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            "--leader-elect=false",
        ]
    if component == "kubelet":
        root = layout.kubelet_root
        return [
            b.kube("kubelet"),
            f"--config={conf / 'kubelet.json'}",
            f"--kubeconfig={conf / 'kubelet.kubeconfig'}",
            f"--root-dir={root}",
            f"--cert-dir={root / 'pki'}",
            f"--volume-plugin-dir={root / 'volume-plugins'}",
            f"--hostname-override={name}",
            f"--node-ip={node_address}",
            "--v=1",
        ]
    if component == "kube-proxy":
        return [b.kube("kube-proxy"), f"--config={conf / 'kube-proxy.json'}", "--v=1"]
    if component == "coredns":
        return [str(b.coredns), "-conf", str(conf / "Corefile")]
    raise ValueError(f"unknown component {component}")
