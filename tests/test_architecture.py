"""The shape of rag_core (docs/ARCHITECTURE.md): imports flow one way, storage knows rows and vectors
only, the engine never imports streamlit, and no module or class grows past what one can read at once.

Imports are read from the source (every `import`, also inside functions and under TYPE_CHECKING), so
a cycle hidden in a function body counts as a cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "rag_core"
MAX_MODULE_LINES = 600
MAX_CLASS_LINES = 250


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "samples" not in p.parts}


def _imports(path: Path) -> Iterator[str]:
    """Every module named by an import statement anywhere in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            for alias in node.names:  # `from rag_core import maps` names the module rag_core.maps
                yield f"{node.module}.{alias.name}"


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported in _imports(path):
            # the deepest rag_core module the import names (an attribute import names its module)
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name and imported != "rag_core":
                targets.add(imported)
        graph[name] = targets
    return graph


def _package_of(module: str) -> str:
    """A module's room: rag_core.store.local -> rag_core.store; rag_core.engine -> rag_core.engine."""
    parts = module.split(".")
    return ".".join(parts[:2])


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of the graph, as the path around it, or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt, [*path, nxt])):
                return found
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node, [node])):
            return found
    return None


def test_cycle_finder_finds_cycles() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_between_modules() -> None:
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_import_cycle_between_rooms() -> None:
    rooms: dict[str, set[str]] = {}
    for module, targets in _graph().items():
        room = _package_of(module)
        rooms.setdefault(room, set()).update(_package_of(t) for t in targets if _package_of(t) != room)
    cycle = _cycle(rooms)
    assert cycle is None, "import cycle between rooms: " + " -> ".join(cycle or [])


def test_storage_knows_rows_and_vectors_only() -> None:
    forbidden = ("rag_core.loaders", "rag_core.chunking", "rag_core.parsepool", "rag_core.embedding")
    for module, targets in _graph().items():
        if module.startswith("rag_core.store"):
            bad = sorted(t for t in targets if t.startswith(forbidden))
            assert not bad, f"{module} imports {bad}"


def test_engine_never_imports_streamlit() -> None:
    for name, path in _modules().items():
        assert not any(i.split(".")[0] == "streamlit" for i in _imports(path)), name


@pytest.mark.parametrize("module", sorted(_modules()))
def test_modules_and_classes_read_in_one_sitting(module: str) -> None:
    path = _modules()[module]
    source = path.read_text(encoding="utf-8")
    assert source.count("\n") <= MAX_MODULE_LINES, f"{module} has {source.count(chr(10))} lines"
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            assert lines <= MAX_CLASS_LINES, f"{module}.{node.name} has {lines} lines"


def test_the_graph_is_read_at_all() -> None:
    """The checks above mean something only if imports are found: the engine uses its services."""
    engine = _graph()["rag_core.engine"]
    assert {"rag_core.search", "rag_core.ingest", "rag_core.store", "rag_core.types"} <= engine
