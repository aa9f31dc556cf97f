"""The cluster harness's parts that need no cluster: addresses, the build's wrapper module, the image
tarballs, the certificates, the DNS reply parser and the components' configuration.  These run in the
ordinary suite (no root, no build)."""

from __future__ import annotations

import hashlib
import io
import ipaddress
import json
import shutil
import socket
import struct
import tarfile
import threading
from pathlib import Path

import pytest
from cryptography import x509

from tests.kube import build, config, images, node, pki, probe


def test_every_cluster_address_is_in_the_benchmarking_range_and_slots_never_overlap() -> None:
    benchmarking = ipaddress.IPv4Network("198.18.0.0/15")
    blocks: list[ipaddress.IPv4Network] = []
    for slot in range(node.SLOTS):
        a = node.addresses(slot)
        nets = [ipaddress.IPv4Network(c, strict=False) for c in (f"{a.node_address}/30", a.pod_cidr, a.service_cidr)]
        assert all(n.subnet_of(benchmarking) for n in nets)
        assert not nets[0].overlaps(nets[1]) and not nets[1].overlaps(nets[2]) and not nets[0].overlaps(nets[2])
        assert ipaddress.IPv4Address(a.host_address) in nets[0] and a.host_address != a.node_address
        assert ipaddress.IPv4Address(a.service_ip) in nets[2]
        blocks.append(ipaddress.IPv4Network(f"{a.node_address}/20", strict=False))
    assert len(set(blocks)) == node.SLOTS


def test_the_wrapper_module_pins_each_staging_module_to_its_v0_twin() -> None:
    go_mod = "replace (\n\tk8s.io/api => ./staging/src/k8s.io/api\n"
    go_mod += "\tk8s.io/client-go => ./staging/src/k8s.io/client-go\n)\n"
    staging = build.staging_modules(go_mod + "require k8s.io/other v1.0.0\n")
    assert staging == ["k8s.io/api", "k8s.io/client-go"]
    wrapper = build.kubernetes_wrapper_go_mod("v1.37.2", staging)
    assert "require k8s.io/kubernetes v1.37.2" in wrapper
    assert "replace k8s.io/client-go => k8s.io/client-go v0.37.2" in wrapper
    assert "k8s.io/other" not in wrapper


def test_an_image_tarball_is_a_consistent_docker_archive(tmp_path: Path) -> None:
    binary = tmp_path / "tool"
    binary.write_bytes(b"\x7fELF not really")
    target = tmp_path / "image.tar"
    images.write_image_tar(target, "driveops.local/tool:1", {"/bin/busybox": binary}, ["/bin/busybox"], links=("sh",))
    with tarfile.open(target) as archive:
        manifest = json.loads(archive.extractfile("manifest.json").read())  # type: ignore[union-attr]
        assert manifest[0]["RepoTags"] == ["driveops.local/tool:1"]
        layer = archive.extractfile(manifest[0]["Layers"][0]).read()  # type: ignore[union-attr]
        image_config = json.loads(archive.extractfile(manifest[0]["Config"]).read())  # type: ignore[union-attr]
    assert image_config["rootfs"]["diff_ids"] == [f"sha256:{hashlib.sha256(layer).hexdigest()}"]
    assert image_config["config"]["Entrypoint"] == ["/bin/busybox"]
    with tarfile.open(fileobj=io.BytesIO(layer)) as files:
        members = {m.name: m for m in files.getmembers()}
    assert members["bin/busybox"].mode == 0o755 and members["bin/sh"].linkname == "busybox"
    assert members["tmp"].isdir()
    # the same input gives the same image (nothing time-dependent)
    again = tmp_path / "again.tar"
    images.write_image_tar(again, "driveops.local/tool:1", {"/bin/busybox": binary}, ["/bin/busybox"], links=("sh",))
    assert images.file_digest(again) == images.file_digest(target)


