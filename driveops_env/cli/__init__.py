"""``driveops-env``: parse, call the library, render.  Exit codes: 0 ok, 1 failure, 2 bad input,
130 interrupted.  The commands live in :mod:`.commands`; output helpers in :mod:`.output`."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Any, NoReturn

from driveops_env import envvars, options
from driveops_env.cli import commands, output
from driveops_env.errors import DriveopsEnvError
from driveops_env.reset import STORES

# Options that locate an environment: every command takes them.
LOCATORS = ("name", "state_dir", "data_dir", "cache_dir")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"driveops-env: error: {message}\n")


def _add_options(parser: argparse.ArgumentParser, names: Sequence[str]) -> None:
    group = parser.add_argument_group("environment options (also DRIVEOPS_ENV_* and [tool.driveops-env])")
    for option in options.OPTIONS:
        if option.name in names:
            group.add_argument(
                option.flag, dest=f"opt_{option.name}", metavar=option.metavar, default=None,
                help=f"{option.help} [env {option.env_var}; default: {option.default_doc}]",
            )  # fmt: skip


def _add_from(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="from_file", metavar="FILE", help="use the environment a descriptor "
                        "written by `driveops-env export` describes (another machine's), not a local one")  # fmt: skip


def _sub(sub: Any, name: str, help_: str, names: Sequence[str] = LOCATORS) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_, description=help_)
    _add_options(parser, names)
    return parser


def build_parser() -> argparse.ArgumentParser:
    from driveops_env import __version__

    parser = _Parser(prog="driveops-env", description="Local DriveOps environments: one Keycloak, per-tenant stores.")
    parser.add_argument("--version", action="version", version=f"driveops-env {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _lifecycle_commands(sub)
    _inspection_commands(sub)
    _tenant_commands(sub)
    return parser


def _lifecycle_commands(sub: Any) -> None:
    all_names = [o.name for o in options.OPTIONS]
    p = _sub(sub, "up", "start (or attach to) an environment, seed it, print how to connect", all_names)
    p.add_argument("--recreate", action="store_true", help="replace a running environment whose spec differs")
    p.add_argument("--show-secrets", action="store_true", help="print passwords instead of ****")
    p.add_argument("--json", action="store_true", help="print what up printed as JSON (secrets per --show-secrets)")
    p = _sub(sub, "down", "stop an environment and remove its data")
    p.add_argument("--keep-data", action="store_true", help="keep data directories and logs for inspection")
    _sub(sub, "prepare", "fetch and build what `up` needs (Keycloak, template cluster), start nothing",
         [o.name for o in options.OPTIONS if o.name != "tenants"])  # fmt: skip
    p = _sub(sub, "gc", "remove every environment whose owner is gone (and orphaned containers)")
    p.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    sub.add_parser("options", help="print the options reference (Markdown)")
    p = sub.add_parser("completion", help='print a shell completion script: eval "$(driveops-env completion bash)"')
    p.add_argument("shell", choices=("bash", "zsh"))


def _inspection_commands(sub: Any) -> None:
    p = _sub(sub, "status", "live health of every server; exit 1 if anything is down")
    p.add_argument("--json", action="store_true", help="print JSON: endpoints, credentials, server health")
    p.add_argument("--show-secrets", action="store_true", help="print passwords instead of ****")
    _add_from(p)
    p = _sub(sub, "logs", "print a server's log, or bundle every log with status and checks")
    p.add_argument("service", nargs="?", help="postgres, redis, mongo, keycloak or a server key such as postgres.acme")
    p.add_argument("--tenant", help="tenant slug, when each tenant has its own server")
    p.add_argument("--lines", type=int, default=None, help="only the last N lines")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new lines")
    p.add_argument("--bundle", metavar="FILE", help="write a .tar.gz of every server's log, status and checks "
                   "(secrets redacted), for a pipeline's artifacts")  # fmt: skip
    p = _sub(sub, "check", "the production guide's health checks per tenant; exit 1 if one fails")
    p.add_argument("--json", action="store_true", help="print JSON (same as --format json)")
    p.add_argument(
        "--format", choices=("text", "json", "markdown"), default="text",
        help="markdown: a table for $GITHUB_STEP_SUMMARY or a merge-request note, failures first",
    )  # fmt: skip
    _add_from(p)
    p = _sub(sub, "export", "write a descriptor of a running environment for other machines (mode 0600)")
    p.add_argument("--output", "-o", metavar="FILE", help="write it to FILE (default: stdout)")


def _tenant_commands(sub: Any) -> None:
    p = _sub(sub, "env", "a tenant's connection settings as environment variables (with secrets)")
    p.add_argument("--tenant", help="tenant slug (default: the first tenant)")
    p.add_argument(
        "--format", choices=envvars.FORMATS, default="dotenv",
        help="dotenv (docker --env-file, $GITHUB_ENV), shell (eval), json, dotnet (the API's keys)",
    )  # fmt: skip
    p.add_argument("--network", action="store_true",
                   help="the values a container on the environment's network uses (docker backend)")  # fmt: skip
    _add_from(p)
    p = _sub(sub, "token", "an access token of a tenant's user, alone on stdout")
    p.add_argument("--tenant", help="tenant slug (default: the first tenant)")
    p.add_argument("--user", help="user name (default: the first seeded user, e.g. admin@acme.test)")
    p.add_argument("--password", help="password (default: the seeded one); prefer DRIVEOPS_TOKEN_PASSWORD")
    p.add_argument("--client-credentials", action="store_true", help="the API client's service-account token")
    p.add_argument("--decode", action="store_true", help="print the token's validated claims as JSON instead")
    _add_from(p)
    p = _sub(sub, "reset", "bring a tenant back to its seeded state (data, keys, realm)")
    p.add_argument("--tenant", required=True, help="tenant slug")
    p.add_argument("--only", help=f"comma-separated stores to reset (default: all): {', '.join(STORES)}")
    p = _sub(sub, "tenant", "add or remove a tenant on a running environment", [*LOCATORS, "realm_pattern"])
    p.add_argument("action", choices=("add", "remove"))
    p.add_argument("slugs", nargs="+", metavar="SLUG", help="tenant slug(s)")


def _completion(parser: argparse.ArgumentParser, shell: str) -> int:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    flags = [flag for p in sub.choices.values() for a in p._actions for flag in a.option_strings]
    print(output.completion(shell, list(sub.choices), flags))
    return 0


def _interrupt(signum: int, frame: FrameType | None) -> Any:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
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
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # a full disk, an unusable directory: said, not a traceback
        output.error(f"{exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}")
        return 1
