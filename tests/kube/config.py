"""The configuration files of the node's components, rendered from the cluster's layout.  Everything
points into the cluster's own directories (never /var/lib/kubelet, /etc/cni, /var/log/pods...), so two
clusters, or a cluster and the machine's own containerd, never share a file.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

from tests.kube.images import PAUSE_IMAGE


@dataclass(frozen=True)
class Layout:
    """Where a cluster keeps its files: ``work_dir`` (certificates, configuration, logs, the kubelet's and
    containerd's roots) and ``run_dir`` (a tmpfs of its own: sockets, containerd's state, etcd's data)."""

    work_dir: Path
    run_dir: Path

    @property
    def state_file(self) -> Path:
        return self.work_dir / "cluster.json"

    @property
    def kubeconfig(self) -> Path:
        return self.work_dir / "kubeconfig"

    @property
    def pki(self) -> Path:
        return self.work_dir / "pki"

    @property
    def conf(self) -> Path:
        return self.work_dir / "config"

    @property
    def logs(self) -> Path:
        return self.work_dir / "logs"

    @property
    def kubelet_root(self) -> Path:
        return self.work_dir / "kubelet"

    @property
    def containerd_root(self) -> Path:
        return self.work_dir / "containerd"

    @property
    def containerd_socket(self) -> Path:
        return self.run_dir / "containerd.sock"

    @property
    def etcd_data(self) -> Path:
        return self.run_dir / "etcd"

    def owned_dirs(self) -> list[Path]:
        """What the cluster writes to in ``work_dir`` (stop removes these and the state file)."""
        return [self.pki, self.conf, self.logs, self.kubelet_root, self.containerd_root, self.work_dir / "cni"]


def kubeconfig(server: str, ca: Path, cert: Path, key: Path, user: str) -> str:
    """A kubeconfig with the certificates inlined, so the file stands alone."""

    def data(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": user,
            "preferences": {},
            "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority-data": data(ca)}}],
            "users": [{"name": user, "user": {"client-certificate-data": data(cert), "client-key-data": data(key)}}],
            "contexts": [{"name": user, "context": {"cluster": "local", "user": user}}],
        },
        indent=2,
    )


def containerd_toml(layout: Layout) -> str:
    """containerd 1.6: its own root, state, socket; the CRI plugin with the CNI configuration of this
    cluster, a pause image imported locally, and ``restrict_oom_score_adj`` (root lacks CAP_SYS_RESOURCE)."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{layout.containerd_root}"
state = "{layout.run_dir / "containerd"}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{layout.containerd_socket}"
[ttrpc]
  address = "{layout.run_dir / "containerd.sock.ttrpc"}"
[debug]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{layout.containerd_root / "opt"}"
[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  max_container_log_line_size = 16384
[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
[{cri}.cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "{layout.work_dir / "cni" / "net.d"}"
  max_conf_num = 1
"""


def cni_conflist(network: str, pod_cidr: str, ipam_dir: Path) -> str:
    """ptp: a veth per pod, routed through the node (no bridge, so no br_netfilter is needed for a pod to
    reach a Service whose endpoint sits on the same node); host-local addresses from the pod range."""
    ipam = {
        "type": "host-local",
        "ranges": [[{"subnet": pod_cidr}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": str(ipam_dir),
    }
    return json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": network,
            "plugins": [
                {"type": "ptp", "ipMasq": False, "mtu": 1500, "ipam": ipam},
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        },
        indent=2,
    )


def kubelet_config(layout: Layout, node_address: str, dns: str, cgroup_root: str) -> str:
    pki = layout.pki
    return json.dumps(
        {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": node_address,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(pki / "ca.crt")},
            },
            "authorization": {"mode": "Webhook"},
            "tlsCertFile": str(pki / "kubelet-serving.crt"),
            "tlsPrivateKeyFile": str(pki / "kubelet-serving.key"),
            "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": cgroup_root,
            "failCgroupV1": False,
            "failSwapOn": False,
            "protectKernelDefaults": True,
            "oomScoreAdj": 0,
            "clusterDNS": [dns],
            "clusterDomain": "cluster.local",
            "resolvConf": str(layout.conf / "resolv.conf"),
            "podLogsDir": str(layout.logs / "pods"),
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": False,
            "nodeStatusUpdateFrequency": "4s",
            "syncFrequency": "10s",
            "runtimeRequestTimeout": "2m",
        },
        indent=2,
    )


def kube_proxy_config(kubeconfig_path: Path, node_name: str, node_address: str, pod_cidr: str) -> str:
    """iptables mode (the kernel has no IPVS); conntrack left as the kernel has it (a network namespace
    cannot change the machine-wide table size)."""
    return json.dumps(
        {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(kubeconfig_path)},
            "mode": "iptables",
            "hostnameOverride": node_name,
            "clusterCIDR": pod_cidr,
            "nodePortAddresses": [f"{node_address}/32"],
            "healthzBindAddress": "127.0.0.1:10256",
            "metricsBindAddress": "127.0.0.1:10249",
            "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
            "iptables": {"syncPeriod": "30s", "minSyncPeriod": "0s"},
        },
        indent=2,
    )


def corefile(dns_address: str, kubeconfig_path: Path) -> str:
    """Serves cluster.local (and reverse lookups) from the API; no upstream: nothing leaves the machine."""
    return f""".:53 {{
    bind {dns_address}
    errors
    ready 127.0.0.1:8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig_path}
        pods insecure
        ttl 5
        fallthrough in-addr.arpa ip6.arpa
    }}
    loadbalance
}}
"""
