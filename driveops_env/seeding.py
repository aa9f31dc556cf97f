"""Seed and template files, rendered per tenant: what every service's seeds share.

Reading and rendering happen before anything starts, so a broken file is reported (file, tenant,
exit 2) while nothing runs yet.  Placeholders are ``{{ name }}`` (``tenant_id``, ``tenant_slug``,
``tenant_name``, ``realm``, ``database``, and what a service adds); a service decides how a value is
quoted where it lands (SQL literals, JSON strings).  Each service reads its own files of the seeds
directory (``<service>/...``): see its unit.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from driveops_env import files
from driveops_env.errors import TemplateError
from driveops_env.tenants import Tenant, database_name

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def tenant_context(tenant: Tenant) -> dict[str, str]:
    return {
        "tenant_id": tenant.tenant_id,
        "tenant_slug": tenant.slug,
        "tenant_name": tenant.display_name,
        "realm": tenant.realm,
        "database": database_name(tenant.slug),
    }


def render_text(
    text: str,
    context: Mapping[str, str],
    *,
    path: Path,
    tenant: str,
    quote: Callable[[str], str] = lambda value: value,
) -> str:
    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in context:
            line = text.count("\n", 0, match.start()) + 1
            raise TemplateError(
                f"{path} line {line}: unknown placeholder {{{{{name}}}}}",
                tenant=tenant,
                hint=f"known placeholders: {', '.join(sorted(context))}",
            )
        return quote(context[name])

    return PLACEHOLDER.sub(substitute, text)


def render_json(value: Any, context: Mapping[str, str], *, path: Path, tenant: str) -> Any:
    """Substitute placeholders inside every string of a parsed JSON document."""
    if isinstance(value, str):
        return render_text(value, context, path=path, tenant=tenant)
    if isinstance(value, list):
        return [render_json(item, context, path=path, tenant=tenant) for item in value]
    if isinstance(value, dict):
        return {
            render_text(k, context, path=path, tenant=tenant): render_json(v, context, path=path, tenant=tenant)
            for k, v in value.items()
        }
    return value


def load_json_template(path: Path, context: Mapping[str, str], *, tenant: str, limit: int | None = None) -> Any:
    """A JSON file with placeholders inside its strings, rendered for one tenant.  Unknown
    placeholders are found in the raw text first, so the error gives the file's own line."""
    text = read_seed(path, tenant, limit)
    render_text(text, context, path=path, tenant=tenant)
    try:
        parsed = files.parse_json(text, path, "seed file")
    except TemplateError as exc:
        exc.tenant = tenant
        raise
    return render_json(parsed, context, path=path, tenant=tenant)


def read_seed(path: Path, tenant: str, limit: int | None) -> str:
    """A seed or template file's text: a regular file of bounded size (else exit 2 naming it)."""
    try:
        return files.read_text(path, "seed file", limit=limit)
    except TemplateError as exc:
        exc.tenant = tenant
        raise


def content_hash(*directories: Path, limit: int | None = None) -> str:
    """Hash of every file under the given directories (names and bytes); each must be a regular file
    of bounded size (a FIFO or a link to a device is refused, never read)."""
    digest = hashlib.sha256()
    for directory in directories:
        if not directory.is_dir():
            continue
        for path in sorted(p for p in directory.rglob("*") if not p.is_dir()):
            digest.update(str(path.relative_to(directory)).encode())
            digest.update(b"\0")
            digest.update(files.read_bytes(path, "seed file", limit=limit))
            digest.update(b"\0")
    return digest.hexdigest()
