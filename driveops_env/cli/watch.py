"""``status --watch``: the status rows again every few seconds until Ctrl-C: refreshed in place on a
terminal (rich's live display), one plain block per refresh, under a time stamp, otherwise.  Each
refresh reads the state file again, so tenants added or removed meanwhile show."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from driveops_env import readiness, render
from driveops_env.cli import output
from driveops_env.environment import Environment

Rows = tuple[str, list[list[str]]]  # a title, the rows of render.CHECK_HEADERS


def snapshot(env: Environment) -> Rows:
    results = env.status()
    down = sum(1 for r in results if not r.ok)
    title = (
        f"environment {env.name!r}: backend {env.backend}, tenants {', '.join(env.tenants) or '-'}; "
        f"{'all healthy' if not down else f'{down} failing'} at {time.strftime('%H:%M:%S')}"
    )
    return title, render.checks_rows(results)


def watch(load: Callable[[], Environment], interval: float) -> int:
    """Until Ctrl-C (exit 0); ``load`` attaches to the environment again for each refresh."""
    try:
        if output.fancy(sys.stdout):
            _live(load, interval)
        else:
            _plain(load, interval)
    except KeyboardInterrupt:
        return 0
    return 0


def _plain(load: Callable[[], Environment], interval: float) -> None:
    for _ in readiness.ticks(interval):
        title, rows = snapshot(load())
        print(title)
        print(render.table(render.CHECK_HEADERS, rows), end="\n\n", flush=True)


def _live(load: Callable[[], Environment], interval: float) -> None:
    from rich.live import Live

    with Live(_view(*snapshot(load())), auto_refresh=False, screen=False) as live:
        for beat in readiness.ticks(interval):
            if beat:  # the first view is drawn already
                live.update(_view(*snapshot(load())), refresh=True)


def _view(title: str, rows: Sequence[Sequence[str]]) -> Any:
    from rich.table import Table

    grid = Table(*[h.upper() for h in render.CHECK_HEADERS], title=title, box=None, header_style="bold")
    for row in rows:
        grid.add_row(*row, style="red" if "FAIL" in row else None)
    return grid
