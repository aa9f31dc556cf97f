"""What only the docker backend has: images, labels, published ports, cleanup without a reaper."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock

from driveops_env import Environment, builders, gc
from tests.helpers import Sandbox, container_of, docker_client, make_sandbox, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.docker]


@pytest.fixture
def dbox(tmp_path: Path) -> Iterator[Sandbox]:
    with make_sandbox(tmp_path, services="postgres,mongo,redis", backend="docker") as box:
        yield box


def test_whole_model_ports_labels_and_down(tmp_path: Path) -> None:
    with make_sandbox(tmp_path, services="keycloak,postgres,mongo,redis", backend="docker") as box:
        env = Environment.up(settings=box.settings(tenants="acme,beta"))
        try:
            assert env.backend == "docker"
            containers = box.containers()
            assert len(containers) == len(env.state.services) == 7  # pg x2, redis x2, mongo x2, keycloak
            for container in containers:
                labels = container.labels
                assert labels["org.driveops-env.env"] == box.name
                assert labels["org.driveops-env.spec"] == env.state.spec_hash
                assert labels["org.driveops-env.service"] in env.state.services
                for bindings in container.attrs["NetworkSettings"]["Ports"].values():
                    for binding in bindings or []:
                        assert binding["HostIp"] == "127.0.0.1", (container.name, binding)
            networks = {n for c in containers for n in c.attrs["NetworkSettings"]["Networks"]}
            assert len(networks) == 1  # one user-defined network per environment
            keycloak = next(c for c in containers if c.labels["org.driveops-env.service"] == "keycloak")
            assert keycloak.attrs["HostConfig"]["Memory"] > 0  # a memory limit on Keycloak
            assert keycloak.attrs["HostConfig"]["CpuShares"] == 32768  # first when they contend
            assert {c.attrs["HostConfig"]["CpuShares"] for c in containers if c != keycloak} == {0}  # 1024
            config = json.dumps(docker_client().images.get(keycloak.attrs["Config"]["Image"]).attrs["Config"])
            templates = (box.settings().cache_dir / "docker").glob("keycloak-optimized-*.json")
            assert [p for p in templates if json.loads(p.read_text())["password"] in config] == []  # in no layer
            assert all(r.ok for r in env.check())

            again = Environment.up(settings=box.settings(tenants="acme,beta"))
            # attached: the same containers (how fast it is belongs to bench/, not to a test)
            assert {k: r.container for k, r in again.state.services.items()} == {
                k: r.container for k, r in env.state.services.items()
            }
        finally:
            env.down()
        assert box.leftovers() == []


def test_sigint_during_up_leaves_no_container_network_or_volume(dbox: Sandbox) -> None:
    proc = dbox.popen("up", "--tenants", "acme,beta")
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # interrupt once some containers exist
        if dbox.containers():
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert dbox.leftovers() == []


@pytest.mark.xdist_group("owners")  # gc sweeps every dead owner's environment: not beside these
def test_kill_9_of_the_owner_is_swept_by_the_next_up_and_only_that(dbox: Sandbox) -> None:
    beside = Environment.up(settings=dbox.settings(tenants="beta", name=dbox.name + "-beside"))
    script = (
        "from driveops_env import Environment, options\n"
        f"Environment.up(settings=options.resolve(cli={{'name': '{dbox.name}', 'tenants': 'acme'}}))\n"
        "import os, signal; os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    subprocess.run([sys.executable, "-c", script], env=dbox.env(), check=False, timeout=300)
    old = {c.id for c in dbox.containers() if c.labels["org.driveops-env.env"] == dbox.name}
    assert old, "the killed owner's containers should still be there"
    result = dbox.cli("up", "--tenants", "acme")
    assert result.returncode == 0, result.stderr
    assert "is gone: sweeping" in result.stderr
    now = {c.id for c in dbox.containers() if c.labels["org.driveops-env.env"] == dbox.name}
    assert now and now.isdisjoint(old)
    assert all(r.ok for r in beside.status())  # the environment beside it was not touched
    beside.down()
    assert dbox.cli("down").returncode == 0


@pytest.mark.xdist_group("owners")  # gc sweeps every dead owner's environment: not beside these
def test_gc_removes_what_a_dead_owner_left(dbox: Sandbox) -> None:
    script = (
        "from driveops_env import Environment, options\n"
        f"Environment.up(settings=options.resolve(cli={{'name': '{dbox.name}', 'tenants': 'acme'}}))\n"
        "import os, signal; os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    subprocess.run([sys.executable, "-c", script], env=dbox.env(), check=False, timeout=300)
    kept = dbox.cli("up", "--name", dbox.name + "-cli", "--tenants", "beta")  # detached: not garbage
    assert kept.returncode == 0, kept.stderr
    dry = dbox.cli("gc", "--dry-run")
    assert dry.returncode == 0 and f"would remove environment '{dbox.name}'" in dry.stderr
    assert f"{dbox.name}-cli" not in dry.stderr
    assert dbox.containers(), "a dry run removes nothing"
    assert dbox.cli("gc").returncode == 0
    names = {c.labels["org.driveops-env.env"] for c in dbox.containers()}
    assert names == {dbox.name + "-cli"}
    assert dbox.cli("down", "--name", dbox.name + "-cli").returncode == 0


@pytest.mark.xdist_group("owners")  # gc sweeps every dead owner's environment: not beside these
def test_orphans_without_a_state_file_are_collected(dbox: Sandbox) -> None:
    assert dbox.cli("up", "--tenants", "acme").returncode == 0
    (dbox.state_dir / f"{dbox.name}.json").unlink()  # the state file is lost
    elsewhere = dbox.settings().replace(state_dir=dbox.state_dir.parent / "another-users-state")
    others = gc.collect(elsewhere, progress=lambda _: None)
    assert [line for line in others if dbox.name in line] == []  # not its own: never taken for dead
    assert dbox.containers()
    removed = gc.collect(dbox.settings(), progress=lambda _: None)
    assert any("container" in line for line in removed)
    assert dbox.leftovers() == []


def test_a_missing_image_is_named_with_its_setting(dbox: Sandbox) -> None:
    missing = "127.0.0.1:9/no-such-image/redis:0"  # a registry on a closed local port: refused at once
    result = dbox.cli("up", "--tenants", "acme", "--image-redis", missing)
    assert result.returncode == 2, result.stderr
    assert missing in result.stderr
    assert "DRIVEOPS_ENV_IMAGE_REDIS" in result.stderr and "--image-redis" in result.stderr
    assert dbox.leftovers() == []


def test_a_container_that_exits_during_start_up_gives_its_logs(dbox: Sandbox) -> None:
    # the postgres image cannot run a redis configuration: its entry point fails at once
    postgres_image = os.environ.get("DRIVEOPS_ENV_IMAGE_POSTGRES", "postgres:16")
    result = dbox.cli("up", "--tenants", "acme", "--services", "redis", "--image-redis", postgres_image)
    assert result.returncode == 1, result.stderr
    assert "redis exited during start-up" in result.stderr
    assert "last log lines" in result.stderr
    assert dbox.leftovers() == []


def test_no_engine_is_a_usage_error(dbox: Sandbox, tmp_path: Path) -> None:
    env = dbox.env() | {"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    result = subprocess.run(
        [sys.executable, "-m", "driveops_env.cli", "up", "--tenants", "acme", "--backend", "docker"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "no Docker engine answers" in result.stderr
    assert dbox.leftovers() == []


def test_auto_picks_docker_when_an_engine_answers(dbox: Sandbox) -> None:
    assert docker_client().ping()
    result = dbox.cli("up", "--tenants", "acme", "--backend", "auto", "--services", "redis")
    assert result.returncode == 0, result.stderr
    assert "backend docker" in result.stderr
    assert dbox.cli("down").returncode == 0


def test_auto_falls_back_to_local_when_the_images_cannot_be_had(dbox: Sandbox) -> None:
    assert docker_client().ping()
    missing = "127.0.0.1:9/no-such-image/redis:0"
    auto = dbox.cli("up", "--tenants", "acme", "--backend", "auto", "--services", "redis", "--image-redis", missing)
    assert auto.returncode == 0, auto.stderr
    lines = [line for line in auto.stderr.splitlines() if line.startswith("backend auto:")]
    assert len(lines) == 1 and missing in lines[0] and "using the local backend" in lines[0]
    assert "backend local" in auto.stderr and dbox.state()["backend"] == "local"
    assert dbox.cli("down").returncode == 0
    explicit = dbox.cli(
        "up", "--tenants", "acme", "--backend", "docker", "--services", "redis", "--image-redis", missing
    )
    assert explicit.returncode == 2 and missing in explicit.stderr  # an explicit choice is never replaced
    assert dbox.leftovers() == []


def test_the_stand_in_images_keep_the_official_contracts() -> None:
    """Where a user can tell: the official images' users (uid/gid 999; Keycloak 1000), and the redis
    image's protected mode, off by default but the user's own `--protected-mode yes` wins."""
    images = {
        s: os.environ.get(f"DRIVEOPS_ENV_IMAGE_{s.upper()}", "") for s in ("postgres", "redis", "mongo", "keycloak")
    }
    users = {"postgres": "postgres", "redis": "redis", "mongo": "mongodb", "keycloak": "keycloak"}
    client = docker_client()
    for service, image in images.items():
        if not image.startswith("driveops-env/"):
            continue  # an official image: its contract is its own
        container = client.containers.run(image, entrypoint=["id", users[service]], detach=True)
        container.wait(timeout=60)
        out = container.logs().decode()
        container.remove(force=True, v=True)  # its anonymous volumes too: none is left behind
        expected = "uid=1000" if service == "keycloak" else "uid=999(" + users[service] + ") gid=999"
        assert expected in out, (service, out)
    if images["redis"].startswith("driveops-env/"):
        for args, wanted in (([], "no"), (["--protected-mode", "yes"], "yes")):
            container = client.containers.run(images["redis"], command=args, detach=True)
            try:
                for _ in range(100):  # until it answers
                    if container.exec_run(["redis-cli", "PING"]).output.decode().strip() == "PONG":
                        break
                    time.sleep(0.1)
                answer = container.exec_run(["redis-cli", "CONFIG", "GET", "protected-mode"]).output.decode()
                assert answer.split()[-1] == wanted, (args, answer)
            finally:
                container.remove(force=True, v=True)


def test_a_keycloak_port_taken_before_the_container_binds_it_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from driveops_env.backends.docker import DockerBackend

    with socket.socket() as taken, make_sandbox(tmp_path, services="keycloak", backend="docker") as box:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        chosen = iter([taken.getsockname()[1]])  # another program binds the first port chosen
        original = DockerBackend._host_port
        monkeypatch.setattr(DockerBackend, "_host_port", lambda self: next(chosen, None) or original(self))
        env = Environment.up(settings=box.settings(tenants="acme"))
        try:
            assert env.state.services["keycloak"].port != taken.getsockname()[1]
            assert env.tenant("acme").keycloak.validate(env.tenant("acme").token())["tenant"] == "acme"
        finally:
            env.down()
        assert box.leftovers() == []


def _kill_when(proc: subprocess.Popen[str], line: str, timeout: float = 300) -> dict[str, str]:
    """Read the process's progress until ``line`` shows and its own builder runs (another worker's
    ``up`` may be making an image of its own meanwhile), then kill it (-9); returns that builder's
    name by id."""
    assert proc.stderr is not None
    said = ""
    deadline = time.monotonic() + timeout
    try:
        while line not in said:
            assert time.monotonic() < deadline, f"never said {line!r}: {said[-2000:]}"
            said += proc.stderr.readline()
        running = wait_for(
            lambda: [c for c in _builders_of(proc.pid) if c["State"] == "running"], what="its running builder"
        )
    finally:  # whatever failed: no `up` left running to disturb the next tests
        proc.kill()
        proc.communicate()
    return {c["Id"]: c["Names"][0] for c in running}


def _builders() -> list[dict[str, Any]]:
    """Builder containers, as the engine lists them (no inspection of each: one removed meanwhile is no
    error).  An environment's server started from an image a builder made carries its labels too: it is
    not one."""
    found = docker_client().api.containers(all=True, filters={"label": "org.driveops-env.builder"})
    return [c for c in found if "org.driveops-env.env" not in (c.get("Labels") or {})]


def _builders_of(pid: int) -> list[dict[str, Any]]:
    """Builders whose lock file ``pid`` holds (``/proc/locks`` names the holder and the file's inode)."""
    held = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" not in fields and len(fields) >= 6 and fields[4] == str(pid):  # a holder, not a waiter
            held.add(int(fields[5].rsplit(":", 1)[1]))
    ours = []
    for container in _builders():
        with contextlib.suppress(OSError):
            if Path(container["Labels"][builders.BUILDER_LOCK]).stat().st_ino in held:
                ours.append(container)
    return ours


def _dead_builders() -> list[dict[str, Any]]:
    """Builders whose maker is gone (nobody holds their lock): another test's live `up` may be making
    an image of its own meanwhile."""
    dead = []
    for container in _builders():
        with builders.abandoned(Path(container["Labels"][builders.BUILDER_LOCK])) as abandoned:
            if abandoned:
                dead.append(container)
    return dead


@pytest.mark.xdist_group("owners")  # gc sweeps every dead owner's environment: not beside these
def test_a_killed_up_leaves_no_keycloak_builder(tmp_path: Path) -> None:
    """kill -9 while the realm image of a new tenant set is being made: its builder container carries
    labels; while someone holds its lock (as a live maker does) `gc` leaves it, and once the lock is free
    the sweep that `gc` and every `up` run removes it.  The test holds the lock itself at once: another
    worker's `up` (whose start sweeps this cache's dead builders) would otherwise race this test for it."""
    slug = "k" + uuid.uuid4().hex[:8]  # a tenant set no realm image exists for
    with make_sandbox(tmp_path, services="keycloak", backend="docker") as box:
        ours = _kill_when(box.popen("up", "--tenants", slug), "making a Keycloak image")
        assert ours, "the killed up's builder outlives it"  # running, or stopped to be committed
        with contextlib.ExitStack() as held:
            for container in [c for c in _builders() if c["Id"] in ours]:
                held.enter_context(FileLock(container["Labels"][builders.BUILDER_LOCK], timeout=60))
            left = {c["Id"] for c in _builders() if c["Id"] in ours}  # another sweep may have won the race
            collected = box.cli("gc")
            assert collected.returncode == 0 and "environment" in collected.stderr, collected.stderr
            assert not [n for n in ours.values() if n in collected.stderr], collected.stderr  # a maker holds it
            assert left <= {c["Id"] for c in _builders()}
        removed = builders.sweep_containers(docker_client(), box.settings().cache_dir)  # what gc and up run
        assert {f"builder container {ours[i]}" for i in left} <= set(removed), removed
        assert not [c for c in _builders() if c["Id"] in ours]
        assert _dead_builders() == []


@pytest.mark.xdist_group("owners")  # gc sweeps every dead owner's environment: not beside these
def test_containers_leave_no_volume_and_gc_keeps_the_newest_snapshots(dbox: Sandbox, tmp_path: Path) -> None:
    assert dbox.cli("up", "--tenants", "acme").returncode == 0
    for container in dbox.containers():  # the images' VOLUMEs are in memory: no anonymous volume
        assert [m for m in container.attrs["Mounts"] if m["Type"] == "volume"] == [], container.name
    assert dbox.cli("down").returncode == 0
    # five realm images of a cache, used at different times: gc keeps the three used last
    cache = tmp_path / "cache"
    (cache / "docker").mkdir(parents=True)
    client = docker_client()
    tags = [f"t{uuid.uuid4().hex[:10]}" for _ in range(5)]
    for age, tag in enumerate(tags):
        client.images.build(
            fileobj=io.BytesIO(f"FROM driveops-env/debian:bookworm\nLABEL org.driveops-env.cache={cache}\n".encode()),
            tag=f"driveops-env/keycloak-realms:{tag}",
            rm=True,
        )
        lock = cache / "docker" / f".{tag}.lock"
        lock.touch()
        os.utime(lock, (time.time() - 1000 + age, time.time() - 1000 + age))
    result = dbox.cli("gc", "--cache-dir", str(cache))
    assert result.returncode == 0, result.stderr
    left = {t.split(":")[1] for i in client.images.list("driveops-env/keycloak-realms") for t in i.tags}
    assert left & set(tags) == set(tags[2:]), result.stderr
    for tag in tags[2:]:
        client.images.remove(f"driveops-env/keycloak-realms:{tag}")


def test_down_of_ten_tenants_removes_the_network(dbox: Sandbox) -> None:
    """Forty containers removed at once once left a network the engine would not remove ("has active
    endpoints"); down and gc finish the job."""
    tenants = ",".join(f"t{n:02d}" for n in range(10))
    up = dbox.cli("up", "--tenants", tenants, "--services", "postgres,redis", timeout=900)
    assert up.returncode == 0, up.stderr[-2000:]
    down = dbox.cli("down")
    assert down.returncode == 0, down.stderr
    assert dbox.leftovers() == []


def test_the_dashboard_shows_a_docker_environment(dbox: Sandbox) -> None:
    """The page once against the docker backend: every tenant's rows healthy, a server's log tail."""
    from tests.browser import chromium, click, dashboard, text_of

    assert dbox.cli("up", "--tenants", "acme,beta").returncode == 0
    try:
        with dashboard(dbox, "--interval", "0.5") as url, chromium(url.split("/?")[0]) as browser:
            browser.get(url)
            wait_for(lambda: "all healthy" in text_of(browser, "summary"), timeout=60, what="healthy rows")
            assert "docker" in text_of(browser, "summary")
            for slug in ("acme", "beta"):
                for store in ("postgres", "mongo", "redis"):
                    assert text_of(browser, f"health-{slug}/{store}") == "healthy"
            click(browser, "log-redis.acme")
            wait_for(lambda: "Ready to accept connections" in text_of(browser, "log"), timeout=30, what="the log")
    finally:
        assert dbox.cli("down").returncode == 0


def test_stores_start_from_initialised_images_whose_template_passwords_are_replaced(dbox: Sandbox) -> None:
    import psycopg

    client = docker_client()
    env = Environment.up(settings=dbox.settings(tenants="acme"))
    try:
        record = env.state.services["postgres.acme"]
        container = client.containers.get(record.container.id if record.container else "")
        image = container.attrs["Config"]["Image"]
        assert image.startswith("driveops-env/postgres-ready:"), image
        assert "Skipping initialization" in container.logs().decode()  # no initdb at this start
        digest = image.split(":")[1]
        secrets = dbox.settings().cache_dir / "docker" / f"postgres-ready-{digest}.json"
        assert secrets.stat().st_mode & 0o777 == 0o600
        template = json.loads(secrets.read_text())["password"]
        config = json.dumps(client.images.get(image).attrs["Config"])
        assert template not in config  # in no layer's configuration
        info = f"host={record.host} port={record.port} user={record.admin_user} dbname=postgres connect_timeout=5"
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(f"{info} password={template}").close()
        with psycopg.connect(f"{info} password={record.admin_password}") as conn:
            assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = 'driveops_acme'").fetchone() == (1,)
        with env.tenant("acme").postgres.connect() as conn:  # the tenant's seed, as on any start
            assert conn.execute("SELECT count(*) FROM garages").fetchone() == (2,)
        _mongo_started_initialised(env, dbox)
    finally:
        env.down()
    # another image (here: the stand-in with one more label) is derived again; false: the image as it is
    other = f"driveops-env/postgres:t{uuid.uuid4().hex[:8]}"
    base = dbox.settings().value("image_postgres")
    client.images.build(fileobj=io.BytesIO(f"FROM {base}\nLABEL t=1\n".encode()), tag=other, rm=True)
    try:
        for option, expected in (("true", "driveops-env/postgres-ready:"), ("false", other)):
            up = dbox.cli("up", "--tenants", "acme", "--image-postgres", other, "--postgres-ready-image", option)
            assert up.returncode == 0, up.stderr
            started = client.containers.get(container_of(dbox.state()["services"]["postgres.acme"]))
            assert started.attrs["Config"]["Image"].startswith(expected) and started.attrs["Config"]["Image"] != image
            old_id = started.attrs["Image"]
            if option == "true":  # --recreate derives it again (the same spec: the environment stays)
                again = dbox.cli("up", "--tenants", "acme", "--image-postgres", other, "--recreate")
                assert again.returncode == 0, again.stderr
                assert client.images.get(started.attrs["Config"]["Image"]).id != old_id
            assert dbox.cli("down").returncode == 0
            if option == "true":  # the replaced image, which the container ran until down: gc removes it
                collected = dbox.cli("gc")
                assert f"image {old_id[7:19]} (untagged)" in collected.stderr, collected.stderr
    finally:
        client.images.remove(other, force=True)
    assert dbox.leftovers() == []


def _mongo_started_initialised(env: Environment, box: Sandbox) -> None:
    import pymongo
    import pymongo.errors

    record = env.state.services["mongo.acme"]
    image = docker_client().containers.get(record.container.id if record.container else "").attrs["Config"]["Image"]
    assert image.startswith("driveops-env/mongo-ready:"), image
    secrets = box.settings().cache_dir / "docker" / f"mongo-ready-{image.split(':')[1]}.json"
    template = json.loads(secrets.read_text())["password"]
    assert template not in json.dumps(docker_client().images.get(image).attrs["Config"])

    def ping(password: str) -> object:
        uri = f"mongodb://{record.admin_user}:{password}@{record.host}:{record.port}/admin"
        client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)
        with client:
            return client.admin.command("ping")["ok"]

    with pytest.raises(pymongo.errors.OperationFailure):
        ping(template)
    assert ping(record.admin_password) == 1
    database = env.tenant("acme").mongo.connect()
    try:  # seeded, as on any start
        assert database["audit_events"].count_documents({}) > 0
    finally:
        database.client.close()
