"""Personal data replaced deterministically in a snapshot (``snapshot save --mask``): the same value
always gives the same masked value, in every store, so that what joins rows, documents and users
(the same e-mail address in a table, a document and an identity) still joins.

Which values are personal is said by their column or field names (``mask`` option: case-insensitive
names); what a masked value looks like by the name's kind: an e-mail address stays one (at the
reserved ``example.invalid``; the same address in any case masks the same, as an identity server keeps it in
lower case), a phone number stays digits, anything else becomes ``masked-<hex>``.
An SQL store masks in SQL (:func:`sql_expression`), the others in Python (:func:`value`); both give the
same result for the same text.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

DEFAULT_NAMES = ("email", "full_name", "first_name", "last_name", "firstname", "lastname", "phone", "mobile")
EMAIL_DOMAIN = "example.invalid"  # RFC 2606: never a real address


def kind_of(name: str) -> str:
    """``email``, ``phone`` or ``text``: the form a masked value of that column or field keeps."""
    low = name.lower()
    if "mail" in low or low == "username":
        return "email"
    if "phone" in low or "mobile" in low:
        return "phone"
    return "text"


def value(kind: str, text: str) -> str:
    """``text`` masked as ``kind`` (see :func:`kind_of`); what :func:`sql_expression` computes too."""
    digest = hashlib.sha256((text.lower() if kind == "email" else text).encode("utf-8")).hexdigest()
    if kind == "email":
        return f"user-{digest[:10]}@{EMAIL_DOMAIN}"
    if kind == "phone":
        return f"+1555{int(digest[:8], 16) % 1000000:06d}"
    return f"masked-{digest[:10]}"


def sql_expression(kind: str, column: str) -> str:
    """The SQL (of a server with ``sha256()``) computing :func:`value` of ``column`` (an identifier already quoted);
    NULL stays NULL."""
    text = f"lower({column}::text)" if kind == "email" else f"{column}::text"  # addresses: case-insensitive
    digest = f"encode(sha256(convert_to({text}, 'UTF8')), 'hex')"
    if kind == "email":
        return f"'user-' || left({digest}, 10) || '@{EMAIL_DOMAIN}'"
    if kind == "phone":
        return f"'+1555' || lpad((('x' || left({digest}, 8))::bit(32)::bigint % 1000000)::text, 6, '0')"
    return f"'masked-' || left({digest}, 10)"


@dataclass(frozen=True)
class Masking:
    """The names whose values are masked (lower case)."""

    names: frozenset[str]

    @classmethod
    def of(cls, names: tuple[str, ...]) -> Masking:
        return cls(frozenset(n.lower() for n in names))

    def masks(self, name: str) -> bool:
        return name.lower() in self.names

    def document(self, item: Any) -> Any:
        """A JSON-like value (a document) with the string values of masked fields masked, at any
        depth; every other value as it was."""
        if isinstance(item, list):
            return [self.document(child) for child in item]
        if not isinstance(item, dict):
            return item
        out: dict[str, Any] = {}
        for key, child in item.items():
            if isinstance(child, str) and self.masks(key):
                out[key] = value(kind_of(key), child)
            elif isinstance(child, list) and self.masks(key):  # a list of values (a user's attribute)
                out[key] = [value(kind_of(key), c) if isinstance(c, str) else self.document(c) for c in child]
            else:
                out[key] = self.document(child)
        return out


@dataclass(frozen=True)
class Replacing:
    """Whole values replaced by others (another tenant's id, slug and name for ``snapshot load --as``):
    a value equal to a key, as a whole, becomes its value; a value that only contains one stays."""

    values: dict[str, str]

    def value(self, item: Any) -> Any:
        return self.values.get(item, item) if isinstance(item, str) else item

    def document(self, item: Any) -> Any:
        """A JSON-like value with every string equal to a key replaced, at any depth (keys kept)."""
        if isinstance(item, list):
            return [self.document(child) for child in item]
        if isinstance(item, dict):
            return {key: self.document(child) for key, child in item.items()}
        return self.value(item)
