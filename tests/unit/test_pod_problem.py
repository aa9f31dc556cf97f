"""What a Pod that does not start says: a kubelet still syncing its secret cache is waited for, a
missing secret is a failure."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

from driveops_env.backends.kube_api import pod_problem


def _pod(reason: str, message: str) -> Any:
    waiting = SimpleNamespace(reason=reason, message=message)
    status = SimpleNamespace(state=SimpleNamespace(waiting=waiting))
    return SimpleNamespace(status=SimpleNamespace(container_statuses=[status], conditions=[]))


def test_a_kubelet_syncing_its_secret_cache_is_waited_for() -> None:
    syncing = _pod("CreateContainerConfigError", "failed to sync secret cache: timed out waiting for the condition")
    assert pod_problem(syncing, time.monotonic()) is None
    missing = _pod("CreateContainerConfigError", 'secret "keycloak-files" not found')
    assert pod_problem(missing, time.monotonic()) == (
        'CreateContainerConfigError: secret "keycloak-files" not found',
        "config",
    )
