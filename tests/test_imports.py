"""No import cycles inside `assistant/`, counting every import a module can run.

Python tolerates a cycle as long as nobody touches a name before it is
defined, which is why cycles hide: a function-level `from ..cli import x` in a
module that `cli` imports works today and breaks the day someone moves it to
the top. So the graph counts module-level imports, imports inside functions
and `if TYPE_CHECKING:` blocks alike: a dependency is a dependency.

The walk is plain `ast` (nothing is imported), so it can read any tree: set
`ASSISTANT_IMPORTS_ROOT` to another checkout's `assistant/` folder to see its
cycles printed.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

from .conftest import ROOT

PACKAGE = "assistant"


def module_names(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under `root` (the package folder)."""
    names: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join([PACKAGE, *parts])] = path
    return names


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute name `from <level dots><target>` means inside `module`."""
    if level == 0:
        return target or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]  # a module's relative imports start from its package
    if level > 1:
        base = base[: -(level - 1)]
    return ".".join([*base, *([target] if target else [])])


def imports_of(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of the package that `module` imports, anywhere in its file."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node.level, node.module)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                # `from . import x` imports the submodule x when x is one, else a name of base
                found.add(sub if sub in known else base)
    result = set()
    for name in found:
        # `import assistant.a.b` runs assistant.a.b; keep the longest known prefix
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name and name != module:
            result.add(name)
    return result


def import_graph(root: Path) -> dict[str, set[str]]:
    known = module_names(root)
    return {name: imports_of(name, path, known) for name, path in known.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component (Tarjan), each as a closed path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_cycle_in(graph, set(c)) for c in components]


def describe(graph: dict[str, set[str]], cycle: list[str]) -> str:
    """A cycle as `a -> b -> a`, plus the other modules tangled with it, if any."""
    others = sorted(_component(graph, cycle[0]) - set(cycle))
    tangle = f"  (also in this tangle: {', '.join(others)})" if others else ""
    return " -> ".join(cycle) + tangle


def _component(graph: dict[str, set[str]], start: str) -> set[str]:
    """The modules both reachable from `start` and reaching it."""

    def reach(edges: dict[str, set[str]]) -> set[str]:
        seen, todo = {start}, [start]
        while todo:
            for w in edges.get(todo.pop(), ()):
                if w not in seen:
                    seen.add(w)
                    todo.append(w)
        return seen

    reverse: dict[str, set[str]] = {}
    for v, targets in graph.items():
        for w in targets:
            reverse.setdefault(w, set()).add(v)
    return reach(graph) & reach(reverse)


def _cycle_in(graph: dict[str, set[str]], members: set[str]) -> list[str]:
    """A shortest closed path through the component's first module (breadth-first)."""
    start = min(members)
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & members):
            if w == start:
                return [*paths[v], start]
            if w not in paths:
                paths[w] = [*paths[v], w]
                queue.append(w)
    return sorted(members)  # unreachable for a strongly connected component


def test_graph_sees_function_level_and_relative_imports(tmp_path: Path):
    """The walker itself, on a made-up package: it must see what the real check relies on."""
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from .sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("from .. import a\n")
    (pkg / "sub" / "b.py").write_text("from ..a import f\nfrom . import c\n")
    (pkg / "sub" / "c.py").write_text("import assistant.a\n")
    graph = import_graph(pkg)
    assert graph["assistant.a"] == {"assistant.sub.b"}
    assert graph["assistant.sub"] == {"assistant.a"}
    assert graph["assistant.sub.b"] == {"assistant.a", "assistant.sub.c"}
    assert graph["assistant.sub.c"] == {"assistant.a"}
    cycles = find_cycles(graph)
    assert cycles == [["assistant.a", "assistant.sub.b", "assistant.a"]]


def test_no_import_cycles():
    root = Path(os.environ.get("ASSISTANT_IMPORTS_ROOT") or ROOT / PACKAGE)
    graph = import_graph(root)
    assert len(graph) > 40, f"found only {len(graph)} modules under {root}"
    cycles = find_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(describe(graph, c) for c in cycles)


def test_cli_context_is_defined_once_and_no_import_hides_at_the_bottom():
    """The click context settings live in `cli/common.py` only, and no module imports
    under `noqa: E402` (the mark of an import placed late to dodge a cycle)."""
    root = Path(os.environ.get("ASSISTANT_IMPORTS_ROOT") or ROOT / PACKAGE)
    defined, late = [], []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if "noqa: E402" in text:
            late.append(str(path.relative_to(root)))
        for node in ast.parse(text).body:
            if isinstance(node, ast.Assign) and any(
                getattr(t, "id", None) == "CONTEXT" for t in node.targets
            ):
                defined.append(str(path.relative_to(root)))
    assert defined == ["cli/common.py"], defined
    assert not late, late


def test_no_module_is_named_like_a_standard_library_module():
    """A module named `http` or `keyword` reads as the standard library's in tracebacks,
    greps and editors, and an absolute import of it inside the package would get the wrong one."""
    import sys

    root = Path(os.environ.get("ASSISTANT_IMPORTS_ROOT") or ROOT / PACKAGE)
    clashes = {
        name for name in module_names(root) if name.rpartition(".")[2] in sys.stdlib_module_names
    }
    assert clashes == set()
