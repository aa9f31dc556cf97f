"""The benchmark: everything measured side by side in one run, on this machine, now.

    nox -s bench     (or: python -m bench.run [--quick] [--backends local,docker,kubernetes] [--no-remote])

Writes bench/results/latest.md (tables), latest.json (one entry per target: name, measured, target,
met) and latest.png (each measurement against its goal: ratios, start-ups in seconds, resets in
milliseconds and memory in MB on panels of their own).  Absolute times on a shared 2-core machine are
noise; the targets are ratios of numbers measured here, in this run, or budgets the issue sets.

Caches are warm (images built, Keycloak built and initialised, FerretDB built, realm snapshots made
by a first `up` of each tenant set); "cold up" = no environment running.
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
from pathlib import Path
from typing import Any

from bench import keycloak as kc_bench
from bench import large_seeds, timeline
from bench.measure import TEST_S, keycloak_floor, plain_way, reseed_times, reset_times, rss_mb
from bench.timeline import Timeline
from driveops_env import Environment, options
from driveops_env.services.keycloak import dist as keycloak_dist
from driveops_env.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results"
ALL = "keycloak,postgres,mongo,redis"


@dataclass
class Target:
    name: str
    measured: float
    target: str
    met: bool
    detail: str = ""
    unit: str = ""  # "x" (a ratio), "s", "ms", "MB": which panel of the plot


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def settings_for(backend: str, tenants: str, name: str, **more: str) -> Settings:
    images = {k: v for k, v in os.environ.items() if k.startswith("DRIVEOPS_ENV_IMAGE_")}
    cli = {"name": name, "tenants": tenants, "backend": backend, "services": ALL} | more
    return options.resolve(cli=cli, environ=images, pyproject={})


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.monotonic()
    result = action()
    return time.monotonic() - started, result


def tenants_list(count: int) -> str:
    return ",".join(["acme", "beta", *[f"t{i:02d}" for i in range(count)]][:count])


def cold_up(backend: str, count: int, timeline: Timeline | None = None, **more: str) -> tuple[float, Environment]:
    name = f"bench-{backend}-{count}-{uuid.uuid4().hex[:6]}"
    settings = settings_for(backend, tenants_list(count), name, **more)
    seconds, env = timed(lambda: Environment.up(settings=settings, progress=timeline))
    if timeline is not None:
        timeline.done()
    return seconds, env


def warm(backend: str, count: int) -> None:
    """A first `up` of the tenant set: its realm snapshot (and any image) exists afterwards."""
    _, env = cold_up(backend, count)
    env.down()


def ratio(name: str, top: float, bottom: float, wanted: str, ok: Callable[[float], bool]) -> Target:
    value = top / bottom
    return Target(name, value, wanted, ok(value), f"{top:.2f} / {bottom:.2f}", "x")


def startups(
    backend: str, counts: list[int], rows: list[tuple[str, str]], timelines: list[Timeline]
) -> tuple[dict[int, float], Environment | None]:
    ups: dict[int, float] = {}
    ten: Environment | None = None
    for count in counts:
        warm(backend, count)
        timeline = Timeline(f"{backend}: cold up, {count} tenant(s)")
        seconds, env = cold_up(backend, count, timeline)
        timelines.append(timeline)
        ups[count] = seconds
        rows.append((f"{backend}: cold up, {count} tenant(s)", f"{seconds:.2f} s"))
        if count == 10 and backend == "local":
            ten = env
        else:
            env.down()
    return ups, ten


def tenant_add_p50(backend: str, rounds: int) -> float:
    env = Environment.up(settings=settings_for(backend, "acme", f"bench-add-{uuid.uuid4().hex[:6]}"))
    times = []
    try:
        for i in range(rounds):
            slug = f"added{i:02d}"
            times.append(timed(lambda s=slug: env.add_tenants([s]))[0])  # type: ignore[misc]
    finally:
        env.down()
    return statistics.median(times)


def local_targets(floor: float, ups: dict[int, float], rows: list[tuple[str, str]]) -> list[Target]:
    settings = options.resolve(environ={}, pyproject={})
    install = keycloak_dist.ensure_install(
        settings.cache_dir,
        version=str(settings.value("keycloak_version")),
        db="dev-file",
        java_home=None,
        heap_mb=512,
        progress=log,
    )
    start_dev = kc_bench.start_dev_warm(install)
    rows.append(("local: Keycloak's own start-dev (warm), to the first token", f"{start_dev:.2f} s"))
    return [
        Target("local.keycloak_first_token_s", floor, "<= 4 s", floor <= 4, "", "s"),
        ratio("local.keycloak_first_token_over_start_dev", floor, start_dev, "<= 0.5", lambda v: v <= 0.5),
        ratio("local.cold_up_2_over_keycloak", ups[2], floor, "<= 1.1", lambda v: v <= 1.1),
        ratio("local.cold_up_2_over_start_dev", ups[2], start_dev, "<= 1.0", lambda v: v <= 1.0),
        ratio("local.up10_over_up1", ups[10], ups[1], "<= 1.5", lambda v: v <= 1.5),
    ]


def tenant_add_targets(backend: str, add: float, floor: float) -> list[Target]:
    """A tenant added live: its budget (2.5 s), and the same as a ratio to Keycloak's first token here."""
    return [
        Target(f"{backend}.tenant_add_p50_s", add, "<= 2.5 s", add <= 2.5, "", "s"),
        ratio(f"{backend}.tenant_add_over_keycloak", add, floor, "measured", lambda v: True),
    ]


