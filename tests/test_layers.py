"""The import rules of design.md §8, checked on the source (AST, nothing is imported): the HTTP
routes reach the database only through use cases, the top-level packages form no cycle, no
production module imports the tests, and pricing/ (the pure domain) imports none of our packages.

Each failure names the module and the import that break the rule."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The production packages: what pyproject.toml ships as code (templates/ holds no imports of ours).
PACKAGES = (
    "actors",
    "serve",
    "pricing",
    "invoicing",
    "payments",
    "forecasting",
    "infra",
    "cli",
    "notifications",
)
ROUTES = "serve.routes"


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted: serve.routes.audit
    target: str  # what it imports, dotted: infra.audit_store (`from infra import audit_store` too)
    line: int

    def __str__(self) -> str:
        return f"{self.module} (line {self.line}) imports {self.target}"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _targets(node: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        if node.level:  # relative: resolved against the importing module's package
            package = module.split(".") if is_package else module.split(".")[:-1]
            base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        yield base
        # `from infra import audit_store` imports the module infra.audit_store.
        yield from (f"{base}.{alias.name}" for alias in node.names if alias.name != "*")


@cache  # parsed once per session: every test reads the same source
def production_modules() -> tuple[tuple[str, bool, tuple[ast.AST, ...]], ...]:
    """(dotted name, is a package, every node) of each production module."""
    return tuple(
        (
            _module_name(path),
            path.name == "__init__.py",
            tuple(ast.walk(ast.parse(path.read_text(), str(path)))),
        )
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    )


@cache
def production_imports() -> tuple[Import, ...]:
    """Every import in every production module, wherever it sits (functions, TYPE_CHECKING)."""
    return tuple(
        Import(module, target, getattr(node, "lineno", 0))
        for module, is_package, nodes in production_modules()
        for node in nodes
        for target in _targets(node, module, is_package)
    )


def _forbidden_in_routes(target: str) -> bool:
    """sqlalchemy, infra.database and any infra.<x>_store (design.md §8: routes call use cases)."""
    parts = target.split(".")
    if parts[0] == "sqlalchemy":
        return True
    return parts[0] == "infra" and len(parts) > 1 and (parts[1] == "database" or parts[1].endswith("_store"))


def test_routes_reach_the_database_only_through_use_cases() -> None:
    offenders = [
        str(imp)
        for imp in production_imports()
        if imp.module.startswith(ROUTES + ".") and _forbidden_in_routes(imp.target)
    ]
    assert offenders == [], "a route imports SQL or a store; call a use case instead:\n" + "\n".join(
        offenders
    )


def test_no_cycle_between_packages() -> None:
    edges: dict[str, dict[str, Import]] = {package: {} for package in PACKAGES}
    for imp in production_imports():
        source, target = imp.module.split(".")[0], imp.target.split(".")[0]
        if target in PACKAGES and target != source:
            edges[source].setdefault(target, imp)  # the first import that makes the edge, as evidence
    cycles = _cycles({package: set(targets) for package, targets in edges.items()})
    described = [
        " -> ".join(cycle + [cycle[0]])
        + "\n  "
        + "\n  ".join(str(edges[a][b]) for a, b in zip(cycle, cycle[1:] + cycle[:1]))
        for cycle in cycles
    ]
    assert described == [], "package cycles:\n" + "\n".join(described)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected component of more than one package (Tarjan),
    enough to name the imports to break."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_cycle_within(set(component), graph) for component in components]


def _cycle_within(component: set[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest path back to its first member, inside one strongly connected component."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for successor in sorted(graph[node] & component):
                if successor == start:
                    return paths[node]
                if successor not in paths:
                    paths[successor] = paths[node] + [successor]
                    following.append(successor)
        frontier = following
    raise AssertionError(f"{sorted(component)} is strongly connected, so it has a cycle")


def test_no_production_module_imports_the_tests() -> None:
    offenders = [str(imp) for imp in production_imports() if imp.target.split(".")[0] == "tests"]
    assert offenders == [], "production code imports the tests:\n" + "\n".join(offenders)


def test_pricing_imports_none_of_our_packages() -> None:
    by_statement: dict[tuple[str, int], Import] = {}
    for imp in production_imports():
        top = imp.target.split(".")[0]
        if imp.module.split(".")[0] == "pricing" and top in PACKAGES and top != "pricing":
            # `from infra import settings` is one statement: name it by its longest target.
            kept = by_statement.setdefault((imp.module, imp.line), imp)
            if len(imp.target) > len(kept.target):
                by_statement[imp.module, imp.line] = imp
    offenders = [str(imp) for imp in by_statement.values()]
    assert offenders == [], "pricing/ is the pure domain, yet:\n" + "\n".join(offenders)


def test_the_credit_ledger_has_one_writer() -> None:
    """Only invoicing/credits.py `record_entries` calls the store's ledger append (design.md §8)."""
    writer = "invoicing.credits"
    offenders = []
    for module, _, nodes in production_modules():
        for node in nodes:
            if isinstance(node, ast.Call) and module != writer:
                name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
                if name == "append_ledger_entry":
                    offenders.append(f"{module} (line {node.lineno}) calls append_ledger_entry")
    assert offenders == [], f"write the credit ledger through {writer}.record_entries:\n" + "\n".join(
        offenders
    )


def test_the_checks_see_what_they_check() -> None:
    """The walk finds the imports the rules are about, so an empty list of offenders means clean,
    not blind: a relative import resolves, and `from infra import x_store` names the store."""
    tree = ast.parse("from infra import audit_store\nfrom . import sibling\n")
    first, second = tree.body
    assert "infra.audit_store" in set(_targets(first, "serve.routes.audit", False))
    assert "serve.routes.sibling" in set(_targets(second, "serve.routes.audit", False))
    assert _forbidden_in_routes("infra.audit_store") and _forbidden_in_routes("sqlalchemy.exc")
    assert not _forbidden_in_routes("infra.settings")
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert any(imp.module == "serve.routes.payments" for imp in production_imports())
