"""Pure logic: the step runner, env var formats, the state file, secrets, tables."""

from __future__ import annotations

import json
import stat
import threading
from dataclasses import asdict
from pathlib import Path

import pytest

from driveops_env import envvars, options, render
from driveops_env.errors import DriveopsEnvError, StateError
from driveops_env.secret import generate_secret
from driveops_env.services import registry
from driveops_env.services.postgres.access import PostgresAccess
from driveops_env.services.redis.access import RedisAccess
from driveops_env.state import EnvState, StateStore, TenantRecord
from driveops_env.tasks import Step, run_steps

SERVICES = registry.every(options.resolve(environ={}, pyproject={}))


def _tenant() -> TenantRecord:
    pg = PostgresAccess("postgres.acme", "127.0.0.1", 5555, "driveops_acme", "driveops_acme", "pw1")
    rd = RedisAccess("redis.shared", "127.0.0.1", 6666, "driveops_acme", "pw2", "acme:")
    return TenantRecord(
        "acme",
        "550e8400-e29b-41d4-a716-446655440001",
        "Acme Garage",
        "acme",
        stores={"postgres": asdict(pg), "redis": asdict(rd)},
    )


def _state(fingerprint: dict[str, object] | None = None, tenants: dict[str, TenantRecord] | None = None) -> EnvState:
    return EnvState(
        name="x",
        backend="local",
        isolation="shared",
        spec_hash="h",
        fingerprint=fingerprint or {},
        data_dir="/tmp/x",
        tenants=tenants or {},
    )


def test_dotnet_keys_follow_the_production_guide() -> None:
    out = envvars.variables("default", _tenant(), SERVICES, "dotnet")
    assert out["ConnectionStrings__DefaultConnection"] == (
        "Host=127.0.0.1;Port=5555;Database=driveops_acme;Username=driveops_acme;Password=pw1"
    )
    assert out["ConnectionStrings__Redis"] == "127.0.0.1:6666,password=pw2,user=driveops_acme"
    assert out["TenantId"] == "550e8400-e29b-41d4-a716-446655440001"


def test_formats() -> None:
    variables = envvars.variables("default", _tenant(), SERVICES)
    assert variables["DRIVEOPS_POSTGRES_DSN"] == "postgresql://driveops_acme:pw1@127.0.0.1:5555/driveops_acme"
    assert variables["DRIVEOPS_REDIS_URL"] == "redis://driveops_acme:pw2@127.0.0.1:6666/0"
    assert json.loads(envvars.render(variables, "json")) == variables
    assert "export DRIVEOPS_TENANT_NAME='Acme Garage'" in envvars.render(variables, "shell")
    # docker --env-file and $GITHUB_ENV keep everything after the first '=': no quotes
    assert "DRIVEOPS_TENANT_NAME=Acme Garage" in envvars.render(variables, "dotenv").splitlines()


def test_steps_run_after_their_dependencies_and_in_parallel() -> None:
    order: list[str] = []
    lock = threading.Lock()
    both_running = threading.Barrier(2, timeout=10)  # broken unless a and b run at the same time

    def step(name: str, meet: bool) -> Step:
        def run() -> str:
            if meet:
                both_running.wait()
            with lock:
                order.append(name)
            return name

        return Step(name, run)

    steps = [step("a", True), step("b", True), Step("c", step("c", False).run, after=("a", "b"))]
    run_steps(steps, cancel=threading.Event())
    assert order[-1] == "c" and set(order[:2]) == {"a", "b"}


def test_first_failure_cancels_the_rest() -> None:
    cancel = threading.Event()
    ran: list[str] = []

    def boom() -> str:
        raise RuntimeError("boom")

    def later() -> str:
        ran.append("later")
        return "later"

    steps = [Step("bad", boom), Step("later", later, after=("bad",))]
    with pytest.raises(RuntimeError, match="boom"):
        run_steps(steps, cancel=cancel)
    assert cancel.is_set() and ran == []


