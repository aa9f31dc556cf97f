"""The shape the project holds itself to (how we write code): small modules, short functions, no import
cycles, formatting left to the formatter, services named only in their own units and the registry (in
code and in every string), a small service core with capabilities apart, no service importing a
backend, units that keep no call order, and one way to wait."""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "driveops_env"
SERVICES = ("postgres", "redis", "mongo", "keycloak", "ferretdb")
# what particular servers and their clients say, and their client programs: their units' to know
SERVER_WORDS = ("psql", "wrongpass", "noperm", "pg_hba", "psycopg", "invalid_grant")
# where a service may be named: its own unit, and the registry's table
UNITS = ("services/postgres/", "services/redis/", "services/mongo/", "services/keycloak/", "services/registry.py")


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def test_modules_under_400_lines_and_functions_under_50() -> None:
    long_modules, long_functions = [], []
    for path in _modules().values():
        source = path.read_text()
        if len(source.splitlines()) > 400:
            long_modules.append(str(path.relative_to(PACKAGE)))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                if node.end_lineno - node.lineno + 1 > 50:
                    long_functions.append(f"{path.relative_to(PACKAGE)}:{node.name}")
    assert long_modules == [] and long_functions == []


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules ``name`` imports, at the top or inside a function alike."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base]).strip(".")
            submodules = {f"{base}.{alias.name}" for alias in node.names}
            found |= submodules
            if not submodules <= set(modules):  # names of the module itself, not only its submodules
                found.add(base)
    return {target for target in found if target in modules and target != name}


def test_the_import_graph_has_no_cycle() -> None:
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str], done: set[str]) -> None:
        if node in trail:
            cycles.append([*trail[trail.index(node) :], node])
            return
        if node in done:
            return
        for target in sorted(graph[node]):
            visit(target, [*trail, node], done)
        done.add(node)

    done: set[str] = set()
    for name in sorted(graph):
        visit(name, [], done)
    assert cycles == []


def _code_words(path: Path) -> set[str]:
    """Names and every string of a module (docstrings, messages, help texts included), not comments."""
    words: set[str] = set()
    for token in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if token.type in (tokenize.NAME, tokenize.STRING):
            words.add(token.string.lower())
    return words


def test_only_the_units_and_the_registry_name_a_service() -> None:
    naming = {}
    for path in _modules().values():
        relative = str(path.relative_to(PACKAGE))
        if relative.startswith(UNITS):
            continue
        words = _code_words(path)
        named = sorted(s for s in (*SERVICES, *SERVER_WORDS) if any(s in word for word in words))
        if named:
            naming[relative] = named
    assert naming == {}


def test_the_service_core_is_small_and_capabilities_are_apart() -> None:
    from driveops_env.services.base import Service

    base = PACKAGE / "services" / "base.py"
    assert len(base.read_text().splitlines()) < 250
    hooks = [n for n, v in vars(Service).items() if callable(v) and not n.startswith("_")]
    assert len(hooks) <= 12, hooks


def test_no_service_imports_a_backend() -> None:
    modules = _modules()
    found = {
        name: sorted(t for t in _imports(name, path, modules) if t.startswith("driveops_env.backends"))
        for name, path in modules.items()
        if name.startswith(("driveops_env.services", "driveops_env.images"))
    }
    assert {name: targets for name, targets in found.items() if targets} == {}


def _calls_and_asserts(path: Path) -> tuple[list[str], list[str]]:
    """A module's calls of a ``sleep``, and the messages of its assertions that speak of an order."""
    sleeps, orders = [], []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
            if name == "sleep":
                sleeps.append(f"{path.name}:{node.lineno}")
        if isinstance(node, ast.Assert) and node.msg is not None and "first" in ast.unparse(node.msg):
            orders.append(f"{path.name}:{node.lineno}")
    return sleeps, orders


def test_one_way_to_wait_and_no_call_order_assumed() -> None:
    sleeps, orders = [], []
    for path in _modules().values():
        found = _calls_and_asserts(path)
        sleeps += found[0] if path.name != "readiness.py" else []
        orders += found[1]
    assert sleeps == [], "poll with readiness.wait_until, beat with readiness.ticks"
    assert orders == [], "a unit's hooks get what they need as arguments, in any order"


def test_the_formatter_formats() -> None:
    """No skip-the-formatter comments packing lines: the formatter decides how lines break."""
    marker = "fmt" + ": skip"
    roots = [PACKAGE, PACKAGE.parent / "tests", PACKAGE.parent / "bench", PACKAGE.parent / "noxfile.py"]
    sources = [p for root in roots for p in ([root] if root.is_file() else sorted(root.rglob("*.py")))]
    assert [str(p) for p in sources if marker in p.read_text()] == []


def test_a_plugged_in_service_whose_package_is_gone_is_named_not_a_traceback() -> None:
    import importlib.metadata

    from driveops_env.errors import UsageError
    from driveops_env.services import registry

    ghost = importlib.metadata.EntryPoint(name="ghost", value="no_such_module:Ghost", group=registry.ENTRY_POINTS)
    with pytest.raises(UsageError) as refused:
        registry._plugged(ghost)
    assert "'ghost'" in str(refused.value) and "pip uninstall" in str(refused.value)
