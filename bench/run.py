"""The benchmark: everything measured side by side in one run, on this machine, now.

    nox -s bench                    (or: python -m bench.run [--quick] [--backends local,docker])

Writes bench/results/latest.md (a table), latest.json (one entry per target: name, measured, target,
met) and latest.png (a plot).  Absolute times on a shared 2-core machine are noise; the targets are
ratios of numbers measured here, in this run.

What is measured (services: keycloak, postgres, mongo, redis; caches warm: images built, Keycloak
built and initialised once, FerretDB built; "cold up" = no environment running):
  - cold ``up`` of 1, 2, 5 and 10 tenants per backend;
  - the floor: Keycloak alone, started the same way as ``up`` starts it, to ready;
  - the plain way (docker): the same images started one after another with testcontainers' own
    modules (PostgresContainer, MongoDbContainer, RedisContainer, KeycloakContainer), the SQL seeds
    run with psycopg, realms created one by one with python-keycloak;
  - re-attach (``up`` of a running environment with the same spec);
  - per-test reset of one tenant (PostgreSQL + MongoDB + Redis), p50/p95, against re-seeding the
    tenant from scratch;
  - resident memory per tenant (its servers) and of Keycloak (local backend).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from driveops_env import Environment, options, paths, seeding
from driveops_env.isolation import TenantCopy
from driveops_env.services import keycloak_dist, mongo, postgres
from driveops_env.spec import Tenant

RESULTS = Path(__file__).resolve().parent / "results"
ALL = "keycloak,postgres,mongo,redis"


@dataclass
class Target:
    name: str
    measured: float
    target: str
    met: bool
    detail: str = ""


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def settings_for(backend: str, tenants: str, name: str) -> options.Settings:
    images = {k: v for k, v in os.environ.items() if k.startswith("DRIVEOPS_ENV_IMAGE_")}
    return options.resolve(
        cli={"name": name, "tenants": tenants, "backend": backend, "services": ALL},
        environ=images,
        pyproject={},
    )


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.monotonic()
    result = action()
    return time.monotonic() - started, result


def tenants_list(count: int) -> str:
    names = ["acme", "beta", *[f"t{i:02d}" for i in range(count)]]
    return ",".join(names[:count])


# --- cold up and the floor -----------------------------------------------------------------------


def cold_up(backend: str, count: int) -> tuple[float, Environment]:
    name = f"bench-{backend}-{count}-{uuid.uuid4().hex[:6]}"
    seconds, env = timed(lambda: Environment.up(settings=settings_for(backend, tenants_list(count), name)))
    return seconds, env


def keycloak_floor_local(settings: options.Settings) -> float:
    from bench.keycloak import start, stop

    install = keycloak_dist.ensure_install(
        settings.cache_dir, version=settings.keycloak_version, db="dev-file", java_home=settings.java_home,
        heap_mb=settings.keycloak_heap_mb, progress=log,
    )  # fmt: skip
    data = Path(tempfile.mkdtemp(prefix="bench-kc-", dir=str(paths.default_data_dir().parent)))
    try:
        keycloak_dist.copy_base_data(install, data)
        argv = [
            a.replace("--http-port=0", "--http-port=HTTP").replace(
                "--http-management-port=0", "--http-management-port=MGMT"
            )
            for a in install.server_argv(data, 0, 0)
        ]
        seconds, pid, _ = start(install, argv, install.server_env(settings.keycloak_heap_mb))
        stop(pid)
        return float(seconds)
    finally:
        import shutil

        shutil.rmtree(data, ignore_errors=True)


def keycloak_floor_docker(settings: options.Settings) -> float:
    """The Keycloak container alone, started as the docker backend starts it."""
    spec_settings = settings.replace(services=("keycloak",), name=f"bench-kcfloor-{uuid.uuid4().hex[:6]}",
                                     tenants=("acme",))  # fmt: skip
    from driveops_env.backends import StartContext
    from driveops_env.backends.docker import DockerBackend
    from driveops_env.ports import PortAllocator

    backend = DockerBackend(spec_settings)
    backend.prepare(log)
    import threading

    records: list[Any] = []
    ctx = StartContext(
        env_name=spec_settings.name, spec_hash="bench", env_dir=Path(tempfile.gettempdir()),
        settings=spec_settings,
        cancel=threading.Event(), register=records.append, ports=PortAllocator(),
    )  # fmt: skip
    try:
        seconds, _ = timed(lambda: backend.start_keycloak("keycloak", ctx, None, None))
    finally:
        backend.cleanup(spec_settings.name)
    return seconds


# --- the plain way --------------------------------------------------------------------------------


def plain_way(count: int) -> float:
    """What a user without this library would write: containers one after another with
    testcontainers' modules, seeds with psycopg, realms one by one with python-keycloak."""
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    import psycopg
    from testcontainers.keycloak import KeycloakContainer
    from testcontainers.mongodb import MongoDbContainer
    from testcontainers.postgres import PostgresContainer
    from testcontainers.redis import RedisContainer

    image = {s: os.environ.get(f"DRIVEOPS_ENV_IMAGE_{s.upper()}", d) for s, d in options.DEFAULT_IMAGES.items()}
    settings = settings_for("docker", tenants_list(count), "plain")
    containers: list[Any] = []
    started = time.monotonic()
    try:
        keycloak_container = KeycloakContainer(image["keycloak"])
        keycloak_container.start()
        containers.append(keycloak_container)
        admin = keycloak_container.get_client()
        for slug in tenants_list(count).split(","):
            tenant = Tenant(slug, str(uuid.uuid5(uuid.NAMESPACE_DNS, slug)), slug.title(), slug)
            pg = PostgresContainer(image["postgres"], driver=None)
            pg.start()
            containers.append(pg)
            with psycopg.connect(pg.get_connection_url()) as conn:
                for seed in seeding.render_sql_files(settings.seeds_dir, tenant):
                    for statement in seed.statements:
                        conn.execute(statement.text.encode())
            mg = MongoDbContainer(image["mongo"])
            mg.start()
            containers.append(mg)
            rd = RedisContainer(image["redis"])
            rd.start()
            containers.append(rd)
            realm = seeding.render_realm(settings.realms_dir, settings.seeds_dir, tenant, api_client_secret="plain")
            admin.create_realm(realm.representation)
        return time.monotonic() - started
    finally:
        for container in containers:
            container.stop()


