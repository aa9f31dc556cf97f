"""Builds and caches what the local Kubernetes cluster runs that Debian does not ship: the Kubernetes
binaries (from the Go module proxy, through a wrapper module that pins every staging module), CoreDNS
(a build with only the plugins the cluster uses), the pause image (``build/pause/linux/pause.c`` from
the kubernetes module, compiled static) and a busybox image for the tests (Debian's busybox-static).

Everything lands under ``<cache>/kubernetes/``; nothing is built twice for the same version.  Only the
standard library is used here, so provisioning works before the project's virtualenv exists.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from tests.kube import images

KUBERNETES_VERSION = "v1.37.2"
COREDNS_VERSION = "v1.15.0"
PAUSE_VERSION = "3.10.2"
KUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl")
COREDNS_PLUGINS = ("bind", "errors", "kubernetes", "log", "loadbalance", "ready", "health")
# what the node runs from Debian's packages: command -> package
DEBIAN_COMMANDS = MappingProxyType(
    {
        "etcd": "etcd-server",
        "containerd": "containerd",
        "containerd-shim-runc-v2": "containerd",
        "ctr": "containerd",
        "runc": "runc",
        "iptables": "iptables",
        "conntrack": "conntrack",
        "nsenter": "util-linux",
        "ip": "iproute2",
        "busybox": "busybox-static",
    }
)
CNI_DIR = Path("/usr/lib/cni")
CNI_PLUGINS = ("ptp", "host-local", "portmap", "loopback")

Progress = Callable[[str], None]


class BuildError(RuntimeError):
    """Something the cluster needs is missing or failed to build; the message says what to run."""


@dataclass(frozen=True)
class Binaries:
    """Absolute paths of everything the cluster runs."""

    kube_dir: Path  # kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl
    coredns: Path
    pause_image: Path  # docker-archive tarball
    busybox_image: Path  # docker-archive tarball, for tests
    etcd: str
    containerd: str
    ctr: str
    cni_dir: Path

    def kube(self, command: str) -> str:
        return str(self.kube_dir / command)

    @property
    def kubectl(self) -> str:
        return self.kube("kubectl")


def kube_cache(cache_dir: Path) -> Path:
    return cache_dir / "kubernetes"


def default_cache_dir() -> Path:
    configured = os.environ.get("DRIVEOPS_ENV_CACHE_DIR")
    if configured:
        return Path(configured)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "driveops-env"


def _missing_debian_commands() -> list[str]:
    missing = [f"{cmd} (Debian package {pkg})" for cmd, pkg in DEBIAN_COMMANDS.items() if shutil.which(cmd) is None]
    missing += [
        f"{CNI_DIR}/{p} (Debian package containernetworking-plugins)" for p in CNI_PLUGINS if not (CNI_DIR / p).exists()
    ]
    return missing


def _go() -> str:
    for candidate in (shutil.which("go"), "/usr/local/go/bin/go", str(Path.home() / "go/bin/go")):
        if candidate and Path(candidate).exists():
            return candidate
    raise BuildError("Go (1.26 or newer) is not installed: the Kubernetes binaries are built with it")


def _run(argv: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None) -> None:
    with open(log, "a") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        done = subprocess.run(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env, check=False)
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise BuildError(f"{argv[0]} {argv[1] if len(argv) > 1 else ''} failed (log: {log}):\n{tail}")


def module_dir(module: str, version: str) -> Path:
    """The module's source, downloaded by the Go module proxy the machine is configured with."""
    done = subprocess.run(
        [_go(), "mod", "download", "-json", f"{module}@{version}"], capture_output=True, text=True, check=False
    )
    info = json.loads(done.stdout or "{}")
    if done.returncode != 0 or "Dir" not in info:
        raise BuildError(f"go mod download {module}@{version} failed: {info.get('Error') or done.stderr[-2000:]}")
    return Path(info["Dir"])


def staging_modules(kubernetes_go_mod: str) -> list[str]:
    """The staging modules the kubernetes module replaces with its own ./staging directories."""
    return sorted(set(re.findall(r"^\s*(k8s\.io/[\w.-]+)\s*=>\s*\./staging/", kubernetes_go_mod, re.MULTILINE)))


def kubernetes_wrapper_go_mod(version: str, staging: list[str]) -> str:
    """A module that requires k8s.io/kubernetes and pins each staging module to its published v0 twin."""
    staging_version = "v0." + version.removeprefix("v1.")
    lines = ["module driveops.local/kubebuild", "", "go 1.26", "", f"require k8s.io/kubernetes {version}", ""]
    lines += [f"replace {m} => {m} {staging_version}" for m in staging]
    return "\n".join(lines) + "\n"


def _version_ldflags(version: str) -> str:
    major, minor = version.removeprefix("v").split(".")[:2]
    pairs = {"gitVersion": version, "gitMajor": major, "gitMinor": minor, "gitTreeState": "clean"}
    flags = [
        f"-X k8s.io/{pkg}.{k}={v}"
        for pkg in ("client-go/pkg/version", "component-base/version")
        for k, v in pairs.items()
    ]
    return " ".join(["-s", "-w", *flags])


