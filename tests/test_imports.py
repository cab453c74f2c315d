"""The package's import graph has no cycle, counting imports inside functions too, and no
import runs up a floor: a module that needs another one later in the flow (data →
strategies/backbones/models → objectives → training → protocols → harness → reports → perf
→ commands) may not be imported back by it, lazily or not."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "asma_bench"


def module_files() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """module → the package modules it imports anywhere in its file (TYPE_CHECKING blocks
    excluded: they never run)."""
    files = module_files()

    def owner(name: str) -> str:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = {
            id(n)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)
        }
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                deps |= {owner(a.name) for a in node.names if a.name.startswith("asma_bench")}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package
                    for _ in range(node.level - 1):
                        anchor = anchor.rpartition(".")[0]
                    base = f"{anchor}.{base}" if base else anchor
                if base.startswith("asma_bench"):
                    for a in node.names:
                        deps.add(owner(f"{base}.{a.name}"))
        graph[name] = deps - {name, ""}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (iterative Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_walker_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    # api imports the protocols' checkpoint helpers inside load_model
    assert "asma_bench.protocols.unit_files" in graph["asma_bench.api"]


def test_no_import_cycle_in_the_package():
    assert cycles(import_graph()) == []


#: The package's floors, lowest first: a module imports only from its own floor or below.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("asma_bench", "errors", "registry", "fileio", "environment"),
    ("config",),
    ("data",),
    ("strategies", "backbones", "models"),
    ("objectives",),
    ("training",),
    ("protocols", "predict"),
    ("harness",),
    ("reports",),
    ("api",),
    ("perf",),
    ("commands",),
    ("cli", "__main__"),
)


def floor_of(module: str) -> int:
    parts = module.split(".")
    room = parts[1] if len(parts) > 1 else parts[0]
    for level, rooms in enumerate(LAYERS):
        if room in rooms:
            return level
    raise AssertionError(f"{module}: no floor for {room!r} in LAYERS (add the new package)")


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{a} -> {b}" for a, deps in graph.items() for b in deps if floor_of(b) > floor_of(a)
    )


def test_the_layering_check_sees_an_upward_import():
    graph = {"asma_bench.training.loop": {"asma_bench.protocols.linear"}}
    assert upward_imports(graph) == ["asma_bench.training.loop -> asma_bench.protocols.linear"]
    assert upward_imports({"asma_bench.protocols.linear": {"asma_bench.training.loop"}}) == []


def test_nothing_imports_upward():
    """protocols/ holds protocols; the training machinery (training/) and the models they
    train (models/) sit below it and never import a protocol."""
    assert upward_imports(import_graph()) == []
