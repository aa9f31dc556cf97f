"""What the kubernetes backend asks of a cluster, through the official Python client (``kubernetes``,
the Kubernetes project's own, generated from the API and released with each Kubernetes minor): the
connection from a kubeconfig context, the objects of a server as manifests (a Secret, a NodePort
Service, a Pod), a command run inside a Pod, and what a Pod that does not start says about why.

No service is named here: a manifest is made from a :class:`~driveops_env.services.base.ContainerSpec`.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from typing import Any

from driveops_env.errors import MissingDependencyError, UsageError
from driveops_env.services.base import ContainerSpec

CONTAINER = "server"  # the one container of a server's Pod
SERVER_LABEL = "org.driveops-env.server"  # the Service selects its Pod by it
OWNED_LABEL = "org.driveops-env.owned-namespace"  # a namespace driveops-env made (and so removes)
STATE_FILE = "org.driveops-env/state-file"  # an annotation: a path is no label value
PULL_FAILURES = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")
CONFIG_FAILURES = ("CreateContainerConfigError", "CreateContainerError", "RunContainerError")
# a config failure that is the kubelet's watch catching up (seen right after a cluster's start): it retries
CONFIG_PASSING = ("failed to sync secret cache", "failed to sync configmap cache")


@dataclass(frozen=True)
class Resources:
    """What a server's container requests and may use."""

    cpu_request: str
    memory_mb: int  # the limit when its service names none; the request is a quarter of the limit


def connect(context: str) -> tuple[Any, str]:
    """(CoreV1Api, the context's name) of ``context`` ('' for the kubeconfig's current one), read from
    ``KUBECONFIG`` or ``~/.kube/config``."""
    try:
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException
    except ImportError:
        raise MissingDependencyError(
            "the kubernetes backend needs the Kubernetes Python client",
            hint="pip install 'driveops-env[kubernetes]'",
        ) from None
    try:
        contexts, current = config.list_kube_config_contexts()
        api_client = config.new_client_from_config(context=context or None)
    except (ConfigException, OSError) as exc:
        raise UsageError(
            f"no usable kubeconfig context {context!r}: {exc}" if context else f"no usable kubeconfig: {exc}",
            hint="point KUBECONFIG at a cluster's kubeconfig, or name a context with --kube-context "
            "(scripts/local-cluster up starts a cluster on this machine and prints its kubeconfig)",
        ) from None
    name = context or str((current or {}).get("name", ""))
    if context and context not in {c.get("name") for c in contexts or []}:
        raise UsageError(f"kubeconfig has no context {context!r}", hint="kubectl config get-contexts lists them")
    return client.CoreV1Api(api_client), name


def namespace_name(env_name: str) -> str:
    """``driveops-<name>``, made a DNS label (an environment name may hold '_'; a hash keeps it unique)."""
    name = f"driveops-{env_name}"
    if re.fullmatch(r"[a-z0-9-]{1,63}", name):
        return name
    digest = hashlib.sha256(env_name.encode()).hexdigest()[:6]
    return f"{re.sub(r'[^a-z0-9-]', '-', name)[:55]}-{digest}"


def secret_manifest(name: str, labels: dict[str, str], data: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}, "type": "Opaque", "stringData": data}


def service_manifest(name: str, labels: dict[str, str], spec: ContainerSpec) -> dict[str, Any]:
    """A NodePort Service named like the server's alias on docker (``<service>-<tenant>``): in the cluster it
    answers on the container's ports by that name, outside on the node ports."""
    ports = [{"name": "main", "port": spec.port, "targetPort": spec.port}]
    if spec.host_port:
        ports[0]["nodePort"] = spec.host_port
    ports += [{"name": n, "port": p, "targetPort": p} for n, p in sorted(spec.ports.items())]
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"type": "NodePort", "selector": {SERVER_LABEL: name}, "ports": ports},
    }


def pod_manifest(
    name: str,
    labels: dict[str, str],
    annotations: dict[str, str],
    spec: ContainerSpec,
    command: list[str] | None,
    secret: str,
    resources: Resources,
) -> dict[str, Any]:
    """The server's Pod: the secret variables and files from the Secret ``secret`` (never in the spec),
    its data directories in memory, a TCP readiness probe on the main port, never restarted (a server
    that dies is reported and recreated by ``up``, as on docker)."""
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "env": _env(spec, secret),
        "ports": [{"containerPort": p} for p in (spec.port, *sorted(spec.ports.values()))],
        "readinessProbe": {"tcpSocket": {"port": spec.port}, "periodSeconds": 1, "failureThreshold": 1},
        "resources": _resources(spec, resources),
        "volumeMounts": _mounts(spec),
    }
    if command is not None:
        container["args"] = command  # as docker's command: the image's entrypoint runs it
    return {
        "metadata": {"name": name, "labels": labels, "annotations": annotations},
        "spec": {
            "restartPolicy": "Never",
            "enableServiceLinks": False,
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 20,
            "containers": [container],
            "volumes": _volumes(spec, secret),
        },
    }


