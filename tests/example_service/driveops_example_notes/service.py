"""The notes service for driveops-env: everything about it, in one unit, plugged in through the
``driveops_env.services`` entry point (nothing in ``driveops_env/`` names it).

- its server: this package's ``server.py``, as a local process (this Python) or as a container of
  ``--image-notes`` (``build_image`` makes one from the Debian base the stand-in images use);
- per tenant: a namespace of its own with a token of its own, seeded from ``<seeds>/notes/*.json``
  (``{key: text}``, placeholders as in every seed) or, without such files, a welcome note;
- a test process's copy: a namespace ``<namespace>_<token>``; restoring loads the seed into it again;
- ``env``: ``DRIVEOPS_NOTES_URL``, ``DRIVEOPS_NOTES_NAMESPACE``, ``DRIVEOPS_NOTES_TOKEN``; the check
  ``notes``; the fixture ``tenant_notes`` (a small client).
"""

from __future__ import annotations

import io
import json
import sys
import tarfile
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from driveops_env.option_types import declare
from driveops_env.secret import generate_secret, hide
from driveops_env.seeding import load_json_template, tenant_context
from driveops_env.services.base import (
    CONTAINER,
    AccessRecord,
    ContainerSpec,
    Fixture,
    Need,
    Plan,
    Preparation,
    Prepare,
    ProcessSpec,
    Server,
    Service,
    Sources,
    View,
    Work,
)
from driveops_env.state import ServiceRecord
from driveops_env.tenants import Tenant, database_name

IMAGE = "driveops-example/notes:2"
PORT = 8080
PACKAGE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class NotesOptions:
    image_notes: str = declare("Image of the notes server for the docker backend.", lambda: IMAGE, IMAGE)


@dataclass
class NotesAccess(AccessRecord):
    """A tenant's namespace on the notes server, with its own token: what `env` prints of it, what
    status shows, what `TenantHandle.notes` hands out."""

    service: str
    host: str
    port: int
    namespace: str
    token: str = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def env(self, style: str) -> dict[str, str]:
        if style == "dotnet":
            return {"Notes__Url": self.url, "Notes__Namespace": self.namespace, "Notes__Token": self.token}
        return {
            "DRIVEOPS_NOTES_URL": self.url,
            "DRIVEOPS_NOTES_NAMESPACE": self.namespace,
            "DRIVEOPS_NOTES_TOKEN": self.token,
        }

    def describe(self, show_secrets: bool) -> str:
        return f"{self.url}/ns/{self.namespace} (token {hide(self.token, self.token, show_secrets)})"

    def data(self, show_secrets: bool) -> dict[str, Any]:
        return {"url": self.url, "namespace": self.namespace, "token": hide(self.token, self.token, show_secrets)}

    def endpoint(self, servers: Mapping[str, ServiceRecord]) -> NotesClient:
        return NotesClient(self)


def call(url: str, token: str, method: str = "GET", body: Any = None) -> Any:
    """One request to a notes server; its JSON answer (an HTTP error raises)."""
    data = json.dumps(body).encode() if body is not None else None
    if not url.startswith("http://"):
        raise ValueError(f"not an http URL: {url}")
    headers = {"Authorization": f"Bearer {token}"}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.loads(response.read() or b"null")


@dataclass
class NotesClient:
    """What ``tenant_notes`` hands out: the tenant's namespace, as the tenant."""

    access: NotesAccess

    def notes(self) -> dict[str, str]:
        found: dict[str, str] = call(f"{self.access.url}/ns/{self.access.namespace}/notes", self.access.token)
        return found

    def put(self, key: str, text: str) -> None:
        call(f"{self.access.url}/ns/{self.access.namespace}/notes/{key}", self.access.token, "PUT", text)


