"""Ingest holds two rooms: the format readers and the synthetic generator (``synthetic/``).

Read from the source with ``ast`` (imports inside functions count too): the readers never
import the generator, the generator never imports a reader, and no ingest module takes
part in an import circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import stages.ingest

ROOT = Path(stages.ingest.__file__).parent
PACKAGE = "stages.ingest"
SYNTHETIC = f"{PACKAGE}.synthetic"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGE, *parts])


def _imports(path: Path, name: str, modules: set[str]) -> set[str]:
    """The ingest ``modules`` that ``path`` imports (``from . import x`` counts as module ``x``, not ``.``)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            target = ".".join(p for p in (base, node.module or "") if p)
            found.update(f"{target}.{a.name}" if f"{target}.{a.name}" in modules else target for a in node.names)
    return found & modules - {name}


def _graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in ROOT.rglob("*.py") if "__pycache__" not in p.parts}
    return {name: _imports(path, name, set(paths)) for name, path in paths.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path that starts and ends with the same module, or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt]
            if nxt not in state and (found := visit(nxt, [*path, nxt])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def test_the_cycle_finder_finds_a_circle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_ingest_modules_form_no_import_circle() -> None:
    graph = _graph()
    assert f"{PACKAGE}.readers" in graph and f"{SYNTHETIC}.generator" in graph, sorted(graph)
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_readers_and_generator_do_not_import_each_other() -> None:
    graph = _graph()
    synthetic = {m for m in graph if m == SYNTHETIC or m.startswith(SYNTHETIC + ".")}
    cli = {f"{PACKAGE}.__main__", f"{PACKAGE}.sources"}  # the CLI chooses between the two rooms
    readers = set(graph) - synthetic - cli
    for name in sorted(readers):
        assert not graph[name] & synthetic, f"{name} imports the generator: {sorted(graph[name] & synthetic)}"
    for name in sorted(synthetic):
        assert not graph[name] & readers, f"{name} imports a reader module: {sorted(graph[name] & readers)}"
