"""Keycloak's master realm told to answer plain HTTP from any address, from inside its container, where
Keycloak sees a local request (as testcontainers' Keycloak module does): a container engine's clients
reach it from a bridge gateway's address, which Keycloak does not count as private unless it lies in a
private range.  The admin's password goes to kcadm on its standard input, never into an argv."""

from __future__ import annotations

from collections.abc import Callable

from driveops_env import readiness
from driveops_env.errors import ReadinessTimeoutError, StartupError

KCADM = "/opt/keycloak/bin/kcadm.sh"
CONFIG = ["--config", "/tmp/kcadm.config"]  # noqa: S108 - inside the container
Run = Callable[[list[str], bytes | None], tuple[int, str]]  # argv, stdin -> exit code, output


def plain_http(run: Run, user: str, password: str) -> None:
    login = [KCADM, "config", "credentials", "--server", "http://localhost:8080", "--realm", "master"]
    _until_done(run, [*login, "--user", user, *CONFIG], (password + "\n").encode(), timeout=240)
    _until_done(run, [KCADM, "update", "realms/master", "-s", "sslRequired=NONE", *CONFIG], None, timeout=30)


def _until_done(run: Run, argv: list[str], stdin: bytes | None, *, timeout: float) -> None:
    """Tried again for a while (each run is a JVM's start, 2-3 s on 2 cores): before 25 the admin appears
    just after Keycloak reports ready."""

    def done() -> None:
        code, output = run(argv, stdin)
        if code != 0:
            raise RuntimeError(f"exited {code}: {output[-500:]}")

    try:
        readiness.wait_until(done, timeout=timeout, service="keycloak", interval=1, max_interval=1)
    except ReadinessTimeoutError as exc:
        raise StartupError(
            f"kcadm.sh {argv[1]} failed for {timeout:.0f} s: {exc.message}", service="keycloak"
        ) from None
