"""Where the MongoDB server here (FerretDB 1.24: locally, and in the docker stand-in image) differs from
MongoDB, in one table (``differences.toml``): the README's table is generated from it, a test shows each
row, and a failure whose error matches a row is explained where it bites (``check``, the pytest failure
section)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True)
class Difference:
    name: str
    what: str  # what a service does that FerretDB does not
    error: re.Pattern[str]  # what the client gets back
    instead: str  # what to do

    def row(self) -> str:
        return f"| {self.name} | {self.what} | {self.instead} |"


def differences() -> tuple[Difference, ...]:
    """The table, read from the package."""
    text = resources.files(__package__).joinpath("differences.toml").read_text(encoding="utf-8")
    rows = tomllib.loads(text)["difference"]
    return tuple(Difference(r["name"], r["what"], re.compile(r["error"]), r["instead"]) for r in rows)


def explain(error: str) -> Difference | None:
    """The difference an error message shows, if it is one."""
    for difference in differences():
        if difference.error.search(error):
            return difference
    return None


def markdown_table() -> str:
    lines = ["| difference | what FerretDB 1.24 does not do | what works instead |", "|---|---|---|"]
    return "\n".join([*lines, *(d.row() for d in differences())])
