"""The CLI's parser: commands and their flags, the environment options derived from the option table
(the generic ones and every service's own)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from driveops_env import envvars
from driveops_env.option_types import Option, Range, parse_port

# Options that locate an environment: every command takes them.
LOCATORS = ("name", "state_dir", "data_dir", "cache_dir")
INTERVAL = Range(
    0.5, 3600, "each refresh queries every server; an hour is the longest that still watches", fraction=True
)
LINES = Range(1, 1_000_000, "the tail is held in memory; without --lines the whole log is printed")


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"driveops-env: error: {message}\n")


@dataclass
class Commands:
    """Adds the subcommands, each with the environment options it takes."""

    sub: Any
    table: Sequence[Option]

    def add(self, name: str, help_: str, names: Sequence[str] = LOCATORS) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = self.sub.add_parser(name, help=help_, description=help_)
        group = parser.add_argument_group("environment options (also DRIVEOPS_ENV_* and [tool.driveops-env])")
        for option in self.table:
            if option.name in names:
                group.add_argument(
                    option.flag,
                    dest=f"opt_{option.name}",
                    metavar=option.metavar,
                    default=None,
                    help=f"{option.meaning} [env {option.env_var}; default: {option.default_doc}]",
                )
        return parser


def add_from(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from",
        dest="from_file",
        metavar="FILE",
        help="use the environment a descriptor written by `driveops-env export` describes (another machine's), "
        "not a local one",
    )


def build_parser(table: Sequence[Option], stores: Sequence[str]) -> argparse.ArgumentParser:
    from driveops_env import __version__

    parser = Parser(
        prog="driveops-env", description="Local DriveOps environments: one identity server, per-tenant stores."
    )
    parser.add_argument("--version", action="version", version=f"driveops-env {__version__}")
    commands = Commands(parser.add_subparsers(dest="command", required=True, parser_class=Parser), table)
    _lifecycle(commands)
    _inspection(commands, stores)
    _dashboard(commands)
    _tenant(commands, stores)
    return parser


def _lifecycle(commands: Commands) -> None:
    everything = [o.name for o in commands.table]
    p = commands.add("up", "start (or attach to) an environment, seed it, print how to connect", everything)
    p.add_argument(
        "--recreate",
        action="store_true",
        help="replace a running environment whose spec differs, and derive the initialised store images again",
    )
    p.add_argument("--show-secrets", action="store_true", help="print passwords instead of ****")
    p.add_argument("--json", action="store_true", help="print what up printed as JSON (secrets per --show-secrets)")
    p = commands.add("down", "stop an environment and remove its data")
    p.add_argument("--keep-data", action="store_true", help="keep data directories and logs for inspection")
    commands.add(
        "prepare",
        "fetch and build what `up` needs (server distributions, template data, images), start nothing",
        [name for name in everything if name != "tenants"],
    )
    p = commands.add("gc", "remove every environment whose owner is gone (and orphaned containers)")
    p.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    commands.sub.add_parser("options", help="print the options reference (Markdown)")
    p = commands.sub.add_parser(
        "completion", help='print a shell completion script: eval "$(driveops-env completion bash)"'
    )
    p.add_argument("shell", choices=("bash", "zsh"))


def _inspection(commands: Commands, stores: Sequence[str]) -> None:
    p = commands.add("status", "live health of every server; exit 1 if anything is down")
    p.add_argument("--json", action="store_true", help="print JSON: endpoints, credentials, server health")
    p.add_argument("--show-secrets", action="store_true", help="print passwords instead of ****")
    p.add_argument(
        "--watch", action="store_true", help="refresh the health rows in place every --interval seconds until Ctrl-C"
    )
    p.add_argument(
        "--interval",
        type=_checked(INTERVAL),
        default=2.0,
        metavar="SECONDS",
        help=f"--watch's refresh interval (default 2), {INTERVAL.describe()}",
    )
    add_from(p)
    p = commands.add("logs", "print a server's log, or bundle every log with status and checks")
    p.add_argument(
        "service",
        nargs="?",
        help=f"{', '.join(stores)} or a server key such as {stores[0] if stores else 'service'}.acme; "
        "migrate: the tenant's migration output",
    )
    p.add_argument("--tenant", help="tenant slug, when each tenant has its own server")
    p.add_argument(
        "--lines", type=_checked(LINES), default=None, metavar="N", help=f"only the last N lines, {LINES.describe()}"
    )
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new lines")
    p.add_argument(
        "--bundle",
        metavar="FILE",
        help="write a .tar.gz of every server's log, status and checks (secrets redacted), for a pipeline's artifacts",
    )
    p = commands.add("check", "the production guide's health checks per tenant; exit 1 if one fails")
    p.add_argument("--json", action="store_true", help="print JSON (same as --format json)")
    p.add_argument(
        "--format",
        choices=("text", "json", "markdown"),
        default="text",
        help="markdown: a table for $GITHUB_STEP_SUMMARY or a merge-request note, failures first",
    )
    add_from(p)
    p = commands.add("export", "write a descriptor of a running environment for other machines (mode 0600)")
    p.add_argument("--output", "-o", metavar="FILE", help="write it to FILE (default: stdout)")


def _dashboard(commands: Commands) -> None:
    p = commands.add("dashboard", "a live view in the browser, on 127.0.0.1 behind a random token, until Ctrl-C")
    p.add_argument("--port", type=_checked(parse_port), default=0, help="the port to serve on (default: 0, a free one)")
    p.add_argument("--open", action="store_true", help="open the page in a browser")
    p.add_argument(
        "--interval",
        type=_checked(INTERVAL),
        default=2.0,
        metavar="SECONDS",
        help=f"how often the page refreshes (default 2), {INTERVAL.describe()}",
    )
    add_from(p)


def _tenant(commands: Commands, stores: Sequence[str]) -> None:
    p = commands.add("env", "a tenant's connection settings as environment variables (with secrets)")
    p.add_argument("--tenant", help="tenant slug (default: the first tenant)")
    p.add_argument(
        "--format",
        choices=envvars.FORMATS,
        default="dotenv",
        help="dotenv (docker --env-file, $GITHUB_ENV), shell (eval), json, dotnet (the API's keys)",
    )
    p.add_argument("--network", action="store_true", help="the values a container on the environment's network uses")
    p.add_argument("--copy", metavar="ID", help="the values of a copy a failed test left (see `copies`)")
    add_from(p)
    commands.add("copies", "the copies failed tests left (pytest --driveops-keep-failed), until gc drops them")
    p = commands.add("token", "an access token of a tenant's user, alone on stdout")
    p.add_argument("--tenant", help="tenant slug (default: the first tenant)")
    p.add_argument("--user", help="user name (default: the first seeded user, e.g. admin@acme.test)")
    p.add_argument("--password", help="password (default: the seeded one); prefer DRIVEOPS_TOKEN_PASSWORD")
    p.add_argument("--client-credentials", action="store_true", help="the API client's service-account token")
    p.add_argument("--decode", action="store_true", help="print the token's validated claims as JSON instead")
    add_from(p)
    p = commands.add("reset", "bring a tenant back to its seeded state (data, keys, realm)")
    p.add_argument("--tenant", required=True, help="tenant slug")
    p.add_argument("--only", help=f"comma-separated stores to reset (default: all): {', '.join(stores)}")
    p = commands.add("migrate", "apply the pending migrations to a running environment's tenants and their seeds")
    p.add_argument(
        "--rehearse",
        action="store_true",
        help="apply them to a clone of each tenant's current data instead (dropped after; the tenants untouched); "
        "exit 1 if one failed",
    )
    p.add_argument("--tenant", help="--rehearse: comma-separated tenants (default: all)")
    p.add_argument(
        "--format",
        choices=("text", "json", "markdown"),
        default="text",
        help="--rehearse's report: markdown is a table for $GITHUB_STEP_SUMMARY, failures first",
    )
    _snapshot(commands)
    p = commands.add("tenant", "add or remove a tenant on a running environment", [*LOCATORS, "realm_pattern"])
    p.add_argument("action", choices=("add", "remove"))
    p.add_argument("slugs", nargs="+", metavar="SLUG", help="tenant slug(s)")


def _snapshot(commands: Commands) -> None:
    p = commands.add("snapshot", "save a tenant's data in every store to one file, or load such a file in its place")
    p.add_argument("action", choices=("save", "load"))
    p.add_argument("file", nargs="?", metavar="FILE", help="load: the snapshot file to load")
    p.add_argument(
        "--tenant", help="save: the tenant to save (required); load: the tenant to replace (default: the file's)"
    )
    p.add_argument("--output", "-o", metavar="FILE", help="save: the file to write (mode 0600)")
    p.add_argument(
        "--as",
        dest="as_new",
        metavar="SLUG",
        help="load: into a new tenant added for it (its id, realm and stores its own; the file's tenant's id, "
        "slug and name replaced by its own where they are whole values)",
    )
    p.add_argument(
        "--mask", action="store_true", help="save: personal data masked deterministically (the mask option's names)"
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="load: even a file of other migrations, or with stores the environment lacks",
    )
    add_from(p)


def _checked(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """``parse`` for argparse: its refusal is a usage error naming the flag and the value (exit 2)."""

    def checked(value: str) -> Any:
        try:
            return parse(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{value!r}: {exc}") from None

    return checked