def test_the_certificates_name_the_node_and_the_api_service(tmp_path: Path) -> None:
    pki.make_pki(tmp_path, "drvk000000", "198.19.0.2", "198.19.2.1")
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.crt").read_bytes())
    server = x509.load_pem_x509_certificate((tmp_path / "apiserver.crt").read_bytes())
    server.verify_directly_issued_by(ca)
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    addresses = {str(a) for a in sans.get_values_for_type(x509.IPAddress)}
    assert {"198.19.0.2", "198.19.2.1"} <= addresses
    assert "kubernetes.default.svc.cluster.local" in sans.get_values_for_type(x509.DNSName)
    kubelet = x509.load_pem_x509_certificate((tmp_path / "kubelet.crt").read_bytes())
    assert kubelet.subject.rfc4514_string() == "CN=system:node:drvk000000,O=system:nodes"
    assert (tmp_path / "sa.key").stat().st_mode & 0o077 == 0
    assert all((tmp_path / f"{stem}.crt").exists() for stem in pki.CLIENTS)


def _answer_once(server: socket.socket, addresses: list[str], rcode: int, ident_delta: int) -> None:
    query, client = server.recvfrom(512)
    ident = struct.unpack(">H", query[:2])[0] + ident_delta
    header = struct.pack(">HHHHHH", ident & 0xFFFF, 0x8180 | rcode, 1, len(addresses), 0, 0)
    answers = b"".join(struct.pack(">HHHIH", 0xC00C, 1, 1, 5, 4) + socket.inet_aton(a) for a in addresses)
    server.sendto(header + query[12:] + answers, client)


@pytest.mark.parametrize(
    ("addresses", "rcode", "ident_delta", "expected"),
    [
        (["198.19.2.1"], 0, 0, ["198.19.2.1"]),
        (["198.19.2.7", "198.19.2.8"], 0, 0, ["198.19.2.7", "198.19.2.8"]),
        ([], 3, 0, []),  # NXDOMAIN
        (["198.19.2.1"], 0, 1, []),  # not the answer to our question
    ],
)
def test_a_dns_answer_is_read_for_its_a_records(
    addresses: list[str], rcode: int, ident_delta: int, expected: list[str]
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        answering = threading.Thread(target=_answer_once, args=(server, addresses, rcode, ident_delta))
        answering.start()
        found = probe.resolve("127.0.0.1", "kubernetes.default.svc.cluster.local", port=server.getsockname()[1])
        answering.join()
    assert found == expected


def test_the_kubelet_only_checks_kernel_settings_and_keeps_to_its_own_directories(tmp_path: Path) -> None:
    layout = config.Layout(tmp_path / "work", tmp_path / "run")
    kubelet = json.loads(config.kubelet_config(layout, "198.19.0.2", "198.19.0.2", "/drvk000000"))
    assert kubelet["protectKernelDefaults"] is True and kubelet["failCgroupV1"] is False
    assert kubelet["cgroupDriver"] == "cgroupfs" and kubelet["oomScoreAdj"] == 0
    assert kubelet["clusterDNS"] == ["198.19.0.2"]
    assert kubelet["podLogsDir"].startswith(str(tmp_path))
    containerd = config.containerd_toml(layout)
    assert "restrict_oom_score_adj = true" in containerd and "/var/lib/containerd" not in containerd
    assert all(
        line.split('"')[1].startswith(str(tmp_path))
        for line in containerd.splitlines()
        if line.strip().startswith(("root =", "state =", "address =", "conf_dir ="))
        and '"' in line
        and line.split('"')[1]
    )
    proxy = json.loads(config.kube_proxy_config(tmp_path / "k", "n", "198.19.0.2", "198.19.1.0/24"))
    assert proxy["mode"] == "iptables" and proxy["nodePortAddresses"] == ["198.19.0.2/32"]


def test_a_missing_debian_package_is_named_with_what_to_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda cmd: None if cmd == "etcd" else real_which(cmd))
    with pytest.raises(build.BuildError, match=r"etcd \(Debian package etcd-server\).*scripts/provision-kubernetes"):
        build.ensure_built(tmp_path)
    assert not (tmp_path / "kubernetes").exists()  # nothing started before the check
