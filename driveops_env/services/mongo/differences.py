"""Where the MongoDB server here (FerretDB 1.24: locally, and in the docker stand-in image) differs from
MongoDB, in one table: the README's table is generated from it, a test shows each row, and a failure
whose error matches a row is explained where it bites (``check``, the pytest failure section)."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Difference:
    name: str
    what: str  # what a service does that FerretDB does not
    error: re.Pattern[str]  # what the client gets back
    instead: str  # what to do

    def row(self) -> str:
        return f"| {self.name} | {self.what} | {self.instead} |"


DIFFERENCES = (
    Difference(
        "transactions",
        "multi-document transactions (`session.start_transaction()`)",
        re.compile(r'unknown field "(startTransaction|autocommit)"|commitTransaction|abortTransaction'),
        "single-document writes; real MongoDB (the official `mongo` image) for tests that need them",
    ),
    Difference(
        "change streams",
        "`collection.watch()`, `$changeStream`",
        re.compile(r'"\$changeStream" is not implemented'),
        "poll; or real MongoDB for that test",
    ),
    Difference(
        "$lookup and other stages",
        "`$lookup`, `$facet`, `$out`, `$merge`, `$unionWith`, `$graphLookup`, ...",
        re.compile(r'stage "\$\w+" is not implemented'),
        "`$match`, `$group`, `$project`, `$sort`, `$limit`, `$skip`, `$unwind`, `$count`, `$unset` work",
    ),
    Difference(
        "accumulators",
        "`$avg`, `$min`, `$max`, `$push`, `$addToSet`, `$first`, `$last` in `$group`",
        re.compile(r'accumulator "\$\w+" is not implemented'),
        "`$sum` and `$count` work",
    ),
    Difference(
        "index options",
        "TTL (`expireAfterSeconds`), partial, sparse, collation indexes",
        re.compile(r'Index option "\w+" is not implemented'),
        "`keys`, `name` and `unique` work",
    ),
    Difference(
        "collations",
        "`collation=` on queries",
        re.compile(r'field "collation" .* not implemented'),
        "compare normalised values",
    ),
    Difference(
        "nested arrays",
        "arrays inside arrays in a document",
        re.compile(r"nested arrays are not supported"),
        "arrays of objects",
    ),
    Difference(
        "field names",
        "field names with `.` or a leading `$`",
        re.compile(r"key must not (contain '\.'|start with '\$')"),
        "other names",
    ),
)


def explain(error: str) -> Difference | None:
    """The difference an error message shows, if it is one."""
    for difference in DIFFERENCES:
        if difference.error.search(error):
            return difference
    return None


def markdown_table() -> str:
    lines = ["| difference | what FerretDB 1.24 does not do | what works instead |", "|---|---|---|"]
    return "\n".join([*lines, *(d.row() for d in DIFFERENCES)])
