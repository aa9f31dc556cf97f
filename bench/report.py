"""The benchmark's outputs: latest.json (the targets), latest.md (tables) and latest.png (each target
against its goal, on a panel per unit: ratios, seconds, milliseconds, megabytes)."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

PANELS = {"x": "ratio (measured / reference)", "s": "seconds", "ms": "milliseconds", "MB": "megabytes"}


def write(results: Path, rows: list[tuple[str, str]], targets: list[dict[str, Any]]) -> None:
    results.mkdir(exist_ok=True)
    entries = [{k: t[k] for k in ("name", "measured", "target", "met")} | {"detail": t["detail"]} for t in targets]
    (results / "latest.json").write_text(json.dumps(entries, indent=2))
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} cores.",
        "",
        "| measurement | value |",
        "|---|---|",
        *[f"| {name} | {value} |" for name, value in rows],
        "",
        "| target | measured | wanted | met | detail |",
        "|---|---|---|---|---|",
    ]
    for t in targets:
        lines.append(
            f"| {t['name']} | {t['measured']:.2f} | {t['target']} | {'yes' if t['met'] else 'NO'} | {t['detail']} |"
        )
    (results / "latest.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(results / "latest.png", targets)


def _goal(target: str) -> float | None:
    match = re.search(r"([0-9.]+)", target)
    return float(match.group(1)) if match and "measured" not in target else None


def plot(path: Path, targets: list[dict[str, Any]]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench: matplotlib is not installed: no plot (nox -s bench installs it)", file=sys.stderr)
        return
    units = [u for u in PANELS if any(t["unit"] == u for t in targets)]
    fig, axes = plt.subplots(
        len(units), 1, figsize=(10, 1.2 + sum(0.45 * _count(targets, u) + 0.6 for u in units)), squeeze=False
    )
    for ax, unit in zip(axes[:, 0], units, strict=True):
        mine = [t for t in targets if t["unit"] == unit]
        names = [t["name"] for t in mine]
        ax.barh(names, [t["measured"] for t in mine], color=["#4a7ab5" if t["met"] else "#c0504d" for t in mine])
        for i, t in enumerate(mine):
            goal = _goal(t["target"])
            if goal is not None:
                ax.plot([goal, goal], [i - 0.4, i + 0.4], color="black", linewidth=2)
        ax.set_xlabel(PANELS[unit] + " (black: the goal; red: missed)")
        ax.invert_yaxis()
    fig.suptitle("driveops-env: each measurement against its goal, measured side by side in one run")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _count(targets: list[dict[str, Any]], unit: str) -> int:
    return sum(1 for t in targets if t["unit"] == unit)
