"""The build and runtime tools driveops-env needs on the local backend, found where they usually live
(not only on PATH), with one message that says what to install when none will do.

- Go (builds a server from the Go module proxy once): 1.24+; a Go of 1.21-1.23 switches itself to
  the toolchain the module's ``go.mod`` names through the proxy (``GOTOOLCHAIN=auto``); older ones cannot.
- Java (runs a server): 17+, or what the service asks for.
- Maven (fetches a server's distribution from Maven Central once): any 3.x.
The service that needs a tool says what for, and what else to install.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from pathlib import Path

from driveops_env.errors import MissingDependencyError

GO_NEEDED = (1, 24)
GO_SWITCHES = (1, 21)  # from here on `go` downloads the toolchain a go.mod asks for


def _candidates(name: str, places: list[str]) -> list[Path]:
    found = [Path(p) for p in [shutil.which(name)] if p]
    for pattern in places:
        found += [Path(p) for p in sorted(glob.glob(os.path.expanduser(pattern)), reverse=True)]
    unique: list[Path] = []
    for path in found:
        if path.is_file() and os.access(path, os.X_OK) and path not in unique:
            unique.append(path)
    return unique


def _go_version(go: Path) -> tuple[int, int]:
    out = subprocess.run([str(go), "env", "GOVERSION"], capture_output=True, text=True, check=False, env=_go_env(go))
    match = re.search(r"go(\d+)\.(\d+)", out.stdout)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def _go_env(go: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{go.parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def find_go(needed_by: str, service: str, hint: str) -> tuple[Path, dict[str, str]]:
    """A Go that can build what ``service`` needs (``needed_by`` says what), and the environment to run it with."""
    goroot = os.environ.get("GOROOT")
    places = [
        *([f"{goroot}/bin/go"] if goroot else []),
        "/usr/local/go/bin/go",
        "~/go/bin/go",
        "~/sdk/go*/bin/go",
        "/usr/lib/go-1.*/bin/go",
    ]
    seen = []
    for go in _candidates("go", places):
        version = _go_version(go)
        seen.append(f"{go} (go{version[0]}.{version[1]})")
        if version >= GO_SWITCHES:
            env = _go_env(go)
            if version < GO_NEEDED:
                env["GOTOOLCHAIN"] = "auto"  # the go.mod's toolchain line, from the module proxy
            return go, env
    found = (
        f"found only: {', '.join(seen)}" if seen else "no Go was found on PATH, in $GOROOT, /usr/local/go, ~/go, ~/sdk"
    )
    raise MissingDependencyError(
        f"{needed_by} is built once with Go 1.24 or newer (1.21+ fetches it itself); {found}",
        service=service,
        hint="install Go 1.24+ (e.g. the go1.24 tarball in /usr/local/go; Debian 12's golang-go is 1.19), " + hint,
    )


def java_major(java: str) -> int:
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)', out.stderr + out.stdout)
    return int(match.group(1)) if match else 0


def find_java(java_home: Path | None, service: str, minimum: int = 17, hint: str = "") -> str:
    """The JDK/JRE that runs ``service``: ``--java-home``, ``$JAVA_HOME``, PATH, then /usr/lib/jvm."""
    places = [str(java_home / "bin" / "java")] if java_home else []
    if os.environ.get("JAVA_HOME") and not java_home:
        places.append(os.path.join(os.environ["JAVA_HOME"], "bin", "java"))
    places.append("/usr/lib/jvm/*/bin/java")
    seen = []
    candidates = [Path(p) for p in places[:1] if java_home] or _candidates("java", places)
    for java in candidates:
        major = java_major(str(java))
        seen.append(f"{java} (Java {major})")
        if major >= minimum:
            return str(java)
    raise MissingDependencyError(
        f"{service} needs Java {minimum} or newer; " + (f"found only: {', '.join(seen)}" if seen else "none was found"),
        service=service,
        hint=f"install one (Debian: openjdk-{minimum}-jre-headless{hint}) or set --java-home",
    )


def find_mvn() -> str | None:
    found = _candidates(
        "mvn",
        [
            "/usr/share/maven/bin/mvn",
            "~/.sdkman/candidates/maven/current/bin/mvn",
            "/opt/maven/bin/mvn",
            "/usr/local/maven/bin/mvn",
        ],
    )
    return str(found[0]) if found else None