def _go_env() -> dict[str, str]:
    return {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false -mod=mod", "GOTOOLCHAIN": "local"}


def _build_kubernetes(root: Path, version: str, progress: Progress) -> Path:
    target = root / "bin" / version
    if all((target / c).exists() for c in KUBE_COMMANDS):
        return target
    src = root / "src" / f"kubernetes-{version}"
    src.mkdir(parents=True, exist_ok=True)
    log = root / f"build-kubernetes-{version}.log"
    log.write_text("")
    kubernetes = module_dir("k8s.io/kubernetes", version)
    (src / "go.mod").write_text(
        kubernetes_wrapper_go_mod(version, staging_modules((kubernetes / "go.mod").read_text()))
    )
    partial = root / "bin" / f"{version}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    progress(f"building Kubernetes {version} ({', '.join(KUBE_COMMANDS)}): about 10 min on 2 cores (log: {log})")
    started = time.monotonic()
    packages = [f"k8s.io/kubernetes/cmd/{c}" for c in KUBE_COMMANDS]
    _run(
        [
            "nice",
            "-n",
            "10",
            _go(),
            "build",
            "-trimpath",
            "-ldflags",
            _version_ldflags(version),
            "-o",
            str(partial) + "/",
            *packages,
        ],
        src,
        log,
        _go_env(),
    )
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    progress(f"built Kubernetes {version} in {time.monotonic() - started:.0f}s")
    return target


def coredns_main(plugins: tuple[str, ...]) -> str:
    imports = "\n".join(f'\t_ "github.com/coredns/coredns/plugin/{p}"' for p in plugins)
    main = "func main() { coremain.Run() }"
    return f'package main\n\nimport (\n\t"github.com/coredns/coredns/coremain"\n{imports}\n)\n\n{main}\n'


def _build_coredns(root: Path, version: str, progress: Progress) -> Path:
    target = root / "bin" / f"coredns-{version}" / "coredns"
    if target.exists():
        return target
    src = root / "src" / f"coredns-{version}"
    src.mkdir(parents=True, exist_ok=True)
    (src / "go.mod").write_text(
        f"module driveops.local/corednsbuild\n\ngo 1.26\n\nrequire github.com/coredns/coredns {version}\n"
    )
    (src / "main.go").write_text(coredns_main(COREDNS_PLUGINS))
    log = root / f"build-coredns-{version}.log"
    log.write_text("")
    progress(f"building CoreDNS {version} with the plugins {', '.join(COREDNS_PLUGINS)} (log: {log})")
    started = time.monotonic()
    partial = target.with_suffix(".partial")
    partial.parent.mkdir(parents=True, exist_ok=True)
    _run(
        ["nice", "-n", "10", _go(), "build", "-trimpath", "-ldflags", "-s -w", "-o", str(partial), "."],
        src,
        log,
        _go_env(),
    )
    partial.rename(target)
    progress(f"built CoreDNS {version} in {time.monotonic() - started:.0f}s")
    return target


def _build_pause(root: Path, version: str, progress: Progress) -> Path:
    target = root / "images" / f"pause-{PAUSE_VERSION}.tar"
    if target.exists():
        return target
    if shutil.which("gcc") is None:
        raise BuildError("gcc is not installed: the pause image is compiled from the kubernetes module's pause.c")
    progress(f"building the pause image {images.PAUSE_IMAGE}")
    work = root / "src" / "pause"
    work.mkdir(parents=True, exist_ok=True)
    source = module_dir("k8s.io/kubernetes", version) / "build" / "pause" / "linux" / "pause.c"
    binary = work / "pause"
    _run(
        ["gcc", "-Os", "-Wall", "-static", f"-DVERSION=v{PAUSE_VERSION}-driveops", "-o", str(binary), str(source)],
        work,
        root / "build-pause.log",
    )
    images.write_image_tar(target, images.PAUSE_IMAGE, {"/pause": binary}, ["/pause"])
    return target


def _build_busybox(root: Path, progress: Progress) -> Path:
    busybox = shutil.which("busybox")
    if busybox is None:
        raise BuildError("busybox is not installed (Debian package busybox-static): run scripts/provision-kubernetes")
    target = root / "images" / f"busybox-{images.file_digest(Path(busybox))[:12]}.tar"
    if not target.exists():
        progress(f"building the test image {images.BUSYBOX_IMAGE} from {busybox}")
        images.write_image_tar(
            target,
            images.BUSYBOX_IMAGE,
            {"/bin/busybox": Path(busybox)},
            ["/bin/busybox", "sh"],
            links=images.BUSYBOX_LINKS,
        )
    return target


def ensure_built(cache_dir: Path, progress: Progress = lambda _: None) -> Binaries:
    """Everything the cluster runs, built once per version into ``<cache_dir>/kubernetes``."""
    missing = _missing_debian_commands()
    if missing:
        raise BuildError(f"missing: {', '.join(missing)}; run scripts/provision-kubernetes (installs them)")
    root = kube_cache(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    kube_dir = _build_kubernetes(root, KUBERNETES_VERSION, progress)
    coredns = _build_coredns(root, COREDNS_VERSION, progress)
    pause = _build_pause(root, KUBERNETES_VERSION, progress)
    busybox = _build_busybox(root, progress)
    etcd, containerd, ctr = _which("etcd"), _which("containerd"), _which("ctr")
    return Binaries(kube_dir, coredns, pause, busybox, etcd, containerd, ctr, CNI_DIR)


def _which(command: str) -> str:
    found = shutil.which(command)
    if found is None:
        raise BuildError(f"{command} is not installed: run scripts/provision-kubernetes")
    return found


def main() -> int:
    """``python -m tests.kube.build``: what scripts/provision-kubernetes runs."""
    import sys

    def say(message: str) -> None:
        print(f"provision-kubernetes: {message}", file=sys.stderr, flush=True)

    try:
        binaries = ensure_built(default_cache_dir(), say)
    except BuildError as e:
        say(f"error: {e}")
        return 1
    say(f"ready: {binaries.kube_dir}, {binaries.coredns}, {binaries.pause_image.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
