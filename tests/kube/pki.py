"""The cluster's certificates: one CA (ECDSA P-256, valid for a year) signing a serving certificate for
the API server (the node address, the ``kubernetes`` service's IP and its names), a serving certificate
for the kubelet, one client certificate per component and for the admin, and the service-account
signing key.  Made fresh for every cluster, with Python's ``cryptography``.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=365)
# client identities: file stem -> (common name, organisation or "")
CLIENTS = MappingProxyType(
    {
        "admin": ("driveops-admin", "system:masters"),
        "apiserver-kubelet-client": ("kube-apiserver-kubelet-client", "system:masters"),
        # the controllers run with the controller manager's own identity (--use-service-account-credentials=false:
        # no token to mint per controller, the node is untainted seconds sooner), so it needs every permission
        "controller-manager": ("system:kube-controller-manager", "system:masters"),
        "scheduler": ("system:kube-scheduler", ""),
        "kube-proxy": ("system:kube-proxy", ""),
        # CoreDNS lists and watches services, endpoint slices, namespaces and pods; no bootstrap role grants
        # a user all of them, and the cluster is a throwaway: it runs as an admin.
        "coredns": ("driveops-coredns", "system:masters"),
        # the API server's identity towards aggregated API servers (the request-header CA is the cluster's CA)
        "front-proxy-client": ("front-proxy-client", ""),
    }
)


@dataclass(frozen=True)
class Identity:
    cert: Path
    key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


def _name(common_name: str, organisation: str = "") -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organisation:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation))
    return x509.Name(attributes)


def _builder(subject: x509.Name, issuer: x509.Name, public: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
    )


def _make_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    name = _name("driveops-local-cluster-ca")
    cert = (
        _builder(name, name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    _write_key(directory / "ca.key", key)
    (directory / "ca.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _issue(
    directory: Path,
    stem: str,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    sans: list[x509.GeneralName] | None = None,
) -> Identity:
    key = _key()
    builder = (
        _builder(subject, ca[0].subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca[1], hashes.SHA256())
    identity = Identity(directory / f"{stem}.crt", directory / f"{stem}.key")
    _write_key(identity.key, key)
    identity.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return identity


def _sans(names: list[str], addresses: list[str]) -> list[x509.GeneralName]:
    dns: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    return dns + [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]


def make_pki(directory: Path, node_name: str, node_address: str, service_ip: str) -> None:
    """Writes ca.crt/key, apiserver, kubelet (client and serving), the clients of ``CLIENTS`` and sa.key/pub."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    ca = _make_ca(directory)
    service_names = [
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    _issue(
        directory,
        "apiserver",
        ca,
        _name("kube-apiserver"),
        ExtendedKeyUsageOID.SERVER_AUTH,
        _sans([*service_names, "localhost", node_name], [node_address, service_ip, "127.0.0.1"]),
    )
    _issue(
        directory,
        "kubelet-serving",
        ca,
        _name(node_name),
        ExtendedKeyUsageOID.SERVER_AUTH,
        _sans([node_name], [node_address]),
    )
    _issue(directory, "kubelet", ca, _name(f"system:node:{node_name}", "system:nodes"), ExtendedKeyUsageOID.CLIENT_AUTH)
    for stem, (common_name, organisation) in CLIENTS.items():
        _issue(directory, stem, ca, _name(common_name, organisation), ExtendedKeyUsageOID.CLIENT_AUTH)
    signing = _key()
    _write_key(directory / "sa.key", signing)
    public = signing.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (directory / "sa.pub").write_bytes(public)