# --- reset vs re-seed -------------------------------------------------------------------------------


def reset_times(env: Environment, rounds: int) -> list[float]:
    copy = TenantCopy(env.state, "acme", "main")
    copy.make()
    times = []
    for _ in range(rounds):
        with env.tenant("acme").connect_postgres(autocommit=True) as conn:  # a test writes something
            conn.execute("DELETE FROM interventions")
        seconds, _ = timed(lambda: copy.restore(("postgres", "mongo", "redis")))
        times.append(seconds)
    return times


def reseed_times(env: Environment, rounds: int) -> list[float]:
    """Re-seeding from scratch: a new database with the SQL seeds applied, MongoDB collections dropped
    and seeded again, Redis keys written again (what a test suite does without template copies)."""
    record = env.state.tenants["acme"]
    assert record.postgres and record.mongo and record.redis
    tenant = Tenant(record.slug, record.tenant_id, record.display_name, record.realm)
    seeds = seeding.render_tenant_seeds(Path(env.state.seeds_dir), Path(env.state.realms_dir), tenant,
                                        api_client_secret=None)  # fmt: skip
    server = env.state.services[record.postgres.service]
    admin = postgres.admin_conninfo(server)
    times = []
    for i in range(rounds):

        def reseed(target: str = f"reseed_{i}") -> None:
            import psycopg
            from psycopg import sql

            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(target)))
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(target)))
            seeding.apply_sql(postgres.admin_conninfo(server, target), seeds.sql, tenant="acme")
            assert record.mongo is not None
            mongo.drop_all(record.mongo)
            mongo.seed(record.mongo, seeds.mongo, tenant="acme")
            client = env.tenant("acme").connect_redis()
            seeding.apply_redis(client, seeds.redis, prefix=record.redis.key_prefix if record.redis else "acme:")
            client.close()

        seconds, _ = timed(reseed)
        times.append(seconds)
        postgres.drop_database(admin, f"reseed_{i}")
    return times


