"""Local server processes: spawn detached, identify safely, stop with their whole process group.

A process is identified by its pid *and* its start time (field 22 of ``/proc/<pid>/stat``), so a pid
reused by an unrelated process after a crash is never mistaken for ours and never killed.
"""

from __future__ import annotations

import contextlib
import math
import os
import pwd
import re
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from driveops_env import readiness
from driveops_env.errors import ReadinessTimeoutError

# Our own children, so that stopping one also reaps it (whoever stops it: the backend object that
# started a server is often not the one that stops it).
_children: dict[int, subprocess.Popen[bytes]] = {}
_children_lock = threading.Lock()


@dataclass(frozen=True)
class ProcessRef:
    pid: int
    start_time: int


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'
    return raw[raw.rindex(")") + 2 :].split()


def runs(ref: ProcessRef, *, cwd: str, program: str) -> bool:
    """Whether ``ref`` is alive, runs in ``cwd`` (or below it) and was started as ``program``: what
    a state file says is checked before a process is signalled."""
    if not is_alive(ref):
        return False
    try:
        where = os.readlink(f"/proc/{ref.pid}/cwd")
        cmdline = Path(f"/proc/{ref.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    base = os.path.realpath(cwd)
    return (where == base or where.startswith(base + os.sep)) and program in cmdline


def start_time_of(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def is_alive(ref: ProcessRef) -> bool:
    """True while the process runs (a zombie or a reused pid counts as gone)."""
    fields = _stat_fields(ref.pid)
    if fields is None:
        return False
    state, start = fields[0], int(fields[19])
    return start == ref.start_time and state not in ("Z", "X")


def spawn(
    argv: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
) -> ProcessRef:
    """Start ``argv`` in its own session (Ctrl-C in the terminal does not reach it), output to a log."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    full_env.update(env or {})
    kwargs: dict[str, object] = {}
    if user is not None:
        record = pwd.getpwnam(user)
        kwargs = {"user": record.pw_uid, "group": record.pw_gid, "extra_groups": []}
        full_env["HOME"] = record.pw_dir
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
            **kwargs,  # type: ignore[call-overload]
        )
    with _children_lock:
        _children[proc.pid] = proc
    start = start_time_of(proc.pid)
    return ProcessRef(proc.pid, start if start is not None else -1)


def weigh(pid: int, weight: int) -> None:
    """``pid``'s scheduler group (the autogroup of the session it leads) weighs about ``weight`` times
    another's while the CPU is contended: its nice value -6 for 4, -16 for 32 (each step is 1.25 times).  Only root
    may raise a weight; without the right, or without autogroups, nothing changes."""
    if weight == 1:
        return
    nice = max(-20, min(19, -round(math.log(weight, 1.25))))
    with contextlib.suppress(OSError), open(f"/proc/{pid}/autogroup", "w") as group:
        group.write(str(nice))


def _reap(pid: int) -> None:
    with _children_lock:
        child = _children.get(pid)
    if child is not None:
        if child.poll() is not None:
            with _children_lock:
                _children.pop(pid, None)
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def terminate(ref: ProcessRef, *, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
    """Stop the process and its process group: ``sig``, then SIGKILL after ``timeout`` seconds."""
    try:
        if not is_alive(ref):
            return
        _signal_group(ref, sig)
        if not _wait_gone(ref, timeout) and is_alive(ref):
            _signal_group(ref, signal.SIGKILL)
            _wait_gone(ref, 5.0)
        _kill_leftovers(ref)
    finally:
        _reap(ref.pid)


def _wait_gone(ref: ProcessRef, timeout: float) -> bool:
    def gone() -> None:
        _reap(ref.pid)
        if is_alive(ref):
            raise ProcessLookupError(f"process {ref.pid} still runs")

    try:
        readiness.wait_until(gone, timeout=timeout, service="process", interval=0.005, max_interval=0.2)
    except ReadinessTimeoutError:
        return False
    return True


def _signal_group(ref: ProcessRef, sig: int) -> None:
    try:
        # our processes lead their own session and group (start_new_session=True)
        if os.getpgid(ref.pid) == ref.pid:
            os.killpg(ref.pid, sig)
        else:
            os.kill(ref.pid, sig)
    except ProcessLookupError:
        pass


def _kill_leftovers(ref: ProcessRef) -> None:
    """Children still in the group after the leader exited (e.g. a JVM under a shell script).  A pid
    taken by another process means the old group is empty (Linux reuses no pid still naming a group):
    the group of that name is someone else's then, and is left alone."""
    fields = _stat_fields(ref.pid)
    if fields is not None and int(fields[19]) != ref.start_time:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(ref.pid, signal.SIGKILL)


def running_in(directory: Path, commands: tuple[str, ...]) -> list[ProcessRef]:
    """Live server processes (by command name, ``commands``) whose working directory is ``directory``
    or below it: every local server runs in its data directory, so this finds the servers of an
    environment whose state file is lost, and never a user's shell that happens to be there."""
    found = []
    prefix = str(directory.resolve())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            command = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if not command.startswith(commands):
            continue
        if cwd == prefix or cwd.startswith(prefix + "/"):
            start = start_time_of(int(entry.name))
            ref = ProcessRef(int(entry.name), start if start is not None else -1)
            if is_alive(ref):
                found.append(ref)
    return found


def tail(path: Path | str | None, lines: int = 20, window: int = 64 * 1024) -> str:
    if path is None:
        return ""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - window))
            data = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


# JVM chatter that hides the real error: class-data-sharing archive notes and VM warnings about them
_NOISE = re.compile(r"^\[[^]]*\]\[(warning|info)\s*\]\[cds|^OpenJDK 64-Bit Server VM warning: .*(CDS|shar)", re.I)
_ERROR = re.compile(r"\b(ERROR|FATAL|SEVERE)\b|Exception\b|\berror:|refused|not usable|failed", re.I)


def excerpt(text: str, lines: int = 20) -> str:
    """The lines of a log that matter for a failure, in their order: noise dropped, the last error
    lines (up to half the budget) and the last lines."""
    kept = [line for line in text.splitlines() if line.strip() and not _NOISE.search(line)]
    errors = [i for i, line in enumerate(kept) if _ERROR.search(line)][-(lines // 2) :]
    last = range(max(0, len(kept) - (lines - len(errors))), len(kept))
    return "\n".join(kept[i] for i in sorted(set(errors) | set(last)))


def log_excerpt(path: Path | str | None, lines: int = 20) -> str:
    return excerpt(tail(path, 20000, window=2 * 1024 * 1024), lines)