def memory_targets(ten: Environment, rows: list[tuple[str, str]]) -> list[Target]:
    kc = ten.state.services["keycloak"]
    keycloak_mb = rss_mb([kc.process.pid if kc.process else 0])
    acme = [r.process.pid for r in ten.state.services.values() if r.tenant == "acme" and r.process]
    stores_mb = rss_mb(acme)
    rows.append(("local: resident memory of Keycloak, 10 realms", f"{keycloak_mb:.0f} MB"))
    rows.append(
        ("local: resident memory of one tenant's stores (acme: PostgreSQL, MongoDB, Redis)", f"{stores_mb:.0f} MB")
    )
    return [
        Target("local.keycloak_rss_10_realms_mb", keycloak_mb, "<= 600 MB", keycloak_mb <= 600, "", "MB"),
        Target("local.tenant_stores_rss_mb", stores_mb, "<= 80 MB", stores_mb <= 80, "", "MB"),
    ]


def large_targets(rounds: int, rows: list[tuple[str, str]]) -> list[Target]:
    seeds = large_seeds.write(Path(tempfile.mkdtemp(prefix="bench-large-")) / "seeds")
    settings = settings_for(
        "local", "acme", f"bench-large-{uuid.uuid4().hex[:6]}", seeds_dir=str(seeds), services="postgres,mongo,redis"
    )
    env = Environment.up(settings=settings)
    try:
        pooled, pooled_cpu = reset_times(env, rounds, ("postgres",))
        inline, inline_cpu = reset_times(env, rounds, ("postgres",), pool=0)
        everything, _ = reset_times(env, max(5, rounds // 4), ALL_STORES, written=("postgres",))
        each, _ = reset_times(env, max(5, rounds // 4), ALL_STORES)
        reseeds = reseed_times(env, max(3, rounds // 8))
    finally:
        env.down()
    p50, p95 = statistics.median(pooled) * 1000, _percentile(pooled, 0.95) * 1000
    i50, i95 = statistics.median(inline) * 1000, _percentile(inline, 0.95) * 1000
    all50, r50 = statistics.median(everything), statistics.median(reseeds)
    rows.append(("large: per-test restore of PostgreSQL from the pool p50 / p95", f"{p50:.1f} / {p95:.1f} ms"))
    rows.append(
        ("large: per-test restore of PostgreSQL, clone on the test's path p50 / p95", f"{i50:.0f} / {i95:.0f} ms")
    )
    rows.append(
        (
            "large: PostgreSQL server CPU per 100 tests, pool / clone on the path",
            f"{pooled_cpu * 100:.1f} / {inline_cpu * 100:.1f} s",
        )
    )
    rows.append(("large: restore of the three stores, a test wrote in PostgreSQL, p50", f"{all50 * 1000:.0f} ms"))
    rows.append(
        ("large: restore of the three stores, a test wrote in each, p50", f"{statistics.median(each) * 1000:.0f} ms")
    )
    rows.append(("large: re-seeding PostgreSQL + MongoDB + Redis from scratch p50", f"{r50 * 1000:.0f} ms"))
    what = f"PostgreSQL, from the pool (tests of {TEST_S * 1000:.0f} ms)"
    return [
        Target("large.restore_p50_ms", p50, "<= 10 ms", p50 <= 10, what, "ms"),
        Target("large.restore_p95_ms", p95, "<= 20 ms", p95 <= 20, what, "ms"),
        ratio("large.clone_over_pool_p50", i50, p50, ">= 3", lambda v: v >= 3),
        ratio("large.reseed_over_reset", r50, all50, ">= 10", lambda v: v >= 10),
    ]


ALL_STORES = ("postgres", "mongo", "redis")


def all_stores_targets(rounds: int, rows: list[tuple[str, str]]) -> list[Target]:
    """The three stores restored after a test wrote in each, the project's own seeds: from the pools
    against on the test's path, in one environment."""
    settings = settings_for("local", "acme", f"bench-all-{uuid.uuid4().hex[:6]}", services=",".join(ALL_STORES))
    env = Environment.up(settings=settings)
    try:
        pooled, _ = reset_times(env, rounds, ALL_STORES)
        inline, _ = reset_times(env, rounds, ALL_STORES, pool=0)
    finally:
        env.down()
    p50, p95 = statistics.median(pooled) * 1000, _percentile(pooled, 0.95) * 1000
    i50 = statistics.median(inline) * 1000
    rows.append(
        ("seed: per-test restore of PostgreSQL + MongoDB + Redis, pools, p50 / p95", f"{p50:.1f} / {p95:.1f} ms")
    )
    rows.append(("seed: per-test restore of PostgreSQL + MongoDB + Redis, on the test's path p50", f"{i50:.0f} ms"))
    what = f"each store written by the test (tests of {TEST_S * 1000:.0f} ms)"
    return [
        Target("seed.restore_all_p50_ms", p50, "<= 10 ms", p50 <= 10, what, "ms"),
        Target("seed.restore_all_p95_ms", p95, "<= 20 ms", p95 <= 20, what, "ms"),
        ratio("seed.restore_all_inline_over_pool_p50", i50, p50, ">= 3", lambda v: v >= 3),
    ]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_local(counts: list[int], rounds: int, rows: list[tuple[str, str]], timelines: list[Timeline]) -> list[Target]:
    floor = statistics.median(keycloak_floor(settings_for("local", "acme", "x")) for _ in range(3))
    rows.append(("local: Keycloak alone (as up starts it), to the first token", f"{floor:.2f} s"))
    ups, ten = startups("local", counts, rows, timelines)
    targets = local_targets(floor, ups, rows)
    if ten is not None:
        targets += memory_targets(ten, rows)
        ten.down()
    add = tenant_add_p50("local", 5)
    rows.append(("local: tenant add (one tenant, live) p50", f"{add:.2f} s"))
    targets += tenant_add_targets("local", add, floor)
    return targets + all_stores_targets(rounds, rows) + large_targets(rounds, rows)


def run_migrations(rounds: int, rows: list[tuple[str, str]]) -> list[Target]:
    from bench import migrations

    found = migrations.measure(sys.modules[__name__], rows, rounds)
    plain = found["plain"]
    return [
        ratio("migrate.cold_over_plain", found["cold"], plain, "<= 1.3", lambda v: v <= 1.3),
        ratio("migrate.cached_over_plain", found["cached"], plain, "<= 1.05", lambda v: v <= 1.05),
        Target("migrate.restore_p50_ms", found["restore_ms"], "<= 10 ms", found["restore_ms"] <= 10, "", "ms"),
        ratio("migrate.pending_over_single", found["pending"], found["single"], "<= 3", lambda v: v <= 3),
    ]


def run_snapshots(rounds: int, rows: list[tuple[str, str]]) -> list[Target]:
    from bench import snapshots

    times = snapshots.snapshot_times(sys.modules[__name__], rows, rounds)
    rehearsed = snapshots.rehearsal_times(sys.modules[__name__], rows)
    return [
        ratio("snapshot.save_over_pg_dump", times["save"], times["pg_dump"], "<= 3", lambda v: v <= 3),
        ratio("snapshot.load_over_pg_restore", times["load"], times["pg_restore"], "<= 3", lambda v: v <= 3),
        ratio(
            "rehearse.parallel_over_serial", rehearsed["parallel"], rehearsed["serial"], "<= 0.7", lambda v: v <= 0.7
        ),
    ]


def run_docker(counts: list[int], rows: list[tuple[str, str]], timelines: list[Timeline], remote: bool) -> list[Target]:
    warm("docker", 1)
    floor = keycloak_floor(settings_for("docker", "acme", "x"))
    rows.append(("docker: Keycloak container alone (as up starts it), to the first token", f"{floor:.2f} s"))
    ups, _ = startups("docker", counts, rows, timelines)
    plain = plain_way(2, settings_for("docker", tenants_list(2), "plain"))
    rows.append(("docker: the plain way (testcontainers modules, one after another), 2 tenants", f"{plain:.2f} s"))
    add = tenant_add_p50("docker", 5)
    rows.append(("docker: tenant add (one tenant, live) p50", f"{add:.2f} s"))
    targets = [
        ratio("docker.cold_up_2_over_keycloak", ups[2], floor, "<= 1.15", lambda v: v <= 1.15),
        ratio("docker.up10_over_up1", ups[10], ups[1], "<= 1.6", lambda v: v <= 1.6),
        ratio("docker.plain_over_ours", plain, ups[2], ">= 4", lambda v: v >= 4),
        *tenant_add_targets("docker", add, floor),
    ]
    if remote:
        targets.append(remote_over_local(ups[2], rows))
    return targets


def remote_over_local(local_up2: float, rows: list[tuple[str, str]]) -> Target:
    """A cold up of 2 tenants on a second engine reached over TCP, against the local engine's."""
    from tests.remote.engine import remote_engine

    images = [v for k, v in os.environ.items() if k.startswith("DRIVEOPS_ENV_IMAGE_")]
    with remote_engine(images) as engine:
        os.environ["DOCKER_HOST"] = engine.tcp
        try:
            warm("docker", 2)
            seconds, env = cold_up("docker", 2)
            env.down()
        finally:
            del os.environ["DOCKER_HOST"]
    rows.append(("docker: cold up, 2 tenants, on a remote engine (TCP, another network namespace)", f"{seconds:.2f} s"))
    return ratio("remote.cold_up_2_over_local_engine", seconds, local_up2, "measured", lambda v: True)


def run_kubernetes(rows: list[tuple[str, str]], timelines: list[Timeline]) -> list[Target]:
    """On the local single-node cluster (tests/kube), started here: its own start, the Keycloak Pod
    alone to the first login, and a cold up of 2 tenants (the same images as the docker backend's)."""
    from tests.kube.build import default_cache_dir, ensure_built
    from tests.kube.cluster import load_images, running_cluster

    ensure_built(default_cache_dir())
    started = time.monotonic()
    with running_cluster() as cluster:
        cluster_start = time.monotonic() - started
        rows.append(("kubernetes: the local cluster's start (processes to a Ready node)", f"{cluster_start:.2f} s"))
        load_images(cluster, [v for k, v in os.environ.items() if k.startswith("DRIVEOPS_ENV_IMAGE_")])
        os.environ["KUBECONFIG"] = cluster.kubeconfig
        try:
            floor = keycloak_floor(settings_for("kubernetes", "acme", "x"))
            rows.append(("kubernetes: Keycloak Pod alone (as up starts it), to the first login", f"{floor:.2f} s"))
            steps = Timeline("kubernetes: cold up, 2 tenant(s)")
            seconds, env = cold_up("kubernetes", 2, steps)
            timelines.append(steps)
            env.down()
        finally:
            del os.environ["KUBECONFIG"]
    rows.append(("kubernetes: cold up, 2 tenants", f"{seconds:.2f} s"))
    return [
        ratio("kubernetes.cold_up_2_over_keycloak", seconds, floor, "<= 1.5", lambda v: v <= 1.5),
        Target("kubernetes.cluster_start_s", cluster_start, "measured", True, "", "s"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backends", default="local,migrate,snapshot,docker,kubernetes", help="the parts to run")
    parser.add_argument("--counts", default="1,2,10")
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run of the bench)")
    parser.add_argument("--no-remote", action="store_true", help="skip the remote engine (needs root)")
    args = parser.parse_args()
    counts = sorted({*(int(c) for c in args.counts.split(",")), 1, 2, 10})
    rows: list[tuple[str, str]] = []
    targets: list[Target] = []
    timelines: list[Timeline] = []
    from bench.report import write

    parts: dict[str, Callable[[], list[Target]]] = {
        "local": lambda: run_local(counts, 10 if args.quick else 40, rows, timelines),
        "docker": lambda: run_docker(counts, rows, timelines, remote=not args.no_remote),
        "kubernetes": lambda: run_kubernetes(rows, timelines),
        "migrate": lambda: run_migrations(10 if args.quick else 40, rows),
        "snapshot": lambda: run_snapshots(1 if args.quick else 3, rows),
    }
    failed: list[str] = []
    for name, part in parts.items():
        if name not in args.backends.split(","):
            continue
        try:
            targets += part()
        except Exception as exc:  # what the other parts measured is kept: written below, then exit 1
            log(f"the {name} part failed: {exc!r}")
            failed.append(name)
        write(RESULTS, rows, [asdict(t) for t in targets])
        timeline.write(RESULTS, timelines)
    print(json.dumps([asdict(t) for t in targets], indent=2))
    if failed:
        sys.exit(f"bench: the {', '.join(failed)} part(s) failed (what the others measured is written)")


if __name__ == "__main__":
    main()
