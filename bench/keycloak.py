"""Keycloak start-up paths and realm creation, measured side by side in one run.

    python -m bench.keycloak [--repeat N]

Paths (each to HTTP 200 from /health/ready):
  start-dev cold          ``kc.sh start-dev`` on an empty data directory (schema + master realm)
  start-dev warm          ``kc.sh start-dev`` again on that data
  optimized cold          ``kc.sh start --optimized`` (pre-built) on an empty data directory
  optimized warm          ``start --optimized`` on existing data
  driveops-env            ``start --optimized`` on a copy of the cached base data, with the JVM's
                          class-data-sharing archive (what ``up`` does)
Then realms: 1, 2 and 10 tenant realms created in parallel and one by one on the last server.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from driveops_env import options, readiness, seeding
from driveops_env.ports import PortAllocator
from driveops_env.services import keycloak, keycloak_dist
from driveops_env.spec import Tenant


def _rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (kc.sh -> java)."""
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            status = (proc / "status").read_text()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[2]) in (pid,) or int(proc.name) == pid:
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


def start(install: keycloak_dist.KeycloakInstall, argv: list[str], env: dict[str, str]) -> tuple[float, int, int]:
    """Start Keycloak, return (seconds to ready, pid, http port)."""
    ports = PortAllocator()
    http, management = ports.allocate(), ports.allocate()
    argv = [a.replace("HTTP", str(http)).replace("MGMT", str(management)) for a in argv]
    started = time.monotonic()
    proc = subprocess.Popen(
        argv,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    readiness.wait_until(
        lambda: readiness.http_ok(f"http://127.0.0.1:{management}/health/ready"),
        timeout=300, service="keycloak", alive=lambda: proc.poll() is None,
    )  # fmt: skip
    return time.monotonic() - started, proc.pid, http


def stop(pid: int) -> None:
    os.killpg(pid, signal.SIGTERM)
    for _ in range(300):
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.killpg(pid, signal.SIGKILL)


def measure_paths(install: keycloak_dist.KeycloakInstall, repeat: int) -> dict[str, list[float]]:
    home = install.home
    common = [
        "--http-host=127.0.0.1",
        "--http-port=HTTP",
        "--http-management-port=MGMT",
        "--health-enabled=true",
    ]
    boot = {
        "KC_BOOTSTRAP_ADMIN_USERNAME": "admin",
        "KC_BOOTSTRAP_ADMIN_PASSWORD": "bench-only-pw",
        "JAVA": install.java,
    }
    results: dict[str, list[float]] = {}
    dev_home = Path(tempfile.mkdtemp(prefix="kc-startdev-", dir="/dev/shm"))
    try:
        # start-dev needs its own unpacked copy: it re-augments the build for the dev profile
        shutil.copytree(home, dev_home / "kc", symlinks=True)
        dev_kc = str(dev_home / "kc" / "bin" / "kc.sh")
        for _ in range(repeat):
            shutil.rmtree(dev_home / "kc" / "data", ignore_errors=True)
            seconds, pid, _ = start(install, [dev_kc, "start-dev", *common], boot)
            stop(pid)
            results.setdefault("start-dev cold", []).append(seconds)
            seconds, pid, _ = start(install, [dev_kc, "start-dev", *common], boot)
            stop(pid)
            results.setdefault("start-dev warm", []).append(seconds)
    finally:
        shutil.rmtree(dev_home, ignore_errors=True)
    for _ in range(repeat):
        data = Path(tempfile.mkdtemp(prefix="kc-opt-", dir="/dev/shm"))
        argv = install.server_argv(data, 0, 0)
        argv = [a.replace("--http-port=0", "--http-port=HTTP").replace("--http-management-port=0",
                "--http-management-port=MGMT") for a in argv]  # fmt: skip
        plain = {"JAVA": install.java}
        seconds, pid, _ = start(install, argv, boot)
        stop(pid)
        results.setdefault("optimized cold", []).append(seconds)
        seconds, pid, _ = start(install, argv, plain)
        stop(pid)
        results.setdefault("optimized warm", []).append(seconds)
        shutil.rmtree(data)
        data.mkdir()
        keycloak_dist.copy_base_data(install, data)
        argv = install.server_argv(data, 0, 0)
        argv = [a.replace("--http-port=0", "--http-port=HTTP").replace("--http-management-port=0",
                "--http-management-port=MGMT") for a in argv]  # fmt: skip
        seconds, pid, _ = start(install, argv, install.server_env(512))
        stop(pid)
        results.setdefault("driveops-env (base data + CDS)", []).append(seconds)
        shutil.rmtree(data)
    return results


def measure_realms(install: keycloak_dist.KeycloakInstall, settings: options.Settings) -> dict[str, float]:
    data = Path(tempfile.mkdtemp(prefix="kc-realms-", dir="/dev/shm"))
    keycloak_dist.copy_base_data(install, data)
    argv = install.server_argv(data, 0, 0)
    argv = [a.replace("--http-port=0", "--http-port=HTTP").replace("--http-management-port=0",
            "--http-management-port=MGMT") for a in argv]  # fmt: skip
    _, pid, http = start(install, argv, install.server_env(512))
    base = f"http://127.0.0.1:{http}"
    results: dict[str, float] = {}
    try:
        counter = iter(range(10_000))

        def create(_: int) -> None:
            n = next(counter)
            tenant = Tenant(f"r{n}", f"00000000-0000-0000-0000-{n:012d}", f"R{n}", f"r{n}")
            seed = seeding.render_realm(settings.realms_dir, settings.seeds_dir, tenant, api_client_secret="x")
            admin = keycloak.RealmAdmin(base, keycloak_dist.TEMPLATE_ADMIN, str(install.template_password))
            admin.create_realm(seed.representation)

        def parallel(count: int) -> None:
            with ThreadPoolExecutor(count) as pool:
                list(pool.map(create, range(count)))

        def one_by_one(count: int) -> None:
            for i in range(count):
                create(i)

        def timed(action: Callable[[int], None], count: int) -> float:
            started = time.monotonic()
            action(count)
            return time.monotonic() - started

        for count in (1, 2, 10):
            results[f"{count} realm(s), parallel"] = timed(parallel, count)
            results[f"{count} realm(s), one by one"] = timed(one_by_one, count)
        results["keycloak RSS MB (after 26 realms)"] = _rss_mb(pid)
    finally:
        stop(pid)
        shutil.rmtree(data, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    settings = options.resolve(cli={})
    install = keycloak_dist.ensure_install(
        settings.cache_dir, version=settings.keycloak_version, db="dev-file", java_home=settings.java_home,
        heap_mb=settings.keycloak_heap_mb, progress=print,
    )  # fmt: skip
    paths = measure_paths(install, args.repeat)
    print(f"| Keycloak {install.version} start-up path (to /health/ready) | median s | min s | max s |")
    print("|---|---|---|---|")
    for name, values in paths.items():
        print(f"| {name} | {statistics.median(values):.2f} | {min(values):.2f} | {max(values):.2f} |")
    realms = measure_realms(install, settings)
    print("\n| realms | value |\n|---|---|")
    for name, value in realms.items():
        print(f"| {name} | {value:.2f} |")


if __name__ == "__main__":
    main()