def locator_manifest(name: str, labels: dict[str, str], image: str, resources: Resources) -> dict[str, Any]:
    """A Pod that only has to be placed on a node (its ``status.hostIP`` is the address wanted): the
    image's own command, removed as soon as it is placed."""
    spec = ContainerSpec(image, "", 0)
    container: dict[str, Any] = {"name": CONTAINER, "image": image, "imagePullPolicy": "IfNotPresent"}
    container["resources"] = _resources(spec, resources)
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"restartPolicy": "Never", "automountServiceAccountToken": False, "containers": [container]},
    }


def secret_data(spec: ContainerSpec) -> dict[str, str]:
    """What goes into the server's Secret: its secret variables, and its files (``file-<n>``)."""
    data = {f"env-{var}": spec.env[var] for var in spec.secret_env}
    for index, (_, content) in enumerate(sorted(spec.files.items())):
        data[f"file-{index}"] = content.decode()
    return data


def _env(spec: ContainerSpec, secret: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for var, value in spec.env.items():
        if var in spec.secret_env:
            found.append({"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": f"env-{var}"}}})
        else:
            found.append({"name": var, "value": value})
    return found


def _resources(spec: ContainerSpec, resources: Resources) -> dict[str, Any]:
    limit = spec.memory_mb or resources.memory_mb
    return {
        "requests": {"cpu": resources.cpu_request, "memory": f"{max(32, limit // 4)}Mi"},
        "limits": {"memory": f"{limit}Mi"},
    }


def _mounts(spec: ContainerSpec) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = [{"name": f"data-{i}", "mountPath": path} for i, path in enumerate(spec.data_dirs)]
    for index, (path, _) in enumerate(sorted(spec.files.items())):
        mounts.append({"name": "files", "mountPath": path, "subPath": f"file-{index}", "readOnly": True})
    return mounts


def _volumes(spec: ContainerSpec, secret: str) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = [
        {"name": f"data-{i}", "emptyDir": {"medium": "Memory"}} for i in range(len(spec.data_dirs))
    ]
    if spec.files:
        volumes.append({"name": "files", "secret": {"secretName": secret, "defaultMode": 0o444}})
    return volumes


def pod_problem(pod: Any, since: float, patience: float = 60.0) -> tuple[str, str] | None:
    """(what failed, its kind: ``image``, ``config`` or ``pending``) when the Pod will not start by
    waiting: its image cannot be pulled, its container cannot be made, or it has stayed unschedulable for
    ``patience`` seconds."""
    for status in (pod.status.container_statuses or []) if pod.status else []:
        waiting = status.state.waiting if status.state else None
        if waiting is not None and waiting.reason in PULL_FAILURES:
            return f"{waiting.reason}: {waiting.message or ''}".strip(), "image"
        passing = waiting is not None and any(p in (waiting.message or "") for p in CONFIG_PASSING)
        if waiting is not None and waiting.reason in CONFIG_FAILURES and not passing:
            return f"{waiting.reason}: {waiting.message or ''}".strip(), "config"
    waited = time.monotonic() - since > patience
    for condition in (pod.status.conditions or []) if pod.status else []:
        unschedulable = condition.type == "PodScheduled" and condition.reason == "Unschedulable"
        if unschedulable and condition.status == "False" and waited:
            return f"Pending, unschedulable: {condition.message}", "pending"
    return None


def pod_ended(pod: Any) -> bool:
    """The Pod is gone for good: it failed or finished (it is never restarted), or its server exited."""
    if pod is None or pod.status is None:
        return pod is None
    if pod.status.phase in ("Failed", "Succeeded"):
        return True
    return any(s.state and s.state.terminated for s in pod.status.container_statuses or [])


def exec_in(api: Any, namespace: str, pod: str, argv: list[str], stdin: bytes | None) -> tuple[int, str]:
    """Run ``argv`` in the Pod's server; ``stdin`` (a secret: never in an argv) is typed on a terminal,
    as on docker (kcadm reads a password from a console only).  Its exit code and output."""
    from kubernetes.stream import stream

    ws = stream(
        api.connect_get_namespaced_pod_exec,
        pod,
        namespace,
        container=CONTAINER,
        command=argv,
        stdin=stdin is not None,
        stdout=True,
        stderr=True,
        tty=stdin is not None,
        _preload_content=False,
    )
    output: list[str] = []
    try:
        if stdin is not None:
            ws.write_stdin(stdin.decode())
        deadline = time.monotonic() + 120
        while ws.is_open() and time.monotonic() < deadline:
            ws.update(timeout=1)
            output += [ws.read_stdout()] if ws.peek_stdout() else []
            output += [ws.read_stderr()] if ws.peek_stderr() else []
        code = ws.returncode
    finally:
        ws.close()
    return int(code if code is not None else 1), "".join(output)
