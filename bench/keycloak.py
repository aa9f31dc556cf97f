"""Keycloak alone, from start to its first token (a master-realm admin login), by start path, side by
side in one run.

    python -m bench.keycloak [--repeat N] [--java25]

Paths:
  start-dev (warm)        ``kc.sh start-dev`` on data it made before (the plain way's floor)
  optimized + base + CDS  ``start --optimized`` on a copy of the cached base data, with the JVM's
                          class-data-sharing archive (what ``up`` did before)
  ... + C1 only           the same with ``-XX:TieredStopAtLevel=1`` (what ``up`` does now)
  --java25 adds Keycloak 26.7.3 on Java 25, with its CDS archive and with the JDK's AOT cache
  (JEP 483/514: ``-XX:AOTCacheOutput`` in a training run, then ``-XX:AOTCache``), each with and
  without C1 only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from driveops_env import options, readiness
from driveops_env.ports import PortAllocator
from driveops_env.services.keycloak import admin as keycloak
from driveops_env.services.keycloak import dist as keycloak_dist
from driveops_env.services.keycloak.dist import TEMPLATE_ADMIN, KeycloakInstall

JAVA25 = Path("/usr/lib/jvm/temurin-25-jdk-amd64")
C1 = "-XX:TieredStopAtLevel=1"
SERIAL = "-XX:-UseG1GC -XX:+UseSerialGC"  # one collector thread instead of G1's several


def _wait_token(http: int, password: str, alive: object) -> None:
    readiness.wait_until(
        lambda: keycloak.check_admin_login(f"http://127.0.0.1:{http}", TEMPLATE_ADMIN, password),
        timeout=180,
        service="keycloak",
        interval=0.01,
        max_interval=0.05,
    )


def first_token(install: KeycloakInstall, jvm: str = "", cds: bool = True, heap_mb: int = 512) -> float:
    """Seconds from start to the first admin token, on a fresh copy of the base data."""
    assert install.template_password is not None and install.base_data is not None
    data = Path(tempfile.mkdtemp(prefix="bench-kc-", dir="/dev/shm"))
    keycloak_dist.copy_h2(install.base_data, data)
    ports = PortAllocator()
    http = ports.allocate()
    management = ports.allocate() if install.versions.has_management_port else None
    used = install if cds else replace(install, cds_archive=None)
    started = time.monotonic()
    proc = subprocess.Popen(
        install.server_argv(data, http, management),
        env={**os.environ, **used.server_env(heap_mb, jvm)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        cwd=data,
    )
    try:
        _wait_token(http, install.template_password, proc)
        return time.monotonic() - started
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        shutil.rmtree(data, ignore_errors=True)


def start_dev_warm(install: KeycloakInstall) -> float:
    """``kc.sh start-dev`` on data it made at an earlier start: the plain developer's floor."""
    home = Path(tempfile.mkdtemp(prefix="bench-startdev-", dir="/dev/shm"))
    shutil.copytree(install.home, home / "kc", symlinks=True)
    env = {
        **os.environ,
        "JAVA": install.java,
        "KC_BOOTSTRAP_ADMIN_USERNAME": TEMPLATE_ADMIN,
        "KC_BOOTSTRAP_ADMIN_PASSWORD": "bench-only-pw",
    }
    try:
        seconds = 0.0
        for _ in range(2):  # the first start makes the data; the second is measured
            ports = PortAllocator()
            http, management = ports.allocate(), ports.allocate()
            argv = [
                str(home / "kc" / "bin" / "kc.sh"),
                "start-dev",
                "--http-host=127.0.0.1",
                f"--http-port={http}",
                f"--http-management-port={management}",
                "--cache=local",
            ]
            started = time.monotonic()
            proc = subprocess.Popen(
                argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
            )
            try:
                _wait_token(http, "bench-only-pw", proc)
                seconds = time.monotonic() - started
            finally:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=60)
        return seconds
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _aot_cache(install: KeycloakInstall) -> Path:
    """The JDK's AOT cache of Keycloak, trained once by a start, a login and a graceful stop."""
    cache = install.home.with_name(install.home.name + ".aot")
    if cache.exists():
        return cache
    assert install.template_password is not None and install.base_data is not None
    data = Path(tempfile.mkdtemp(prefix="bench-aot-", dir="/dev/shm"))
    keycloak_dist.copy_h2(install.base_data, data)
    ports = PortAllocator()
    http, management = ports.allocate(), ports.allocate()
    env = replace(install, cds_archive=None).server_env(512, f"-XX:AOTCacheOutput={cache}")
    proc = subprocess.Popen(
        install.server_argv(data, http, management),
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        cwd=data,
    )
    try:
        _wait_token(http, install.template_password, proc)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=120)
        shutil.rmtree(data, ignore_errors=True)
    return cache


def paths(repeat: int, java25: bool) -> dict[str, list[float]]:
    settings = options.resolve(environ={}, pyproject={})

    def install(version: str, java_home: Path | None) -> KeycloakInstall:
        return keycloak_dist.ensure_install(
            settings.cache_dir, version=version, db="dev-file", java_home=java_home, heap_mb=512, progress=print
        )

    default = install(str(settings.value("keycloak_version")), settings.value("java_home"))
    runs: dict[str, Callable[[], float]] = {
        "start-dev (warm)": lambda: start_dev_warm(default),
        "optimized + base + CDS": lambda: first_token(default),
        "optimized + base + CDS + C1 only (up now)": lambda: first_token(default, C1),
        "... + serial GC": lambda: first_token(default, f"{C1} {SERIAL}"),
    }
    if java25:
        newer = install("26.7.3", JAVA25)
        aot = _aot_cache(newer)
        runs |= {
            "26.7.3 on Java 25, CDS": lambda: first_token(newer),
            "26.7.3 on Java 25, CDS + C1 only": lambda: first_token(newer, C1),
            "26.7.3 on Java 25, AOT cache": lambda: first_token(newer, f"-XX:AOTCache={aot}", cds=False),
            "26.7.3 on Java 25, AOT cache + C1 only": lambda: first_token(newer, f"-XX:AOTCache={aot} {C1}", cds=False),
        }
    results: dict[str, list[float]] = {}
    for _ in range(repeat):  # interleaved: each round measures every path once
        for name, run in runs.items():
            results.setdefault(name, []).append(run())
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--java25", action="store_true", help="also Keycloak 26.7.3 on Java 25 (CDS, AOT cache)")
    args = parser.parse_args()
    results = paths(args.repeat, args.java25)
    print("| Keycloak start path (to the first token) | median s | min s | max s |")
    print("|---|---|---|---|")
    for name, values in results.items():
        print(f"| {name} | {statistics.median(values):.2f} | {min(values):.2f} | {max(values):.2f} |")


if __name__ == "__main__":
    main()
