"""The kubernetes backend: every server is a Pod of a cluster (the kubeconfig's current context, or
``--kube-context``), started from its service's container description, as on docker; no service is
named here.

- One namespace per environment: ``driveops-<name>``, made and at ``down`` removed with everything in
  it; or one the user names (``--kube-namespace``), which must exist and is only emptied of what
  driveops-env made there.
- Per server: a Secret (its generated passwords and files: never in the Pod spec or a log), a NodePort
  Service named like the server's alias on docker (``<service>-<tenant>``: in the cluster the
  stores answer by those names on their own ports), and a Pod (the image of the service's setting,
  pulled if not present; data directories in memory; requests and limits; never restarted: a server
  that dies is reported by ``status`` and recreated by ``up``).
- Clients reach the stores on the node ports, at ``--kube-address`` (default: the first ready node's
  InternalIP): nothing needs to keep running beside the environment (a port-forward would), and it
  works on any cluster whose nodes the client machine reaches.
- Every object carries the docker backend's labels (environment, home, spec, service, tenant); the
  state file's path is an annotation.  ``gc`` and ``down`` find them by label.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any

from driveops_env import process, readiness
from driveops_env.backends import kube_api, kube_namespaces
from driveops_env.backends.base import StartContext, Started, home_label, launch, record_of
from driveops_env.backends.docker_engine import LABEL
from driveops_env.errors import (
    DriveopsEnvError,
    MissingDependencyError,
    ReadinessTimeoutError,
    StartupError,
    UsageError,
)
from driveops_env.images.derivation import Derivation
from driveops_env.secret import generate_secret
from driveops_env.services import registry
from driveops_env.services.base import CONTAINER, ContainerSpec, Engine, Server
from driveops_env.settings import Settings
from driveops_env.state import PodPart, ServiceRecord


class KubernetesBackend:
    name = "kubernetes"
    family = CONTAINER

    def __init__(self, settings: Settings, engine: str = "") -> None:
        self.settings = settings
        self.url = engine or settings.kube_context  # a running environment's: its recorded context
        self._api: Any = None
        self._address = settings.kube_address
        self._namespace_lock = threading.Lock()
        self._address_lock = threading.Lock()
        self._namespaces: set[str] = set()

    @classmethod
    def available(cls, settings: Settings, progress: Callable[[str], None]) -> bool:
        return False  # ``auto`` never starts servers on a cluster: name it

    @classmethod
    def prune(cls, settings: Settings) -> list[str]:
        return []  # the cluster keeps no image of the cache

    @classmethod
    def collect(cls, settings: Settings, *, dry_run: bool) -> list[str]:
        """Namespaces (and objects) of this home's environments that have no state file any more."""
        selector = f"{LABEL}.home={home_label(settings)}"
        try:
            backend = cls(settings)
            if settings.kube_namespace:  # an account handed a namespace may list pods there only
                pods = backend.api().list_namespaced_pod(settings.kube_namespace, label_selector=selector)
            else:
                pods = backend.api().list_pod_for_all_namespaces(label_selector=selector)
        except Exception:  # no cluster configured, it does not answer, or it refuses: nothing to find there
            return []
        removed = []
        for pod in pods.items:
            env = pod.metadata.labels.get(f"{LABEL}.env", "")
            if env and not (settings.state_dir / f"{env}.json").exists():
                removed.append(f"pod {pod.metadata.namespace}/{pod.metadata.name}")
                if not dry_run:
                    backend.cleanup_in(pod.metadata.namespace, env)
        return sorted(set(removed))

    # --- the cluster ------------------------------------------------------------------------------

    def api(self) -> Any:
        if self._api is None:
            self._api, self.url = kube_api.connect(self.url)
        return self._api

    def addresses(self) -> tuple[str, str]:
        """(where ports are published, where clients reach them): the node address, both: the one given,
        else the first ready node's, else (an account that may not list nodes) the address of the node a
        Pod of ours lands on."""
        with self._address_lock:  # the parallel starts share one answer
            return self._addresses()

    def _addresses(self) -> tuple[str, str]:
        if not self._address:
            try:
                self._address = kube_namespaces.node_address(self.api())
            except Exception as exc:
                if getattr(exc, "status", None) != 403 or not self.settings.kube_namespace:
                    said = kube_namespaces.refusal(exc, "list nodes, for their address (or give --kube-address)")
                    raise said or exc from None
                self._address = self._locate(self.settings.kube_namespace)
        return self._address, self._address

    def _locate(self, namespace: str) -> str:
        """The address of the node a Pod lands on (``status.hostIP``, which a namespaced account may read):
        a Pod of the first image the services run, removed as soon as it is placed."""
        api, name = self.api(), f"driveops-locate-{generate_secret(6).lower()}"
        image = next(image for s in registry.services(self.settings) for image in s.images().values())
        labels = self._labels(self.settings.name, **{f"{LABEL}.service": "locate"})
        resources = kube_api.Resources(self.settings.kube_cpu_request, self.settings.kube_memory_mb)
        with kube_namespaces.answered(f"create a Pod in {namespace}, to find a node's address"):
            api.create_namespaced_pod(namespace, kube_api.locator_manifest(name, labels, image, resources))

        def placed() -> str:
            pod = api.read_namespaced_pod(name, namespace)
            if pod.status is None or not pod.status.host_ip:
                raise RuntimeError(f"Pod {name} is not placed on a node yet")
            return str(pod.status.host_ip)

        try:
            return readiness.wait_until(placed, timeout=self.settings.startup_timeout, service="kubernetes")
        finally:
            with contextlib.suppress(Exception):
                api.delete_namespaced_pod(name, namespace, grace_period_seconds=0)

    def engine(self) -> Engine | None:
        return self

    builds = False  # the cluster pulls the configured images; it derives none

    def client(self) -> Any:
        return None

    def identity(self) -> str:
        return self.url

    def image_id(self, reference: str) -> str | None:
        return None

    def build(self, context: bytes, tag: str, labels: Mapping[str, str]) -> str:
        raise UsageError("the kubernetes backend builds no image", hint="use the docker backend to derive images")

    def derive(self, derivation: Derivation) -> str:
        raise UsageError("the kubernetes backend derives no image", hint="use the docker backend to derive images")

    def remove_image(self, reference: str) -> None:
        pass

    def run_as(self) -> str | None:
        return None

    def exec(self, record: ServiceRecord, argv: list[str], stdin: bytes | None = None) -> tuple[int, str]:
        with kube_namespaces.answered(f"running a command in {record.key}'s Pod (pods/exec)"):
            return kube_api.exec_in(self.api(), _namespace(record), _pod_name(record), argv, stdin)

    def namespace(self, env_name: str) -> str:
        return self.settings.kube_namespace or kube_api.namespace_name(env_name)

    def _labels(self, env_name: str, **extra: str) -> dict[str, str]:
        return {f"{LABEL}.env": env_name, f"{LABEL}.home": home_label(self.settings), **extra}

    def prepare(self, progress: Callable[[str], None]) -> None:
        """The cluster answers, and the account may work in the namespace handed out (when one is): no
        request of the cluster's scope is made for that."""
        api = self.api()
        try:
            api.get_api_resources()  # what any account may ask
        except Exception as exc:
            raise kube_namespaces.refusal(exc, "reach the API") or MissingDependencyError(
                f"the cluster of kubeconfig context {self.url!r} does not answer: {kube_namespaces.reason(exc)}",
                hint="check `kubectl --context <context> get nodes`; scripts/local-cluster up starts one here",
            ) from None
        namespace = self.settings.kube_namespace
        if namespace:
            with kube_namespaces.answered(f"list pods in {namespace}"):
                api.list_namespaced_pod(namespace, limit=1)
        where = self._address or "the address of a node (found at the first start)"
        progress(
            f"kubernetes: context {self.url}, namespace {self.namespace(self.settings.name)}; node ports at {where}"
        )

    def _ensure_namespace(self, ctx: StartContext) -> str:
        name = self.namespace(ctx.env_name)
        with self._namespace_lock:  # the parallel start-up steps share one namespace
            if name in self._namespaces:
                return name
            if self.settings.kube_namespace:
                kube_namespaces.check_named(self.api(), name)
            else:
                labels = self._labels(ctx.env_name, **{kube_api.OWNED_LABEL: "true"})
                with kube_namespaces.answered(f"create the namespace {name} (or give --kube-namespace)"):
                    kube_namespaces.create_namespace(self.api(), name, labels)
            self._namespaces.add(name)
        return name

    # --- starting ---------------------------------------------------------------------------------

    def start(self, server: Server, ctx: StartContext) -> ServiceRecord:
        spec = server.container
        if spec is None:
            raise StartupError(f"{server.service} describes no container", service=server.service)
        namespace = self._ensure_namespace(ctx)
        base = record_of(
            server,
            self.addresses()[1],
            aliases=[server.alias],
            container_port=spec.port,
            pod=PodPart("", namespace, spec.image),  # its name once it is made
        )
        return launch(ctx, server, lambda _: self._start_pod(ctx, base, spec), self._discard)

    def _start_pod(self, ctx: StartContext, base: ServiceRecord, spec: ContainerSpec) -> Started:
        api, namespace, alias = self.api(), _namespace(base), base.aliases[0]
        labels = self._labels(
            ctx.env_name,
            **{f"{LABEL}.spec": ctx.spec_hash, f"{LABEL}.service": base.key, f"{LABEL}.tenant": base.tenant or ""},
        )
        pod = f"{alias}-{generate_secret(6).lower()}"
        annotations = {kube_api.STATE_FILE: str(self.settings.state_dir / f"{ctx.env_name}.json")}
        resources = kube_api.Resources(self.settings.kube_cpu_request, self.settings.kube_memory_mb)
        with kube_namespaces.answered(f"starting {base.key} in namespace {namespace}"):
            self._discard(base)  # a server of an earlier run of this name (its Service name is fixed)
            secret = kube_api.secret_manifest(pod, labels, kube_api.secret_data(spec))
            api.create_namespaced_secret(namespace, secret)
            service = api.create_namespaced_service(namespace, kube_api.service_manifest(alias, labels, spec))
            node_ports = {p.name: int(p.node_port) for p in service.spec.ports}
            url = f"http://{base.host}:{node_ports['main']}"
            command = spec.command_for(url) if spec.command_for else spec.command
            server_labels = labels | {kube_api.SERVER_LABEL: alias}
            api.create_namespaced_pod(
                namespace, kube_api.pod_manifest(pod, server_labels, annotations, spec, command, pod, resources)
            )
        record = replace(
            base,
            port=node_ports["main"],
            pod=PodPart(pod, namespace, spec.image),
            ports={n: p for n, p in node_ports.items() if n != "main"},
        )
        self._wait_scheduled(record, spec)
        return Started(record, lambda: not kube_api.pod_ended(self._pod(record)), lambda: self._excerpt(record))

    def _wait_scheduled(self, record: ServiceRecord, spec: ContainerSpec) -> None:
        """Until the Pod's server runs; a Pod that cannot start by waiting is an error naming why."""
        started = time.monotonic()
        patience = min(60.0, self.settings.startup_timeout / 2)  # a cluster may scale up meanwhile

        def scheduled() -> None:
            pod = self._pod(record)
            if pod is not None and pod.status and pod.status.phase != "Pending":
                return
            found = kube_api.pod_problem(pod, started, patience) if pod is not None else None
            if found is not None:
                self._discard(record)
                raise _problem(record, spec, *found)  # final: waiting would not change it
            raise RuntimeError(f"pod {_pod_name(record)} is pending")

        with contextlib.suppress(ReadinessTimeoutError):  # launch's readiness wait says what came of it
            timeout = self.settings.startup_timeout
            readiness.wait_until(
                scheduled, timeout=timeout, service=record.kind, tenant=record.tenant, max_interval=0.25
            )

    # --- running ----------------------------------------------------------------------------------

    def _pod(self, record: ServiceRecord) -> Any:
        if record.pod is None or not record.pod.name:
            return None
        try:
            pod = self.api().read_namespaced_pod(record.pod.name, record.pod.namespace)
        except Exception:  # gone
            return None
        labels = pod.metadata.labels or {}
        return pod if labels.get(f"{LABEL}.home") == home_label(self.settings) else None

    def is_running(self, record: ServiceRecord) -> bool:
        pod = self._pod(record)
        return pod is not None and pod.status is not None and pod.status.phase == "Running"

    def stop(self, record: ServiceRecord, *, fast: bool = False) -> None:
        """Only what carries this state directory's label is touched (a Pod gone meanwhile leaves its
        Service and Secret: they go too)."""
        self._discard(record, grace=0 if fast else 20)

    def remove(self, record: ServiceRecord) -> None:
        self._discard(record)

    def _discard(self, record: ServiceRecord, grace: int = 0) -> None:
        """The server's Pod, Secret and Service gone (whichever exist)."""
        api, namespace = self.api(), _namespace(record)
        selector = f"{LABEL}.service={record.key},{LABEL}.home={home_label(self.settings)}"
        for pod in api.list_namespaced_pod(namespace, label_selector=selector).items:
            with contextlib.suppress(Exception):
                api.delete_namespaced_pod(pod.metadata.name, namespace, grace_period_seconds=grace)
        for secret in api.list_namespaced_secret(namespace, label_selector=selector).items:
            with contextlib.suppress(Exception):
                api.delete_namespaced_secret(secret.metadata.name, namespace)
        for service in api.list_namespaced_service(namespace, label_selector=selector).items:
            with contextlib.suppress(Exception):
                api.delete_namespaced_service(service.metadata.name, namespace)
        kube_namespaces.wait_gone(lambda: api.list_namespaced_service(namespace, label_selector=selector).items)

    def logs(self, record: ServiceRecord, lines: int | None) -> str:
        if self._pod(record) is None:
            return ""
        kwargs: dict[str, Any] = {"tail_lines": lines} if lines else {}
        with kube_namespaces.answered(f"reading {record.key}'s log (pods/log)"):
            found = self.api().read_namespaced_pod_log(
                _pod_name(record), _namespace(record), container=kube_api.CONTAINER, **kwargs
            )
        return str(found)

    def follow(self, record: ServiceRecord) -> Iterator[str]:
        if self._pod(record) is None:
            return
        response = self.api().read_namespaced_pod_log(
            _pod_name(record),
            _namespace(record),
            container=kube_api.CONTAINER,
            follow=True,
            tail_lines=0,
            _preload_content=False,
        )
        for chunk in response.stream():
            yield chunk.decode(errors="replace")

    def _excerpt(self, record: ServiceRecord) -> str:
        try:
            return process.excerpt(self.logs(record, 400))
        except Exception:  # the Pod may be gone, or its container not started yet
            return ""

    def cleanup(self, env_name: str) -> list[str]:
        """Everything labelled with this environment (of this state directory) removed; the namespace too
        when driveops-env made it."""
        try:
            return self.cleanup_in(self.namespace(env_name), env_name)
        except DriveopsEnvError:
            raise
        except Exception as exc:
            if getattr(exc, "status", None) == 403 and not self.settings.kube_namespace:
                return []  # may not even list in the namespace of its own: it made nothing there (up's create says)
            raise StartupError(
                f"cannot remove environment {env_name!r} from the cluster: {kube_namespaces.reason(exc)}",
                hint=kube_namespaces.permission(exc),
            ) from None

    def cleanup_in(self, namespace: str, env_name: str) -> list[str]:
        api = self.api()
        selector = f"{LABEL}.env={env_name},{LABEL}.home={home_label(self.settings)}"
        removed = []
        for kind in ("pod", "secret", "service"):
            for item in getattr(api, f"list_namespaced_{kind}")(namespace, label_selector=selector).items:
                with contextlib.suppress(Exception):
                    getattr(api, f"delete_namespaced_{kind}")(item.metadata.name, namespace, grace_period_seconds=0)
                removed.append(f"{kind} {namespace}/{item.metadata.name}")
        if kube_namespaces.owned(api, namespace, env_name, home_label(self.settings)):
            api.delete_namespace(namespace, grace_period_seconds=0)
            kube_namespaces.wait_gone(lambda: kube_namespaces.exists(api, namespace), timeout=120)
            removed.append(f"namespace {namespace}")
        return removed


def _namespace(record: ServiceRecord) -> str:
    return record.pod.namespace if record.pod else ""


def _pod_name(record: ServiceRecord) -> str:
    return record.pod.name if record.pod else ""


def _problem(record: ServiceRecord, spec: ContainerSpec, what: str, kind: str) -> Exception:
    if kind == "image":
        option = spec.image_option.replace("_", "-")
        return MissingDependencyError(
            f"the cluster cannot pull the {record.kind} image {spec.image!r} ({what[:300]})",
            service=record.kind,
            tenant=record.tenant,
            hint=f"set --{option} (or DRIVEOPS_ENV_{spec.image_option.upper()}) to an image the cluster can pull",
        )
    hint = "lower --kube-memory-mb or --kube-cpu-request, or free the nodes" if kind == "pending" else None
    return StartupError(
        f"{record.key}'s Pod does not start: {what[:500]}", service=record.kind, tenant=record.tenant, hint=hint
    )
