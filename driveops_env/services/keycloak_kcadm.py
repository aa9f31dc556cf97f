"""Keycloak's master realm told to answer plain HTTP from any address, from inside its container, where
Keycloak sees a local request (as testcontainers' Keycloak module does): a container engine's clients
reach it from a bridge gateway's address, which Keycloak does not count as private unless it lies in a
private range.  The admin's password goes to kcadm on its standard input, never into an argv."""

from __future__ import annotations

import time
from collections.abc import Callable

from driveops_env.errors import StartupError

KCADM = "/opt/keycloak/bin/kcadm.sh"
CONFIG = ["--config", "/tmp/kcadm.config"]  # noqa: S108 - inside the container
Run = Callable[[list[str], bytes | None], tuple[int, str]]  # argv, stdin -> exit code, output


def plain_http(run: Run, user: str, password: str) -> None:
    login = [KCADM, "config", "credentials", "--server", "http://localhost:8080", "--realm", "master"]
    _until_done(run, [*login, "--user", user, *CONFIG], (password + "\n").encode(), attempts=60)
    _until_done(run, [KCADM, "update", "realms/master", "-s", "sslRequired=NONE", *CONFIG], None, attempts=5)


def _until_done(run: Run, argv: list[str], stdin: bytes | None, *, attempts: int) -> None:
    """Tried again for a while: before 25 the admin appears just after Keycloak reports ready."""
    output = ""
    for _ in range(attempts):
        code, output = run(argv, stdin)
        if code == 0:
            return
        time.sleep(1)
    raise StartupError(f"kcadm.sh {argv[1]} failed: {output[-500:]}", service="keycloak")
