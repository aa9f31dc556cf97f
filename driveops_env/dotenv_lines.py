"""What a ``KEY=value`` line of the dotenv format carries unchanged to every consumer the README names.

docker's ``--env-file`` and GitHub's ``$GITHUB_ENV`` keep everything after the first ``=`` as it is;
python-dotenv (``interpolate=False``) reads a value that starts with a quote as quoted, strips white
space around it, and ends it at a ``#`` after white space (a comment).  No quoting satisfies both
readings, so a value they would read differently is refused: at the tenant catalogue (a display name)
and wherever the format is written.
"""

from __future__ import annotations

import re

_COMMENT = re.compile(r"\s#")


def problem(value: str) -> str | None:
    """Why ``value`` would not read back identically from a ``KEY=value`` line, or None."""
    if any(c in value for c in "\n\r\0"):
        return "a line break"
    if value[:1] in ("'", '"'):
        return "a leading quote (python-dotenv reads a quoted value without its quotes)"
    if value != value.strip():
        return "white space at its start or end (python-dotenv strips it)"
    if _COMMENT.search(value):
        return "a '#' after white space (python-dotenv reads a comment from there)"
    return None
