"""PostgreSQL's seed files (``<seeds>/postgres/*.sql``): rendered per tenant (placeholders as SQL
literals, inert in every position, comments included), split into statements, applied in one
transaction as the tenant's own role; an error names the file, the line and the tenant."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from driveops_env.errors import SeedError, TemplateError
from driveops_env.seeding import read_seed, render_text, tenant_context
from driveops_env.tenants import Tenant


def sql_literal(value: str) -> str:
    """A quoted SQL literal that stays on one line, so it is inert in every position a placeholder can
    take, a ``--`` comment included: control characters become ``E''`` escapes."""
    if not any(ord(c) < 32 or ord(c) == 127 or c in "\u2028\u2029" for c in value):
        return "'" + value.replace("'", "''") + "'"
    escaped = "".join(
        f"\\u{ord(c):04x}"
        if ord(c) < 32 or ord(c) == 127 or c in "\u2028\u2029"
        else "\\\\"
        if c == "\\"
        else "''"
        if c == "'"
        else c
        for c in value
    )
    return "E'" + escaped + "'"


@dataclass(frozen=True)
class SqlStatement:
    text: str
    line: int  # 1-based line of the statement's first character in its file


@dataclass(frozen=True)
class SqlFile:
    path: Path
    statements: tuple[SqlStatement, ...]


def split_sql(text: str) -> list[SqlStatement]:
    """Split SQL into statements at top-level ``;``, aware of quotes, comments and dollar quoting."""
    statements: list[SqlStatement] = []
    i, n = 0, len(text)
    start: int | None = None
    while i < n:
        ch = text[i]
        if ch in " \t\r\n" and start is None:
            i += 1
            continue
        if text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        if start is None:
            start = i
        if ch in ("'", '"'):
            i += 1
            while i < n:
                if text[i] == ch:
                    if i + 1 < n and text[i + 1] == ch:  # doubled quote is an escaped quote
                        i += 2
                        continue
                    break
                i += 1
            i += 1
            continue
        if ch == "$":
            match = re.match(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$", text[i:])
            if match:
                tag = match.group(0)
                end = text.find(tag, i + len(tag))
                i = n if end < 0 else end + len(tag)
                continue
        if ch == ";":
            body = text[start:i].strip()
            if body:
                statements.append(SqlStatement(body, text.count("\n", 0, start) + 1))
            start = None
        i += 1
    if start is not None and text[start:].strip():
        statements.append(SqlStatement(text[start:].strip(), text.count("\n", 0, start) + 1))
    return statements


def render_sql_files(seeds_dir: Path, tenant: Tenant, *, limit: int | None = None) -> tuple[SqlFile, ...]:
    """``<seeds>/postgres/*.sql`` in name order, rendered for the tenant (bad input: exit 2)."""
    result = []
    context = tenant_context(tenant)
    for path in sorted((seeds_dir / "postgres").glob("*.sql")):
        text = read_seed(path, tenant.slug, limit)
        rendered = render_text(text, context, path=path, tenant=tenant.slug, quote=sql_literal)
        for statement in split_sql(rendered):
            if statement.text.startswith("\\"):
                raise TemplateError(
                    f"{path} line {statement.line}: psql meta-commands are not supported in seed files",
                    tenant=tenant.slug,
                )
        result.append(SqlFile(path, tuple(split_sql(rendered))))
    return tuple(result)


def apply_sql(conninfo: str, files: Sequence[SqlFile], *, tenant: str) -> None:
    """Run the seed files in one transaction; an error names the file, line and tenant."""
    import psycopg

    with psycopg.connect(conninfo) as conn, conn.transaction():
        for seed in files:
            for statement in seed.statements:
                try:
                    conn.execute(statement.text.encode())  # no params: sent as is
                except psycopg.Error as exc:
                    line = statement.line
                    position = getattr(exc.diag, "statement_position", None)
                    if position and str(position).isdigit():
                        line += statement.text.count("\n", 0, int(position) - 1)
                    first = (str(exc).splitlines() or ["error"])[0]
                    raise SeedError(
                        f"seed file {seed.path} line {line}: {first}",
                        service="postgres",
                        tenant=tenant,
                        hint="fix the seed file; nothing of the environment was left running",
                    ) from None