def test_state_file_is_private_and_round_trips(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    state = _state(fingerprint={"a": 1}, tenants={"acme": _tenant()})
    store.save(state)
    path = store.path("x")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    loaded = store.load("x")
    assert loaded == state
    assert store.names() == ["x"]
    path.write_text("{garbage")
    with pytest.raises(StateError, match="corrupted"):
        store.load("x")


def test_unwritable_state_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    store = StateStore(blocker / "state")
    with pytest.raises(DriveopsEnvError, match="state directory"):
        store.save(_state())


def test_secrets_are_long_alphanumerics() -> None:
    secrets = {generate_secret() for _ in range(50)}
    assert len(secrets) == 50
    assert all(len(s) == 32 and s.isalnum() for s in secrets)


def test_endpoints_table_masks_secrets() -> None:
    state = _state(tenants={"acme": _tenant()})
    hidden = render.endpoints(state, SERVICES, show_secrets=False)
    assert "pw1" not in hidden and "pw2" not in hidden and "****" in hidden
    shown = render.endpoints(state, SERVICES, show_secrets=True)
    assert "pw1" in shown and "pw2" in shown


def test_no_secret_shows_in_a_repr() -> None:
    # pytest prints reprs of locals and assertion operands into CI logs
    from driveops_env.services.keycloak.access import KeycloakAccess, KeycloakEndpoint
    from driveops_env.services.postgres.access import PostgresEndpoint
    from driveops_env.services.redis.access import RedisEndpoint
    from driveops_env.state import ServiceRecord

    pg = PostgresEndpoint(**vars(PostgresAccess("postgres.acme", "127.0.0.1", 5432, "acme", "acme", "s3cret-pg")))
    rd = RedisEndpoint(**vars(RedisAccess("redis.acme", "127.0.0.1", 6379, "acme", "s3cret-rd", "acme:")))
    kc = KeycloakAccess("keycloak", "http://x", "acme", "driveops-api", "s3cret-kc", "web", {"u": "s3cret-user"})
    server = ServiceRecord("postgres.acme", "postgres", "acme", "127.0.0.1", 5432, "postgres", "s3cret-admin")
    stores = {"postgres": asdict(pg), "redis": asdict(rd), "keycloak": asdict(kc)}
    record = TenantRecord("acme", "id", "Acme", "acme", stores=stores)
    shown = repr(
        [pg, rd, KeycloakEndpoint(**vars(kc), admin_user="admin", admin_password="s3cret-admin"), server, record]
    )
    assert "s3cret" not in shown
    assert "postgres.acme" in shown and pg.password in pg.dsn  # the values themselves are all there


def test_keycloak_is_not_ready_while_its_main_port_does_not_answer() -> None:
    """Keycloak's management port can report ready while its main port is held by another program
    (Keycloak then exits): readiness asks the main port too, where a silent holder never answers."""
    import http.server
    import socket
    import urllib.error

    from driveops_env.services.keycloak import admin as keycloak
    from driveops_env.state import ServiceRecord

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    management = http.server.HTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=management.serve_forever, daemon=True).start()
    try:
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", 0))
            holder.listen()  # accepts connections, never answers
            record = ServiceRecord("keycloak", "keycloak", None, "127.0.0.1", holder.getsockname()[1], "admin", "pw")
            record.ports["management"] = management.server_address[1]
            with pytest.raises((TimeoutError, urllib.error.URLError)):  # the holder's silence
                keycloak.probe_ready(record)
            management_only = ServiceRecord(
                "keycloak", "keycloak", None, "127.0.0.1", management.server_address[1], "admin", "pw"
            )
            keycloak.probe_ready(management_only)  # one port for both (before 25): its answer is enough
    finally:
        management.shutdown()
        management.server_close()


def test_a_diagnosis_is_cut_between_words() -> None:
    import psycopg

    from driveops_env.diagnosis import diagnose

    long_host = "a-server-with-a-rather-long-name.example"
    error = psycopg.OperationalError(
        f'connection failed: connection to server at "{long_host}" (127.0.0.1), port 5 failed: Connection '
        "refused\n\tIs the server running on that host and accepting TCP/IP connections?"
    )
    detail, hint = diagnose(error)
    assert detail.startswith("no answer: ") and hint is not None
    words = detail.removeprefix("no answer: ").removeprefix("... ").removesuffix(" ...").split()
    source = " ".join(str(error).split()).split()
    assert words[0] in source and words[-1] in source, detail  # whole words at both ends
    assert "Connection refused" in detail


