"""The local Kubernetes cluster as a session fixture (``kube_cluster``), with the busybox test image
imported.  Tests marked ``kubernetes`` run only when asked for (``-m kubernetes``, or
DRIVEOPS_TEST_KUBERNETES=1): the cluster needs root and scripts/provision-kubernetes (a long build).

DRIVEOPS_TEST_KUBE_WORK_DIR=<dir> reuses a cluster already running there (scripts/local-cluster up
--work-dir <dir>) and leaves it running.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kube.build import default_cache_dir, ensure_built
from tests.kube.cluster import Cluster, import_image, is_running, load, running_cluster


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    asked = (
        "kubernetes" in (config.getoption("markexpr", "") or "") or os.environ.get("DRIVEOPS_TEST_KUBERNETES") == "1"
    )
    if asked:
        return
    skip = pytest.mark.skip(
        reason="needs the local Kubernetes cluster: run with -m kubernetes (as root, after "
        "scripts/provision-kubernetes)"
    )
    for item in items:
        if item.get_closest_marker("kubernetes") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A running single-node cluster for the whole session, stopped (everything removed) at its end."""
    if os.geteuid() != 0:
        pytest.fail("the local Kubernetes cluster needs root (network namespaces, mounts, cgroups)")
    binaries = ensure_built(default_cache_dir())
    reuse = os.environ.get("DRIVEOPS_TEST_KUBE_WORK_DIR")
    if reuse:
        cluster = load(Path(reuse))
        if cluster is None or not is_running(cluster):
            pytest.fail(f"DRIVEOPS_TEST_KUBE_WORK_DIR={reuse} holds no running cluster (scripts/local-cluster up)")
        import_image(cluster, binaries.busybox_image)
        yield cluster
        return
    with running_cluster(work_dir=tmp_path_factory.mktemp("kube")) as cluster:
        import_image(cluster, binaries.busybox_image)
        yield cluster