def rss_mb(pids: list[int]) -> float:
    """Resident memory of the process groups led by ``pids``."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) not in pids:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ProcessLookupError):
            continue
    return total / 1024


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --- the run ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backends", default="local,docker")
    parser.add_argument("--counts", default="1,2,5,10")
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run of the bench)")
    args = parser.parse_args()
    backends = [b for b in args.backends.split(",") if b]
    counts = [int(c) for c in args.counts.split(",")]
    rounds = 10 if args.quick else 40
    rows: list[tuple[str, str]] = []
    targets: list[Target] = []
    plot: dict[str, float] = {}
    base = settings_for("local", "acme", "bench")

    for backend in backends:
        floor = (
            keycloak_floor_local(base)
            if backend == "local"
            else keycloak_floor_docker(settings_for("docker", "acme", "x"))
        )
        rows.append((f"{backend}: Keycloak alone, to ready (the floor)", f"{floor:.2f} s"))
        plot[f"{backend} keycloak floor"] = floor
        ups: dict[int, float] = {}
        for count in counts:
            log(f"cold up of {count} tenant(s) on {backend}")
            seconds, env = cold_up(backend, count)
            ups[count] = seconds
            rows.append((f"{backend}: cold up, {count} tenant(s)", f"{seconds:.2f} s"))
            plot[f"{backend} up {count}"] = seconds
            if count == 2:
                attach = [timed(partial(Environment.up, settings=env.settings))[0] for _ in range(5)]
                rows.append((f"{backend}: re-attach (median of 5)", f"{statistics.median(attach) * 1000:.0f} ms"))
                targets.append(Target(f"{backend}: re-attach", statistics.median(attach), "<= 1 s",
                                      statistics.median(attach) <= 1.0))  # fmt: skip
                ratio = seconds / floor
                targets.append(Target(f"{backend}: cold up (2 tenants) / Keycloak alone", ratio, "<= 1.3",
                                      ratio <= 1.3, f"{seconds:.2f} s / {floor:.2f} s"))  # fmt: skip
                if backend == "local":
                    resets = reset_times(env, rounds)
                    reseeds = reseed_times(env, max(5, rounds // 4))
                    p50, p95 = percentile(resets, 0.5), percentile(resets, 0.95)
                    r50 = percentile(reseeds, 0.5)
                    rows.append(("local: per-test reset of a tenant (pg+mongo+redis) p50 / p95",
                                 f"{p50 * 1000:.0f} ms / {p95 * 1000:.0f} ms"))  # fmt: skip
                    rows.append(("local: re-seeding a tenant from scratch p50", f"{r50 * 1000:.0f} ms"))
                    targets.append(Target("per-test reset p50", p50 * 1000, "<= 150 ms", p50 <= 0.150))
                    targets.append(Target("re-seed / reset (p50)", r50 / p50, ">= 10", r50 / p50 >= 10,
                                          f"{r50 * 1000:.0f} ms / {p50 * 1000:.0f} ms"))  # fmt: skip
                    plot["reset p50"] = p50
                    plot["re-seed p50"] = r50
                    for slug in ("acme", "beta"):
                        pids = [r.pid for r in env.state.services.values() if r.tenant == slug and r.pid]
                        rows.append((f"local: resident memory of tenant {slug}'s servers", f"{rss_mb(pids):.0f} MB"))
                    kc = env.state.services["keycloak"]
                    rows.append(("local: resident memory of Keycloak (2 realms)", f"{rss_mb([kc.pid or 0]):.0f} MB"))
            env.down()
        if 1 in ups and 10 in ups:
            ratio = ups[10] / ups[1]
            targets.append(Target(f"{backend}: up of 10 tenants / up of 1", ratio, "<= 2", ratio <= 2,
                                  f"{ups[10]:.2f} s / {ups[1]:.2f} s"))  # fmt: skip
        if backend == "docker" and 2 in ups:
            log("the plain way, 2 tenants")
            plain = plain_way(2)
            rows.append(("docker: the plain way (testcontainers modules, one after another), 2 tenants",
                         f"{plain:.2f} s"))  # fmt: skip
            plot["docker plain way 2"] = plain
            targets.append(Target("plain way / cold up (docker, 2 tenants)", plain / ups[2], ">= 2",
                                  plain / ups[2] >= 2, f"{plain:.2f} s / {ups[2]:.2f} s"))  # fmt: skip
    write(rows, targets, plot)


def write(rows: list[tuple[str, str]], targets: list[Target], plot: dict[str, float]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps([asdict(t) for t in targets], indent=2))
    lines = [f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} cores.", "",
             "| measurement | value |", "|---|---|"]  # fmt: skip
    lines += [f"| {name} | {value} |" for name, value in rows]
    lines += ["", "| target | measured | wanted | met | detail |", "|---|---|---|---|---|"]
    lines += [
        f"| {t.name} | {t.measured:.2f} | {t.target} | {'yes' if t.met else 'NO'} | {t.detail} |" for t in targets
    ]
    (RESULTS / "latest.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(10, 0.35 * len(plot) + 1.5))
        names = list(plot)
        ax.barh(names, [plot[n] for n in names], color="#4a7ab5")
        ax.set_xlabel("seconds")
        ax.invert_yaxis()
        ax.set_title("driveops-env: start-up and reset, measured side by side")
        fig.tight_layout()
        fig.savefig(RESULTS / "latest.png", dpi=110)
    except ImportError:
        log("matplotlib is not installed: no plot (nox -s bench installs it)")


if __name__ == "__main__":
    main()