class NotesService(Service[NotesAccess, NotesOptions], name="notes", title="Notes"):
    default = False  # runs when `services` names it
    commands = ("python",)

    def prepare(self, ctx: Prepare) -> Preparation:
        return Preparation(self.own.image_notes if ctx.family == CONTAINER else f"python {sys.version.split()[0]}")

    def images(self) -> dict[str, str]:
        return {"image_notes": self.own.image_notes}

    def render(self, tenant: Tenant, sources: Sources, access: NotesAccess | None) -> dict[str, str]:
        files = sorted((sources.seeds_dir / "notes").glob("*.json"))
        if not files:
            return {"welcome": f"Hello {tenant.display_name}", "tenant_id": tenant.tenant_id}
        seed: dict[str, str] = {}
        for path in files:
            seed |= dict(load_json_template(path, tenant_context(tenant), tenant=tenant.slug, limit=sources.limit))
        return seed

    def server(self, need: Need, plan: Plan, deps: Mapping[str, ServiceRecord]) -> Server:
        token = generate_secret()
        base = Server(need.key, self.name, need.tenant, "admin", token, probe=lambda r: _probe(r))
        if plan.family == CONTAINER:
            base.container = ContainerSpec(
                self.own.image_notes,
                "image_notes",
                PORT,
                env={"NOTES_ADMIN_TOKEN": token},
                secret_env=("NOTES_ADMIN_TOKEN",),
                command=["python3", "/app/server.py", "--port", str(PORT), "--bind", "0.0.0.0"],  # noqa: S104
            )
            return base
        argv = [sys.executable, str(PACKAGE / "server.py"), "--bind", "127.0.0.1", "--port"]
        base.process = ProcessSpec(argv=lambda _, port, __: [*argv, str(port)], env={"NOTES_ADMIN_TOKEN": token})
        base.retry_on = lambda log: "address already in use" in log.lower()
        return base

    def setup(self, work: Work, record: ServiceRecord) -> NotesAccess:
        access = NotesAccess(record.key, record.host, record.port, database_name(work.tenant.slug), generate_secret())
        _namespace(record, access)
        return self.restore(access, work)

    def restore(self, access: NotesAccess, work: Work) -> NotesAccess:
        server = work.servers[access.service]
        call(f"{server_url(server)}/namespaces/{access.namespace}/load", server.admin_password, "POST", work.seed)
        return access

    def copy(self, access: NotesAccess, work: Work) -> NotesAccess:
        copied = replace(access, namespace=f"{access.namespace}_{work.token}", token=generate_secret())
        _namespace(work.servers[access.service], copied)
        return copied

    def drop_copy(self, access: NotesAccess, work: Work) -> None:
        self.drop_tenant(access, work)

    def drop_tenant(self, access: NotesAccess, work: Work) -> None:
        server = work.servers.get(access.service)
        if server is not None:
            call(f"{server_url(server)}/namespaces/{access.namespace}", server.admin_password, "DELETE")

    def probe(self, record: ServiceRecord) -> None:
        _probe(record)

    def checks(self) -> dict[str, Any]:
        return {"notes": _check}

    def fixtures(self) -> list[Fixture]:
        return [Fixture("tenant_notes", "A client of the tenant's notes namespace, on its own copy.", _client)]


def server_url(record: ServiceRecord) -> str:
    return f"http://{record.host}:{record.port}"


def _namespace(server: ServiceRecord, access: NotesAccess) -> None:
    call(f"{server_url(server)}/namespaces/{access.namespace}", server.admin_password, "PUT", {"token": access.token})


def _probe(record: ServiceRecord) -> None:
    call(f"{server_url(record)}/health", record.admin_password)


def _check(view: View) -> str:
    access: NotesAccess = view.access("notes")
    found = call(f"{access.url}/ns/{access.namespace}", access.token)
    return f"namespace {access.namespace} answers with {found['notes']} note(s)"


def _client(handle: Any) -> Iterator[NotesClient]:
    yield handle.notes


def build_image(client: Any, base: str = "driveops-env/debian:bookworm", tag: str = IMAGE) -> str:
    """The notes server's image, on a Docker engine (``client``): Python from Debian's packages, and
    ``server.py``.  Made once; later calls find it."""
    try:
        client.images.get(tag)
    except Exception:  # not there yet
        dockerfile = (
            f"FROM {base}\nRUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
            "--no-install-recommends python3 && rm -rf /var/lib/apt/lists/*\nCOPY server.py /app/server.py\n"
        )
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for name, data in (
                ("Dockerfile", dockerfile.encode()),
                ("server.py", (PACKAGE / "server.py").read_bytes()),
            ):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        buffer.seek(0)
        client.images.build(fileobj=buffer, custom_context=True, tag=tag, rm=True)
    return tag