def test_files_refuse_what_is_not_a_bounded_regular_file(tmp_path: Path) -> None:
    import os

    from driveops_env import files
    from driveops_env.errors import TemplateError

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(TemplateError, match="a FIFO"):
        files.read_text(fifo)  # returns at once: never waits for a writer
    with pytest.raises(TemplateError, match="a character device"):
        files.read_text(Path("/dev/zero"))
    big = tmp_path / "big"
    big.write_bytes(b"x" * 2048)
    with pytest.raises(TemplateError, match="the limit is"):
        files.read_text(big, limit=1024)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200 + "]" * 200)
    with pytest.raises(TemplateError, match="nests deeper"):
        files.load_json(deep)
    assert files.json_depth({"a": [{"b": 1}]}) == 3


def test_a_state_file_of_the_previous_version_is_read_with_each_backend_part(tmp_path: Path) -> None:
    from driveops_env.state import STATE_VERSION, StateStore

    common = {"kind": "redis", "tenant": "acme", "host": "h", "port": 1, "admin_user": "u", "admin_password": "p"}
    local = {"key": "a", **common, "pid": 9, "pid_start": 7, "argv0": "r", "data_dir": "/d/a", "log_path": "/d/l"}
    docker = {"key": "b", **common, "container_id": "c1", "container_name": "n1", "image": "i", "network": "net"}
    kube = {"key": "c", **common, "container_id": "pod1", "container_name": "pod1", "image": "i", "network": "ns"}
    for backend, record in (("local", local), ("docker", docker), ("kubernetes", kube)):
        store = StateStore(tmp_path / backend)
        store.state_dir.mkdir(mode=0o700)
        raw: dict[str, object] = {"name": "x", "backend": backend, "isolation": "dedicated", "spec_hash": "h"}
        raw["fingerprint"] = {}
        raw |= {"data_dir": "/d", "services": {str(record["key"]): record}, "version": STATE_VERSION - 1}
        (store.state_dir / "x.json").write_text(json.dumps(raw))
        (store.state_dir / "x.json").chmod(0o600)
        state = store.load("x")
        assert state is not None
        (found,) = state.services.values()
        if backend == "local":
            assert found.process is not None and (found.process.pid, found.process.data_dir) == (9, "/d/a")
        elif backend == "docker":
            assert found.container is not None and (found.container.id, found.container.network) == ("c1", "net")
        else:
            assert found.pod is not None and (found.pod.name, found.pod.namespace) == ("pod1", "ns")


def test_a_descriptor_of_the_previous_version_loads() -> None:
    from driveops_env import descriptor, typed_json
    from driveops_env.state import ServiceRecord

    old: dict[str, object] = {"key": "a", "kind": "redis", "tenant": None, "host": "h", "port": 1, "admin_user": "u"}
    old |= {"admin_password": "p", "image": "redis:7", "stop_signals": [15, 9], "aliases": ["redis-shared"]}
    record = typed_json.build(ServiceRecord, descriptor._current(old))
    assert record.aliases == ["redis-shared"] and record.container is None


def test_a_unit_written_for_the_earlier_core_is_told_what_moved() -> None:
    from dataclasses import dataclass

    from driveops_env.services.base import AccessRecord, Service

    @dataclass
    class Plain:
        service: str

    @dataclass
    class Record(AccessRecord):
        service: str

    with pytest.raises(TypeError, match="AccessRecord"):

        class Old(Service[Plain, None], name="old"):  # type: ignore[type-var]
            pass

    with pytest.raises(TypeError, match="env moved"):

        class Older(Service[Record, None], name="older"):
            def env(self, access: Record, style: str) -> dict[str, str]:  # a hook of the earlier core
                return {}
