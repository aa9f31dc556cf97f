"""What a failure means, in one line a reader understands, and what to do about it."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from driveops_env.errors import DriveopsEnvError
from driveops_env.services.servers import Explanation

Explainer = Callable[[str], "Explanation | None"]

# What a failure's text means, whatever served it, and what to do: (pattern, what it is, hint).  What a
# particular server or client library says is its service's to explain (``Service.explain``).
NO_SPACE = "no space left on device"
_DIAGNOSES = (
    (
        re.compile(r"No space left on device|could not extend file|could not write to file|disk full", re.I),
        NO_SPACE,
        "free disk space where the servers keep their data, then try again",
    ),
    (
        re.compile(r"Connection refused|connection timed out|timed out", re.I),
        "no answer",
        "the server is down: `driveops-env status`, then `driveops-env up` heals the environment",
    ),
    (re.compile(r"does not exist", re.I), "missing", "`driveops-env reset --tenant <slug>` re-creates it"),
)


def diagnose(exc: BaseException, explainers: Sequence[Explainer] = ()) -> tuple[str, str | None]:
    """A failure as one line a reader understands, and what to do.  Our own errors are already said in
    words; a service recognises its server's and client's own (``explainers``: a refused password, a
    difference from what clients expect).  Long messages (Go stack frames in a server's answer) keep the
    part around what matched, cut at word boundaries."""
    if isinstance(exc, DriveopsEnvError):
        return exc.message, exc.hint
    text = " ".join(str(exc).split())
    for explain in explainers:
        said = explain(text)
        if said is not None:  # what it means, and what the server said
            return f"{said[0]} ({around(text, 0, 0, before=0, after=160)})", said[1]
    for pattern, what, hint in _DIAGNOSES:
        core = pattern.search(text)
        if core is not None:
            return f"{what}: {around(text, core.start(), core.end())}", hint
    first = (str(exc).splitlines() or [type(exc).__name__])[0]
    return around(first, 0, 0, before=0, after=300), None


def around(text: str, start: int, end: int, *, before: int = 60, after: int = 120) -> str:
    """``text[start:end]`` with up to ``before``/``after`` characters around it, cut between words."""
    left = max(0, start - before)
    if left > 0:
        space = text.find(" ", left, start)
        left = space + 1 if space >= 0 else start
    right = min(len(text), end + after)
    if right < len(text):
        space = text.rfind(" ", end, right)
        right = space if space >= 0 else end
    clipped = text[left:right].strip()
    return ("... " if left > 0 else "") + clipped + (" ..." if right < len(text) else "")
