"""Container images without a registry: a one-layer image written as a docker-archive tarball (what
``docker save`` writes and ``ctr images import`` reads), and the import into the cluster's containerd,
from a tarball or from the local Docker engine (``docker save IMG | ctr ... images import -``).
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
import tempfile
from pathlib import Path

PAUSE_IMAGE = "driveops.local/pause:3.10.2"
BUSYBOX_IMAGE = "driveops.local/busybox:1"
# no wget: Debian's static busybox crashes in it (nc does HTTP by hand)
BUSYBOX_LINKS = (
    "sh",
    "sleep",
    "cat",
    "echo",
    "printf",
    "mkdir",
    "nslookup",
    "httpd",
    "nc",
    "ls",
    "hostname",
    "env",
    "true",
)


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _add(tar: tarfile.TarFile, name: str, kind: bytes, mode: int, data: bytes = b"", link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime, info.size, info.linkname = kind, mode, 0, len(data), link
    tar.addfile(info, io.BytesIO(data) if data else None)


def layer_tar(files: dict[str, Path], links: tuple[str, ...] = ()) -> bytes:
    """A deterministic layer: ``files`` (image path -> host file, all executable), the directories they
    need, /tmp, and ``links`` as /bin/<name> -> busybox."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = {"tmp", "etc", *(str(Path(p.lstrip("/")).parent) for p in files), *(["bin"] if links else [])}
        for d in sorted(dirs - {"."}):
            _add(tar, d, tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755)
        for image_path, host_path in sorted(files.items()):
            _add(tar, image_path.lstrip("/"), tarfile.REGTYPE, 0o755, host_path.read_bytes())
        for name in links:
            _add(tar, f"bin/{name}", tarfile.SYMTYPE, 0o777, link="busybox")
    return out.getvalue()


def write_image_tar(
    target: Path, name: str, files: dict[str, Path], entrypoint: list[str], links: tuple[str, ...] = ()
) -> None:
    """Writes ``target``: a docker-archive with one image ``name`` of one layer."""
    layer = layer_tar(files, links)
    diff_id = hashlib.sha256(layer).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": entrypoint, "Env": ["PATH=/bin:/usr/bin:/sbin:/usr/sbin"], "WorkingDir": "/"},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
        },
        sort_keys=True,
    ).encode()
    config_name = f"{hashlib.sha256(config).hexdigest()}.json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [name], "Layers": [f"{diff_id}/layer.tar"]}]).encode()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    with tarfile.open(partial, mode="w") as tar:
        _add(tar, diff_id, tarfile.DIRTYPE, 0o755)
        _add(tar, f"{diff_id}/layer.tar", tarfile.REGTYPE, 0o644, layer)
        _add(tar, config_name, tarfile.REGTYPE, 0o644, config)
        _add(tar, "manifest.json", tarfile.REGTYPE, 0o644, manifest)
    partial.rename(target)


def ctr_argv(ctr: str, socket: str, *args: str) -> list[str]:
    return [ctr, "--address", socket, "--namespace", "k8s.io", *args]


def import_tar(ctr: str, socket: str, tarball: Path) -> None:
    """Imports a docker-archive or OCI tarball into the cluster's containerd (namespace k8s.io)."""
    done = subprocess.run(
        ctr_argv(ctr, socket, "images", "import", str(tarball)), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"ctr images import {tarball} failed: {done.stderr.strip()[-2000:]}")


def import_from_docker(ctr: str, socket: str, names: list[str]) -> None:
    """``docker save`` of ``names`` from the local engine, imported into the cluster's containerd."""
    if not names:
        return
    with tempfile.TemporaryFile() as archive:
        saved = subprocess.run(["docker", "save", *names], stdout=archive, stderr=subprocess.PIPE, check=False)
        if saved.returncode != 0:
            raise RuntimeError(f"docker save {' '.join(names)} failed: {saved.stderr.decode(errors='replace')[-2000:]}")
        archive.seek(0)
        done = subprocess.run(
            ctr_argv(ctr, socket, "images", "import", "-"), stdin=archive, capture_output=True, check=False
        )
    if done.returncode != 0:
        raise RuntimeError(f"ctr images import failed: {done.stderr.decode(errors='replace')[-2000:]}")
