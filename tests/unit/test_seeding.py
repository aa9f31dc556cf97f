from __future__ import annotations

from pathlib import Path

import pytest

from driveops_env import options, seeding
from driveops_env.errors import TemplateError
from driveops_env.services import registry
from driveops_env.services.base import Sources
from driveops_env.services.capabilities import seed_of
from driveops_env.services.postgres import sql
from driveops_env.services.redis import seeds as redis_seeds
from driveops_env.tenants import Tenant

ACME = Tenant("acme", "550e8400-e29b-41d4-a716-446655440001", "Acme's Garage", "acme")
REPO = Path(__file__).resolve().parents[2]


def test_split_sql_respects_quotes_comments_and_dollar_quotes() -> None:
    text = (
        "-- a comment; with a semicolon\n"
        "CREATE TABLE t (x text);\n"
        "INSERT INTO t VALUES ('a;b'), ('it''s; fine');\n"
        "/* block; comment */\n"
        "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;\n"
        'SELECT "odd;name" FROM t\n'
    )
    statements = sql.split_sql(text)
    assert [s.line for s in statements] == [2, 3, 5, 6]
    assert statements[1].text == "INSERT INTO t VALUES ('a;b'), ('it''s; fine')"
    assert "$body$ SELECT 1; $body$" in statements[2].text
    assert statements[3].text == 'SELECT "odd;name" FROM t'


def test_sql_placeholders_render_as_literals() -> None:
    out = seeding.render_text(
        "SELECT {{ tenant_name }}, {{tenant_id}}",
        seeding.tenant_context(ACME),
        path=Path("x.sql"),
        tenant="acme",
        quote=sql.sql_literal,
    )
    assert out == "SELECT 'Acme''s Garage', '550e8400-e29b-41d4-a716-446655440001'"


def test_unknown_placeholder_names_file_line_and_tenant() -> None:
    with pytest.raises(TemplateError) as info:
        seeding.render_text("a\nb {{ nope }}", {"x": "y"}, path=Path("seeds/x.sql"), tenant="acme")
    text = str(info.value)
    assert "seeds/x.sql line 2" in text and "nope" in text and "tenant acme" in text


def test_shipped_seeds_render_for_a_tenant() -> None:
    sources = Sources(REPO / "seeds", REPO / "realms", 1 << 20)
    seeds = {
        s.name: seed_of(s, ACME, sources, None) for s in registry.services(options.resolve(environ={}, pyproject={}))
    }
    assert [f.path.name for f in seeds["postgres"]] == ["001_schema.sql", "002_data.sql"]
    inserts = [s.text for f in seeds["postgres"] for s in f.statements if s.text.startswith("INSERT INTO tenants")]
    assert inserts and "'550e8400-e29b-41d4-a716-446655440001'" in inserts[0]
    config = next(e for e in seeds["redis"] if e.key == "config")
    assert config.value["tenant_id"] == ACME.tenant_id
    assert seeds["keycloak"].representation["realm"] == "acme" and seeds["keycloak"].secret


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ('{"k": {"type": "zset", "value": [1]}}', "needs a type"),
        ('{"k": {"type": "hash", "value": []}}', "needs a type"),
        ('{"k": "{{ unknown }}"}', "unknown placeholder"),
        ("[1, 2]", "expected an object"),
    ],
)
def test_bad_redis_seed_files(tmp_path: Path, content: str, fragment: str) -> None:
    (tmp_path / "redis").mkdir()
    (tmp_path / "redis" / "bad.json").write_text(content)
    with pytest.raises(TemplateError) as info:
        redis_seeds.render_redis_entries(tmp_path, ACME)
    assert fragment in str(info.value) and "bad.json" in str(info.value)


def test_psql_meta_commands_are_refused(tmp_path: Path) -> None:
    (tmp_path / "postgres").mkdir()
    (tmp_path / "postgres" / "001.sql").write_text("SELECT 1;\n\\connect other\n")
    with pytest.raises(TemplateError, match="meta-commands"):
        sql.render_sql_files(tmp_path, ACME)


def test_content_hash_changes_with_content(tmp_path: Path) -> None:
    (tmp_path / "a.sql").write_text("x")
    first = seeding.content_hash(tmp_path)
    (tmp_path / "a.sql").write_text("y")
    assert seeding.content_hash(tmp_path) != first
