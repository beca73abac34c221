"""The package layout holds: the subpackages import one another without a cycle, lazy
imports inside functions included, and each stays below the packages that use it.

Read from the source (ast), nothing imported: the same graph anyone can draw with
`python -m pytest tests/test_layout.py -q -rA` (the test prints the layers it found).
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "torchsm"
# from the ground up: a package may import those on its left, never one on its right
# (cluster stands above hooks so that the hook path, which must never load redis-py, cannot
# import it)
LAYERS = ["storage", "mirror", "usage", "work", "alerts", "agent", "endings", "dreams",
          "hooks", "cluster", "supervisor", "observe", "cli"]


def unit_of(module: str) -> str:
    """The package a module belongs to; a top-level module is its own unit."""
    parts = module.split(".")
    if len(parts) < 2:
        return "torchsm"
    return parts[1] if (PACKAGE / parts[1]).is_dir() else "." + parts[1]


def imported(node: ast.AST) -> list[str]:
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        if node.module == "torchsm":
            return [f"torchsm.{a.name}" for a in node.names]
        if node.module.startswith("torchsm."):
            return [node.module]
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.startswith("torchsm.")]
    return []


def package_graph() -> dict[str, dict[str, set[str]]]:
    """unit -> unit it imports -> the files that do (every import, lazy ones too)."""
    graph: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        source = unit_of(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            for module in imported(node):
                target = unit_of(module)
                if target != source:
                    graph[source][target].add(str(path.relative_to(PACKAGE.parent)))
    return graph


def cycles(graph: dict[str, dict[str, set[str]]]) -> list[list[str]]:
    """The strongly connected parts of more than one unit (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(unit: str) -> None:
        index[unit] = low[unit] = len(index)
        stack.append(unit)
        for other in graph.get(unit, {}):
            if other not in index:
                visit(other)
                low[unit] = min(low[unit], low[other])
            elif other in stack:
                low[unit] = min(low[unit], index[other])
        if low[unit] == index[unit]:
            part = []
            while (other := stack.pop()) != unit:
                part.append(other)
            if part:
                found.append(sorted([unit, *part]))

    for unit in sorted(set(graph) | {u for deps in graph.values() for u in deps}):
        if unit not in index:
            visit(unit)
    return found


def test_every_subpackage_has_its_layer():
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(LAYERS)


def test_no_package_imports_another_in_a_circle():
    graph = package_graph()
    assert [(part, {a: sorted(b for b in graph[a] if b in part) for a in part})
            for part in cycles(graph) if any(not u.startswith(".") for u in part)] == []


@pytest.mark.parametrize("lower", LAYERS)
def test_a_package_never_imports_one_above_it(lower):
    above = LAYERS[LAYERS.index(lower) + 1:]
    graph = package_graph()
    assert {upper: sorted(graph[lower][upper]) for upper in above if upper in graph[lower]} == {}


def test_the_top_level_modules_import_no_package_but_storage_and_mirror():
    """The vocabulary and the Nova's state machine (novas.py writes its transitions to the
    store and the mirror's outbox) stand below every concept package; `__main__` is the
    entry point, above them all."""
    graph = package_graph()
    allowed = {"storage", "mirror"}
    above = {unit: sorted(dep for dep in deps if dep in LAYERS and dep not in allowed)
             for unit, deps in graph.items() if unit.startswith(".") and unit != ".__main__"}
    assert {unit: deps for unit, deps in above.items() if deps} == {}


def test_the_probe_sees_a_circle():
    graph = {"a": {"b": {"x"}}, "b": {"c": {"y"}}, "c": {"a": {"z"}}, "d": {"a": {"w"}}}
    assert cycles(graph) == [["a", "b", "c"]]


# --- data access: each table through the package that owns it ------------------------------

OWNERS = {
    "storage": {"novas", "history", "hook_runs", "messages", "snapshots", "alembic_version",
                "sqlite_master"},
    ".novas": {"novas", "history"},  # the Nova's state machine writes its own transitions
    "usage": {"sessions", "account_windows", "usage_grants", "account_peers"},
    "work": {"work_items", "wake_signals"},
    "dreams": {"dreams", "insights", "memories", "memory_writers"},
    "alerts": {"alerts"},
    "mirror": {"outbox"},
}
# each read side's one query module: it may read any table, and write none but its own
READ_SIDES = {"torchsm/observe/metrics.py", "torchsm/observe/series.py",
              "torchsm/alerts/conditions.py", "torchsm/dreams/experience.py"}
TABLES = set().union(*OWNERS.values())
SQL = re.compile(r"\b(FROM|JOIN|UPDATE|INSERT(?: OR [A-Z]+)? INTO|DELETE FROM|REPLACE INTO)"
                 r"\s+([a-z_]+)\b")


def table_uses() -> list[tuple[str, str, str, str]]:
    """(file, unit, verb, table) for every table named in a string of the package."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        unit = unit_of(".".join(parts))
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for verb, table in SQL.findall(node.value):
                    if table in TABLES:
                        found.append((str(path.relative_to(PACKAGE.parent)), unit, verb,
                                      table))
    return found


def test_each_table_is_read_and_written_through_the_package_that_owns_it():
    """A module reads (FROM) and writes only its package's tables; a JOIN may reach the
    rows a table refers to (one query, one snapshot); a read side's query module reads
    anything. Anything else goes through the owner's functions, so that no rule (what an
    open item is, which sessions count as refused) is copied beside its table."""
    stray = set()
    for path, unit, verb, table in table_uses():
        if table in OWNERS.get(unit, ()) or verb == "JOIN":
            continue
        if path in READ_SIDES and verb == "FROM":
            continue
        stray.add((path, verb, table))
    assert sorted(stray) == []


def test_the_table_probe_sees_sql():
    assert ("torchsm/work/work_queue.py", "work", "UPDATE", "work_items") in table_uses()
