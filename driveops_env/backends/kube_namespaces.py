"""The namespaces of the kubernetes backend: one made for an environment (labelled as its own, removed
with it), or one handed out (``--kube-namespace``: checked, never made or removed); the node address
clients reach node ports at."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from driveops_env import readiness
from driveops_env.backends import kube_api
from driveops_env.backends.docker_engine import LABEL
from driveops_env.errors import MissingDependencyError, ReadinessTimeoutError, StartupError, UsageError


def node_address(api: Any) -> str:
    for node in api.list_node().items:
        ready = any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
        internal = [a.address for a in node.status.addresses or [] if a.type == "InternalIP"]
        if ready and internal:
            return str(internal[0])
    raise MissingDependencyError(
        "no ready node of the cluster has an InternalIP for clients to reach the node ports at",
        hint="name the address with --kube-address",
    )


def create_namespace(api: Any, name: str, labels: dict[str, str]) -> None:
    wait_gone(lambda: terminating(api, name), timeout=120)  # an earlier environment's, being removed
    try:
        api.create_namespace({"metadata": {"name": name, "labels": labels}})
    except Exception as exc:
        if getattr(exc, "status", None) != 409:
            hint = permission(exc)
            raise StartupError(f"cannot create the namespace {name}: {reason(exc)}", hint=hint) from None
        found = api.read_namespace(name).metadata.labels or {}
        if any(found.get(k) != v for k, v in labels.items()):  # another state directory's, or not ours
            raise UsageError(
                f"namespace {name} exists and is not this environment's",
                hint="choose another --name, or name a namespace of your own with --kube-namespace",
            ) from None


def check_named(api: Any, name: str) -> None:
    if not exists(api, name):
        raise UsageError(f"namespace {name!r} (--kube-namespace) does not exist", hint="ask for it, or leave it unset")


def exists(api: Any, name: str) -> bool:
    try:
        api.read_namespace(name)
    except Exception:
        return False
    return True


def terminating(api: Any, name: str) -> bool:
    try:
        return bool(api.read_namespace(name).status.phase == "Terminating")
    except Exception:
        return False


def owned(api: Any, namespace: str, env_name: str, home: str) -> bool:
    try:
        labels = api.read_namespace(namespace).metadata.labels or {}
    except Exception:
        return False
    wanted = {kube_api.OWNED_LABEL: "true", f"{LABEL}.env": env_name, f"{LABEL}.home": home}
    return all(labels.get(k) == v for k, v in wanted.items())


def wait_gone(found: Callable[[], object], timeout: float = 60) -> None:
    def gone() -> None:
        if found():
            raise RuntimeError("still there")

    with contextlib.suppress(ReadinessTimeoutError):
        readiness.wait_until(gone, timeout=timeout, service="kubernetes", max_interval=0.25)


def reason(exc: Exception) -> str:
    return str(getattr(exc, "reason", "") or exc)[:300]


def permission(exc: Exception) -> str:
    if getattr(exc, "status", None) == 403:
        return "your kubeconfig's user may not do this: it needs namespaces, pods, services and secrets"
    return "check the cluster (kubectl get nodes) and your permissions there"
