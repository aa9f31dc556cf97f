"""What differs between the Keycloak versions driveops-env runs, in one place.

| since | what changed                                                                          |
|-------|---------------------------------------------------------------------------------------|
| 25.0  | health and metrics moved to a management interface on its own port (default 9000);   |
|       | hostname options v2 (``--hostname`` may be a full URL; ``--hostname-url`` is gone)    |
| 26.0  | bootstrap admin from ``KC_BOOTSTRAP_ADMIN_USERNAME``/``_PASSWORD``                    |
|       | (before: ``KEYCLOAK_ADMIN``/``KEYCLOAK_ADMIN_PASSWORD``, deprecated in 26)             |
| 23.0  | the oldest supported here (the production guide's version); Java 17                   |

Build-time options (``--db``, ``--health-enabled``, ``--cache``, ``--features``) are given to
``kc.sh build`` only: ``start --optimized`` refuses them before 24 and does not need them after.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from driveops_env.errors import UsageError

DEFAULT_VERSION = "26.5.6"
OLDEST = (23, 0)
PRODUCTION_VERSION = "23.0.7"  # the guide's production compose file runs the 23.0 image


def parse(version: str) -> tuple[int, int, int]:
    match = re.fullmatch(r"(\d+)\.(\d+)(?:\.(\d+))?", version)
    if not match:
        raise UsageError(f"Keycloak version {version!r} is not a version number", hint="use e.g. 26.5.6 or 23.0.7")
    major, minor, patch = (int(part) if part else 0 for part in match.groups())
    if (major, minor) < OLDEST:
        raise UsageError(
            f"Keycloak {version} is older than {OLDEST[0]}.{OLDEST[1]}, the oldest driveops-env runs",
            hint=f"use {PRODUCTION_VERSION} (the production version) or newer",
        )
    return major, minor, patch


@dataclass(frozen=True)
class KeycloakVersion:
    """The facts about one version that change how it is started and reached."""

    version: str

    @property
    def number(self) -> tuple[int, int, int]:
        return parse(self.version)

    @property
    def has_management_port(self) -> bool:
        """25+: ``/health/*`` on the management port; before, on the main HTTP port."""
        return self.number >= (25, 0, 0)

    @property
    def hostname_v2(self) -> bool:
        """25+: ``--hostname`` takes a full URL; before, ``--hostname-url``."""
        return self.number >= (25, 0, 0)

    def bootstrap_admin_env(self, username: str, password: str) -> dict[str, str]:
        """The variables that create the master realm's first admin on an empty database."""
        if self.number >= (26, 0, 0):
            return {"KC_BOOTSTRAP_ADMIN_USERNAME": username, "KC_BOOTSTRAP_ADMIN_PASSWORD": password}
        return {"KEYCLOAK_ADMIN": username, "KEYCLOAK_ADMIN_PASSWORD": password}

    def listen_args(self, host: str, http_port: int, management_port: int | None) -> list[str]:
        """Where it listens; one node, no clustering (JGroups would listen on every interface): in 25+
        ``--cache`` is read at start as well (before, the build's ``--cache=local`` holds, and
        ``start --optimized`` refuses the option)."""
        args = [f"--http-host={host}", f"--http-port={http_port}"]
        if self.number >= (25, 0, 0):
            args.append("--cache=local")
        if self.has_management_port and management_port is not None:
            args += [f"--http-management-host={host}", f"--http-management-port={management_port}"]
        return args

    def hostname_args(self, public_url: str | None) -> list[str]:
        """Without a URL the issuer follows the request's host; with one, every token carries it."""
        if public_url is None:
            return ["--hostname-strict=false"]
        if self.hostname_v2:
            return [f"--hostname={public_url}", "--hostname-backchannel-dynamic=true"]
        return [
            f"--hostname-url={public_url}",
            "--hostname-strict=false",
            "--hostname-strict-backchannel=false",
        ]

    def health_url(self, host: str, http_port: int, management_port: int | None) -> str:
        port = management_port if self.has_management_port and management_port else http_port
        return f"http://{host}:{port}/health/ready"

    def h2_args(self, data_dir: str) -> list[str]:
        """Where an environment's dev-file (H2) database lives: its own data directory.  Before 25 the
        H2 URL is built from ``kc.home.dir`` first, so the whole URL is given."""
        if self.number >= (25, 0, 0):
            return [f"-Dkc.db-url-path={data_dir}"]
        return [f"--db-url=jdbc:h2:file:{data_dir}/data/h2/keycloakdb;NON_KEYWORDS=VALUE;AUTO_SERVER=TRUE"]

    @property
    def container_ports(self) -> dict[str, int]:
        """The ports the official image listens on inside a container."""
        return {"http": 8080, **({"management": 9000} if self.has_management_port else {})}
