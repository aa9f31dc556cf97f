"""``driveops-env``: parse, call the library (:class:`~driveops_env.environment.Environment`), render.
Exit codes: 0 ok, 1 failure, 2 bad input, 130 interrupted.  The parser lives in :mod:`.parser`, the
commands in :mod:`.commands`, output helpers in :mod:`.output`."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Any

from driveops_env.cli import commands, output
from driveops_env.cli.parser import build_parser
from driveops_env.errors import DriveopsEnvError
from driveops_env.services import registry


def _completion(parser: argparse.ArgumentParser, shell: str) -> int:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    flags = [flag for p in sub.choices.values() for a in p._actions for flag in a.option_strings]
    print(output.completion(shell, list(sub.choices), flags))
    return 0


def _interrupt(signum: int, frame: FrameType | None) -> Any:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser(registry.options(), registry.names())
    except DriveopsEnvError as exc:  # a plugged-in service that cannot be loaded
        output.error(str(exc))
        return exc.exit_code
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if args.command == "completion":
            return _completion(parser, args.shell)
        return commands.COMMANDS[args.command](args)
    except DriveopsEnvError as exc:
        output.error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        print("driveops-env: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `driveops-env status | head -1`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # a full disk, an unusable directory: said, not a traceback
        output.error(f"{exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}")
        return 1
