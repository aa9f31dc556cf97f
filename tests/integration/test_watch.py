"""`status --watch` as a person sees it: in a terminal (tmux: the rows refreshed in place, a killed
server's row turning FAIL, Ctrl-C ending it), and as plain blocks when the output is a pipe."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from tests.helpers import Sandbox, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.backend_independent]


@pytest.fixture
def running(sandbox: Sandbox) -> Iterator[Sandbox]:
    up = sandbox.cli("up", "--tenants", "acme")
    assert up.returncode == 0, up.stderr
    try:
        yield sandbox
    finally:
        sandbox.cli("down")


def _tmux(socket: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["tmux", "-L", socket, *args], capture_output=True, text=True, timeout=30, check=False)


def _screen(socket: str) -> str:
    return _tmux(socket, "capture-pane", "-p", "-t", "watch").stdout


def _showing(socket: str, text: str) -> str:
    """The screen, once it shows ``text`` ("" until then)."""
    screen = _screen(socket)
    return screen if text in screen else ""


def _kill_postgres(box: Sandbox) -> None:
    state = json.loads((box.state_dir / f"{box.name}.json").read_text())
    pid = state["services"]["postgres.acme"]["process"]["pid"]
    os.kill(pid, signal.SIGKILL)


def test_a_terminal_sees_the_rows_refresh_and_a_killed_server_fail(running: Sandbox) -> None:
    socket = f"watch-{uuid.uuid4().hex[:8]}"
    variables = [f"{k}={v}" for k, v in running.env().items() if k.startswith(("DRIVEOPS_", "PATH", "HOME"))]
    command = ["env", "TERM=xterm-256color", *variables, sys.executable, "-m", "driveops_env.cli"]
    command += ["status", "--watch", "--interval", "0.5"]
    # its exit status, written by bash once it ends (tmux 3.3 loses a dead pane's status now and then); a
    # program killed by the Ctrl-C's signal takes bash with it, and nothing is written
    ended = running.state_dir / "watch-exit"
    script = f"{shlex.join(command)}; echo $? > {shlex.quote(str(ended))}"
    started = _tmux(
        socket, "new-session", "-d", "-s", "watch", "-x", "160", "-y", "40", shlex.join(["bash", "-c", script])
    )
    assert started.returncode == 0, started.stderr
    try:
        assert _tmux(socket, "set-option", "-t", "watch", "remain-on-exit", "on").returncode == 0
        first = wait_for(lambda: _showing(socket, "all healthy"), timeout=60)
        assert "postgres.acme" in first or "postgres" in first
        stamp = next(line for line in first.splitlines() if "all healthy" in line)
        wait_for(lambda: stamp not in _screen(socket), timeout=30, what="a refresh")  # time stamp moves
        assert _screen(socket).count("environment ") == 1  # in place: one view, not one per refresh
        _kill_postgres(running)
        failing = wait_for(lambda: _showing(socket, "FAIL"), timeout=30)
        assert "1 failing" in failing
        _tmux(socket, "send-keys", "-t", "watch", "C-c")
        status = wait_for(lambda: ended.exists() and ended.read_text().strip(), timeout=30, what="Ctrl-C to end it")
        assert status == "0"  # ended by itself, exit status 0 (not killed by the signal)
    finally:
        _tmux(socket, "kill-server")


def test_a_pipe_gets_plain_blocks_until_ctrl_c(running: Sandbox) -> None:
    proc = running.popen("status", "--watch", "--interval", "0.5")
    assert proc.stdout is not None
    seen: list[str] = []
    while sum(1 for line in seen if line.startswith("environment ")) < 2:
        line = proc.stdout.readline()
        assert line, "status --watch ended by itself"
        seen.append(line)
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    text = "".join(seen) + rest
    assert "\x1b[" not in text  # no terminal codes in a pipe
    assert "TENANT" in text.upper() and "acme" in text and "all healthy" in text


def test_watch_with_json_is_a_usage_error(sandbox: Sandbox) -> None:
    result = sandbox.cli("status", "--watch", "--json")
    assert result.returncode == 2 and "--watch" in result.stderr
    bad = sandbox.cli("status", "--watch", "--interval", "0")
    assert bad.returncode == 2 and "--interval" in bad.stderr
