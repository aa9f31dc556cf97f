"""The README's table of MongoDB differences, shown row by row against the MongoDB server here
(FerretDB: local, and the docker stand-in), and explained where they bite."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pymongo
import pytest

from driveops_env import Environment, options
from driveops_env.diagnosis import diagnose
from driveops_env.services import registry
from driveops_env.services.mongo.differences import differences, explain, markdown_table
from tests.helpers import make_sandbox, run

# the docker pass's MongoDB is the FerretDB stand-in: the same differences again
pytestmark = [pytest.mark.integration, pytest.mark.backend_independent]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with make_sandbox(tmp_path_factory.mktemp("mongo"), services="mongo") as box:
        env = Environment.up(settings=box.settings(tenants="acme"))
        database = env.tenant("acme").mongo.connect()
        try:
            yield database
        finally:
            database.client.close()
            env.down()


def _transaction(db: Any) -> None:
    with db.client.start_session() as session, session.start_transaction():
        db.things.insert_one({"a": 1}, session=session)


REPRODUCE: dict[str, Callable[[Any], object]] = {
    "transactions": _transaction,
    "change streams": lambda db: db.things.watch().try_next(),
    "$lookup and other stages": lambda db: list(
        db.things.aggregate([{"$lookup": {"from": "o", "localField": "a", "foreignField": "a", "as": "z"}}])
    ),
    "accumulators": lambda db: list(db.things.aggregate([{"$group": {"_id": None, "m": {"$avg": "$a"}}}])),
    "index options": lambda db: db.things.create_index("t", expireAfterSeconds=10),
    "collations": lambda db: list(db.things.find({}, collation={"locale": "fr"})),
    "nested arrays": lambda db: db.things.insert_one({"a": [[1]]}),
    "field names": lambda db: db.things.insert_one({"a.b": 1}),
}


def test_every_row_has_a_reproduction_and_the_readme_shows_the_table() -> None:
    assert set(REPRODUCE) == {d.name for d in differences()}
    assert markdown_table() in (REPO / "README.md").read_text(), "regenerate: scripts/update-readme"


@pytest.mark.parametrize("name", [d.name for d in differences()])
def test_each_difference_shows_and_is_explained(db: Any, name: str) -> None:
    with pytest.raises(pymongo.errors.PyMongoError) as info:
        REPRODUCE[name](db)
    found = explain(str(info.value))
    assert found is not None and found.name == name
    services = registry.every(options.resolve(environ={}, pyproject={}))
    detail, hint = diagnose(info.value, [s.explain for s in services.values()])  # what `check` says of it
    assert "FerretDB (the MongoDB server here) does not support" in detail and hint == found.instead


def test_a_failing_test_names_the_difference(pytester: pytest.Pytester, box: Any) -> None:
    pytester.makepyfile(
        test_tx="""
        def test_uses_a_transaction(tenant_mongo):
            with tenant_mongo.client.start_session() as s, s.start_transaction():
                tenant_mongo.things.insert_one({"a": 1}, session=s)
        """
    )
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*MongoDB difference: FerretDB*multi-document transactions*"])
