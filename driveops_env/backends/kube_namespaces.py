"""The namespaces of the kubernetes backend: one made for an environment (labelled as its own, removed
with it), or one handed out (``--kube-namespace``: checked, never made or removed); the node address
clients reach node ports at."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

from driveops_env import readiness
from driveops_env.backends import kube_api
from driveops_env.backends.docker_engine import LABEL
from driveops_env.errors import (
    DriveopsEnvError,
    MissingDependencyError,
    ReadinessTimeoutError,
    StartupError,
    UsageError,
)


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
        if getattr(exc, "status", None) == 403:
            raise  # the caller's answered() says what the account may not do
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
    """A namespace handed out is there (an account that may not read namespaces cannot tell: the objects
    it makes there say so)."""
    try:
        api.read_namespace(name)
    except Exception as exc:
        if getattr(exc, "status", None) == 404:
            raise UsageError(
                f"namespace {name!r} (--kube-namespace) does not exist", hint="ask for it, or leave it unset"
            ) from None
        if getattr(exc, "status", None) != 403:
            raise


@contextlib.contextmanager
def answered(what: str) -> Iterator[None]:
    """A cluster's refusal of ``what`` said as what it is (:func:`refusal`); other errors pass."""
    try:
        yield
    except DriveopsEnvError:
        raise
    except Exception as exc:
        found = refusal(exc, what)
        if found is None:
            raise
        raise found from None


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


_DENIED = re.compile(
    r'User "(?P<user>[^"]+)" cannot (?P<verb>\S+) resource "(?P<resource>[^"]+)"'
    r'(?: in API group "[^"]*")?(?: in the namespace "(?P<namespace>[^"]+)"| at the cluster scope)?'
)
_QUOTA = re.compile(r"exceeded quota: (?P<quota>[^,]+), (?P<detail>requested: .*)")


def refusal(exc: Exception, what: str) -> DriveopsEnvError | None:
    """A cluster's 403 as what it is: the account may not do ``what`` (exit 2, naming the verb, resource,
    namespace and account), or a namespace's quota or LimitRange refused an object (exit 1, naming the
    quota and what was asked); None for any other error."""
    if getattr(exc, "status", None) != 403:
        return None
    text = _message(exc)
    quota = _QUOTA.search(text)
    if quota is not None:
        return StartupError(
            f"{what}: the namespace's quota {quota.group('quota')!r} refused it ({quota.group('detail')[:300]})",
            hint="lower --kube-memory-mb or --kube-cpu-request, run fewer tenants, or ask for a larger quota",
        )
    if "LimitRange" in text or "per Container" in text or "per Pod" in text:
        return StartupError(
            f"{what}: the namespace's LimitRange refused it ({text[:300]})",
            hint="set --kube-memory-mb and --kube-cpu-request (and a server's own heap option) within its limits",
        )
    denied = _DENIED.search(text)
    where = f"in {denied.group('namespace')}" if denied and denied.group("namespace") else "on the cluster"
    said = f"{denied.group('verb')} {denied.group('resource')} {where} for {denied.group('user')}" if denied else text
    return UsageError(
        f"forbidden: {said[:300]} ({what})",
        hint="the README's Permissions (Kubernetes) lists what an account needs; ask for it, or give "
        "--kube-namespace and --kube-address to need less",
    )


def _message(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    try:
        return str(json.loads(str(body)).get("message", body))
    except (TypeError, ValueError, AttributeError):
        return str(body or exc)
