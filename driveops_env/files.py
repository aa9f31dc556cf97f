"""Files the user gives (catalogue, seeds, templates, state files, descriptors) and files written for
the user (bundles, descriptors), handled the same way everywhere.

Reading: only a regular file of bounded size is read (a link to ``/dev/zero`` or a FIFO is refused,
never read or waited on), and JSON of bounded depth; anything else is a :class:`TemplateError` (exit
2) naming the file.  Writing: a file is created without following links.  In a folder only this user
can change, a temporary file is renamed over the target; in a folder others can write to (``/tmp``)
the target must not exist yet (``O_CREAT|O_EXCL|O_NOFOLLOW``), so a planted link or file is never
written through.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any

from driveops_env.errors import TemplateError, UsageError

DEFAULT_LIMIT_MB = 256
MAX_DEPTH = 100  # nesting of a JSON input; realms and seeds use about ten


def limit_bytes(megabytes: int = DEFAULT_LIMIT_MB) -> int:
    return megabytes * 1024 * 1024


def read_bytes(path: Path, what: str = "input file", *, limit: int | None = None) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes."""
    limit = limit_bytes() if limit is None else limit
    try:  # O_NONBLOCK: opening a FIFO must not wait for a writer
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise TemplateError(f"cannot read the {what} {path}: {exc.strerror}", hint="fix the file") from exc
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise TemplateError(
                f"the {what} {path} is not a regular file ({_kind(info.st_mode)}); it is not read",
                hint="point it at a regular file",
            )
        if info.st_size > limit:
            raise TemplateError(
                f"the {what} {path} is {_size(info.st_size)}; the limit is {_size(limit)}",
                hint="use a smaller file, or raise --input-limit-mb",
            )
        data = handle.read(limit + 1)
    if len(data) > limit:  # grew while being read
        raise TemplateError(f"the {what} {path} is over the limit of {_size(limit)}", hint="use a smaller file")
    return data


def read_text(path: Path, what: str = "input file", *, limit: int | None = None) -> str:
    try:
        return read_bytes(path, what, limit=limit).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TemplateError(f"the {what} {path} is not UTF-8 text: {exc}", hint="fix the file") from exc


def parse_json(text: str, path: Path, what: str = "input file") -> Any:
    """Parsed JSON, refused (exit 2, naming the file) when invalid or nested deeper than MAX_DEPTH."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TemplateError(f"{path} line {exc.lineno}: not valid JSON: {exc.msg}", hint="fix the file") from exc
    except RecursionError:
        value = None
        depth = MAX_DEPTH + 1
    else:
        depth = json_depth(value)
    if depth > MAX_DEPTH:
        raise TemplateError(
            f"the {what} {path} nests deeper than {MAX_DEPTH} levels; it is not read", hint="flatten the file"
        )
    return value


def load_json(path: Path, what: str = "input file", *, limit: int | None = None) -> Any:
    return parse_json(read_text(path, what, limit=limit), path, what)


def json_depth(value: Any) -> int:
    """How deeply lists and objects nest in ``value`` (without recursion)."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth > MAX_DEPTH:
                return depth
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
    return deepest


def write_private(target: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Write ``data`` to ``target`` (mode ``mode``) without following a link at ``target``: renamed into
    place in a folder only this user can change, else created anew (an existing name is refused)."""
    folder = target.parent
    try:
        info = os.stat(folder)
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror}", hint="choose an existing folder") from exc
    shared = info.st_uid != os.geteuid() or bool(info.st_mode & 0o022)
    if shared:
        _create(target, data, mode, hint="choose a name that does not exist, or a folder of your own")
        return
    temporary = folder / f".{target.name}.{secrets.token_hex(4)}.tmp"
    _create(temporary, data, mode, hint="check the folder")
    try:
        os.replace(temporary, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise UsageError(f"cannot write {target}: {exc.strerror}", hint="choose another file name") from exc


def _create(path: Path, data: bytes, mode: int, *, hint: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        reason = (
            "it exists already (a file or link another user could have planted)"
            if exc.errno in (errno.EEXIST, errno.ELOOP)
            else exc.strerror
        )
        raise UsageError(f"cannot write {path}: {reason}", hint=hint) from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
    except OSError:
        with contextlib.suppress(OSError):
            path.unlink()
        raise


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _size(count: int) -> str:
    return f"{count / (1024 * 1024):.1f} MB"
