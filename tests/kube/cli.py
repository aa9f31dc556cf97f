"""``python -m tests.kube.cluster build|up|down|status`` (scripts/local-cluster): the command line of the
local cluster.  ``up`` prints the kubeconfig's path and an ``export KUBECONFIG=...`` line on stdout,
progress on stderr; ``status`` exits 3 when no cluster runs; errors exit 1 (2 when something to build
or install is missing).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tests.kube.build import BuildError, default_cache_dir, ensure_built
from tests.kube.cluster import default_work_dir, is_running, load, load_images, start, status, stop


def _say(message: str) -> None:
    print(f"local-cluster: {message}", file=sys.stderr, flush=True)


def _up(work_dir: Path, cache_dir: Path) -> int:
    existing = load(work_dir)
    if existing is not None and is_running(existing):
        _say(f"cluster {existing.name} already runs")
    else:
        if existing is not None:
            _say(f"removing what is left of cluster {existing.name}")
            stop(existing)
        existing = start(cache_dir, work_dir, _say)
    print(f"kubeconfig: {existing.kubeconfig}")
    print(f"export KUBECONFIG={existing.kubeconfig}")
    return 0


def _down(work_dir: Path) -> int:
    cluster = load(work_dir)
    if cluster is None:
        _say(f"no cluster in {work_dir}")
        return 0
    began = time.monotonic()
    stop(cluster)
    _say(f"cluster {cluster.name} stopped and removed in {time.monotonic() - began:.1f}s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="local-cluster", description="A single-node Kubernetes cluster here.")
    parser.add_argument("command", choices=["build", "up", "down", "status", "load"])
    parser.add_argument("images", nargs="*", help="load: images of the local Docker engine to copy into the cluster")
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: the driveops-env cache directory")
    parser.add_argument("--work-dir", type=Path, default=None, help="default: <cache>/kubernetes/run")
    args = parser.parse_args(argv)
    cache_dir: Path = args.cache_dir or default_cache_dir()
    work_dir: Path = (args.work_dir or default_work_dir(cache_dir)).resolve()
    try:
        if args.command == "build":
            binaries = ensure_built(cache_dir, _say)
            print(f"binaries: {binaries.kube_dir} {binaries.coredns}")
            return 0
        if args.command == "up":
            return _up(work_dir, cache_dir)
        if args.command == "down":
            return _down(work_dir)
        cluster = load(work_dir)
        if cluster is None:
            print(f"no cluster in {work_dir}")
            return 3
        if args.command == "load":
            load_images(cluster, list(args.images))
            _say(f"loaded {len(args.images)} image(s) into the cluster's containerd")
            return 0
        print(status(cluster))
        return 0 if is_running(cluster) else 3
    except BuildError as e:
        _say(f"error: {e}")
        return 2
    except RuntimeError as e:
        _say(f"error: {e}")
        return 1
