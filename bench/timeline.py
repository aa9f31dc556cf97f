"""Where the time of `up` goes: each step's start and end, read from the progress `up` reports (a step
says its name and how long it took when it ends), written as a table (timeline.md) and a plot
(timeline.png, one row of bars per step, a panel per tenant count)."""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

STEP = re.compile(r"^\s+ok\s+(?P<name>.+?)\s+(?P<elapsed>[0-9.]+)s(\s|$)")
SHOWN = 12  # the longest steps a table lists per run


@dataclass
class Timeline:
    """The steps of one `up`: (name, start, end) in seconds from the start of `up`."""

    label: str
    started: float = field(default_factory=time.monotonic)
    steps: list[tuple[str, float, float]] = field(default_factory=list)
    total: float = 0.0

    def __call__(self, line: str) -> None:
        found = STEP.match(line)
        if found is None:
            return
        now = time.monotonic() - self.started
        self.steps.append((found["name"], max(0.0, now - float(found["elapsed"])), now))

    def done(self) -> None:
        self.total = time.monotonic() - self.started


def table(timelines: list[Timeline]) -> list[str]:
    lines = []
    for run in timelines:
        busy = sum(end - start for _, start, end in run.steps)
        lines += [
            f"**{run.label}**: {run.total:.2f} s in all; the steps' durations add up to {busy:.2f} s "
            f"({busy / max(run.total, 1e-9):.1f} at once on average). The longest:",
            "",
            "| step | starts at | takes |",
            "|---|---|---|",
        ]
        longest = sorted(run.steps, key=lambda s: s[1] - s[2])[:SHOWN]
        lines += [f"| {name} | {start:.2f} s | {end - start:.2f} s |" for name, start, end in longest]
        lines.append("")
    return lines


def write(results: Path, timelines: list[Timeline]) -> None:
    if not timelines:
        return
    results.mkdir(exist_ok=True)
    (results / "timeline.md").write_text("\n".join(table(timelines)) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench: matplotlib is not installed: no timeline plot", file=sys.stderr)
        return
    heights = [max(2.0, 0.18 * len(t.steps) + 1) for t in timelines]
    fig, axes = plt.subplots(len(timelines), 1, figsize=(11, sum(heights)), squeeze=False, height_ratios=heights)
    for ax, run in zip(axes[:, 0], timelines, strict=True):
        ordered = sorted(run.steps, key=lambda s: s[1])
        for row, (name, start, end) in enumerate(ordered):
            color = "#c0504d" if "keycloak" in name or "realm" in name else "#4a7ab5"
            ax.barh(row, end - start, left=start, color=color)
        ax.set_yticks(range(len(ordered)), [s[0] for s in ordered], fontsize=6)
        ax.set_xlim(0, run.total)
        ax.invert_yaxis()
        ax.set_title(f"{run.label}: {run.total:.2f} s", fontsize=9)
        ax.set_xlabel("seconds from the start of up (red: Keycloak and realms)")
    fig.tight_layout()
    fig.savefig(results / "timeline.png", dpi=110)
