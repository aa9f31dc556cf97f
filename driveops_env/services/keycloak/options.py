"""Keycloak's options (declared once: flags, variables, pyproject keys, pytest options)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from driveops_env.option_types import Range, declare, parse_optional_path, parse_port
from driveops_env.services.keycloak.versions import DEFAULT_VERSION, KeycloakVersion

IMAGE = f"quay.io/keycloak/keycloak:{DEFAULT_VERSION}"
KeycloakDb = Literal["dev-file", "postgres"]
C1 = "-XX:TieredStopAtLevel=1"


@dataclass(frozen=True)
class KeycloakOptions:
    keycloak_version: str = declare(
        "Keycloak server version (the org.keycloak:keycloak-quarkus-dist zip from Maven Central); 23.0.x to 26.x.",
        lambda: DEFAULT_VERSION,
        DEFAULT_VERSION,
        metavar="VERSION",
    )
    keycloak_db: KeycloakDb = declare(
        "Where Keycloak keeps its data: an H2 file of its own (dev-file, fast), or a PostgreSQL server "
        "of the environment (postgres).",
        lambda: "dev-file",
        "dev-file",
    )
    keycloak_port: int = declare(
        "Keycloak's HTTP port on the publish address; 0 picks a free one (another if it is taken meanwhile).",
        lambda: 0,
        "0",
        parse_port,
        metavar="PORT",
    )
    keycloak_heap_mb: int = declare(
        "Maximum Java heap of Keycloak, in MB.",
        lambda: 512,
        "512",
        Range(64, 65536, "64 GiB: more than a development machine gives one server"),
        metavar="MB",
    )
    keycloak_jvm_options: str = declare(
        "Extra JVM options of Keycloak (JAVA_OPTS_APPEND). The default, the C1 compiler only, brings Keycloak to "
        "its first token about a second sooner on 2 cores (bench/keycloak.py); '' gives the JVM's own defaults.",
        lambda: C1,
        C1,
        metavar="OPTIONS",
    )
    keycloak_providers_dir: Path | None = declare(
        "Directory of Keycloak extensions (*.jar) and themes (themes/<name>/...) built into the server; "
        "the build is cached by their content.",
        lambda: None,
        "none",
        parse_optional_path,
        metavar="DIR",
    )
    keycloak_realms_at_once: int = declare(
        "Realms set up at once (Keycloak creates them one after another anyway).",
        lambda: 3,
        "3",
        Range(1, 32, "Keycloak creates realms one after another: more at once only wait"),
        metavar="N",
    )
    java_home: Path | None = declare(
        "JDK that runs Keycloak (Java 17 or newer).",
        lambda: None,
        "$JAVA_HOME, else java on PATH",
        parse_optional_path,
        metavar="DIR",
    )
    image_keycloak: str = declare("Image of keycloak for the docker backend.", lambda: IMAGE, IMAGE, metavar="IMAGE")

    @property
    def version(self) -> KeycloakVersion:
        return KeycloakVersion(self.keycloak_version)
