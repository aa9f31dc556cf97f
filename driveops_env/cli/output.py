"""How the CLI writes: rich tables and styled progress on a terminal; plain lines when the output is
not a terminal, when ``NO_COLOR`` is set, or with ``TERM=dumb``.  Data (``--json``, ``env``, ``token``)
always goes to stdout as plain text; progress and errors go to stderr."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

from driveops_env import render


def fancy(stream: Any) -> bool:
    return (
        bool(getattr(stream, "isatty", lambda: False)())
        and "NO_COLOR" not in os.environ
        and os.environ.get("TERM") != "dumb"
    )


def _console(stream: Any) -> Any:
    from rich.console import Console

    return Console(file=stream, highlight=False, soft_wrap=True)


def progress(message: str) -> None:
    """A progress line on stderr (``  ok  step  1.23s  detail`` lines are shown with style)."""
    if not fancy(sys.stderr):
        print(message, file=sys.stderr, flush=True)
        return
    from rich.markup import escape

    text = escape(message)
    if message.lstrip().startswith("ok "):
        text = text.replace("ok", "[green]ok[/]", 1)
    elif "failed" in message or "interrupted" in message:
        text = f"[red]{text}[/]"
    _console(sys.stderr).print(text)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A table on stdout: rich on a terminal, aligned plain columns otherwise."""
    if not fancy(sys.stdout):
        print(render.table(headers, rows))
        return
    from rich.table import Table

    grid = Table(*[h.upper() for h in headers], box=None, pad_edge=False, header_style="bold")
    for row in rows:
        grid.add_row(*row, style="red" if "FAIL" in row else None)
    _console(sys.stdout).print(grid)


def error(text: str) -> None:
    if fancy(sys.stderr):
        from rich.markup import escape

        _console(sys.stderr).print(f"[bold red]driveops-env: error:[/] {escape(text)}")
    else:
        print(f"driveops-env: error: {text}", file=sys.stderr)


BASH_COMPLETION = """\
# bash completion for driveops-env: eval "$(driveops-env completion bash)"
_driveops_env() {
    local cur=${COMP_WORDS[COMP_CWORD]} words
    if [ "$COMP_CWORD" -eq 1 ]; then
        words="%(commands)s"
    else
        words="%(flags)s"
    fi
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -F _driveops_env driveops-env
"""

ZSH_COMPLETION = """\
#compdef driveops-env
# zsh completion for driveops-env: eval "$(driveops-env completion zsh)"
_driveops_env() {
    if (( CURRENT == 2 )); then
        compadd -- %(commands)s
    else
        compadd -- %(flags)s
    fi
}
compdef _driveops_env driveops-env
"""


def completion(shell: str, commands: Sequence[str], flags: Sequence[str]) -> str:
    template = BASH_COMPLETION if shell == "bash" else ZSH_COMPLETION
    return template % {"commands": " ".join(commands), "flags": " ".join(sorted(set(flags)))}
