"""The import graph keeps the flow's layers (DESIGN.md): features -> training -> serving -> workflows -> CLI.

Every module of the project is parsed (not imported) and every import counted, those inside functions
too: a lazy import is still a dependency, and a lazy import that closes a cycle only hides it. A module
may import its own layer or any layer below; nothing imports upward, and no two modules depend on each
other through any chain.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# where each package's code lives (pyproject.toml's package-dir)
FOLDERS = {
    "sendtime": ROOT / "src" / "sendtime",
    "sendtime.configs": ROOT / "configs",
    "sendtime.features": ROOT / "features",
    "sendtime.training": ROOT / "training",
    "sendtime.serving": ROOT / "serving",
    "sendtime.experiments": ROOT / "experiments",
}
BASE = ("sendtime.schema", "sendtime.home", "sendtime.forking", "sendtime.spark_session", "sendtime.configs")
LAYERS = {  # prefix -> rank; a module's layer is that of its longest matching prefix
    **dict.fromkeys(BASE, 0),
    "sendtime.features": 1,
    "sendtime.training": 2,
    "sendtime.serving": 3,
    "sendtime.workflows": 4,
    "sendtime": 5,  # sendtime/__init__ and sendtime.cli: the front doors
    "sendtime.cli": 5,
    "sendtime.experiments": 5,
}
LAYER_NAMES = ["core", "features", "training", "serving", "workflows", "top"]


def module_files() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for package, folder in FOLDERS.items():
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([package, *parts])] = path
    return out


def imports_of(name: str, path: Path, modules: set[str]) -> set[str]:
    """The project modules `name` imports anywhere in its file; `from pkg import mod` counts as `pkg.mod`."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = name.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `import sendtime.x.y` of a non-module: its package
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


@functools.cache  # parsed once per session; callers only read it
def graph() -> dict[str, set[str]]:
    files = module_files()
    return {name: imports_of(name, path, set(files)) for name, path in files.items()}


def layer(module: str) -> int:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return LAYERS[best]


def upward_edges(g: dict[str, set[str]]) -> set[tuple[str, str]]:
    return {(a, b) for a, targets in g.items() for b in targets if layer(b) > layer(a)}


def tangles(g: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan): modules on a cycle together."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return found


def one_cycle(g: dict[str, set[str]], component: frozenset[str]) -> list[str]:
    """A shortest path from the component's first module back to itself, inside the component."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(g[v] & component):
                if w == start:
                    return paths[v] + [start]
                if w not in paths:
                    paths[w] = paths[v] + [w]
                    nxt.append(w)
        frontier = nxt
    return sorted(component)


def test_every_module_is_seen():
    g = graph()
    for name in (
        "sendtime.cli",
        "sendtime.features.load",
        "sendtime.training.registry",
        "sendtime.workflows.train",
    ):
        assert name in g, f"{name} not found: is FOLDERS in step with pyproject's package-dir?"
    assert "sendtime.training.registry" in g["sendtime.workflows.train"]


def test_nothing_imports_upward():
    g = graph()
    bad = sorted(upward_edges(g))
    lines = [f"{a} ({LAYER_NAMES[layer(a)]}) imports {b} ({LAYER_NAMES[layer(b)]})" for a, b in bad]
    assert not bad, "imports against the flow:\n" + "\n".join(lines)


def test_no_import_cycles():
    g = graph()
    found = list(tangles(g))
    lines = [f"{' -> '.join(one_cycle(g, c))} (all on a cycle: {', '.join(sorted(c))})" for c in found]
    assert not found, "import cycles:\n" + "\n".join(lines)


def test_the_graph_sees_lazy_and_relative_imports(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from . import b\n    import pkg.c.d\n")
    modules = {"pkg", "pkg.a", "pkg.b", "pkg.c"}
    assert imports_of("pkg.a", pkg / "a.py", modules) == {"pkg.b", "pkg.c"}
    g = {"x": {"y"}, "y": {"z"}, "z": {"x"}, "w": {"x"}}
    assert tangles(g) == [frozenset("xyz")]
    assert one_cycle(g, frozenset("xyz")) == ["x", "y", "z", "x"]


def top_level_names(path: Path) -> set[str]:
    """What `from module import x` can find in a module: its top-level definitions and imports."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):  # `A = ...` and `A, B = ...`
            names |= {n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.If | ast.Try):  # e.g. `if TYPE_CHECKING:` or try/except imports
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    names |= {(a.asname or a.name).split(".")[0] for a in inner.names}
    return names


def test_every_import_of_the_project_names_something_that_exists():
    """A moved module or function leaves no import behind, in the code or the tests, lazy ones included
    (they fail only when their function runs: a benchmark or a rarely used command)."""
    files = module_files()
    names = {module: top_level_names(path) for module, path in files.items()}
    sources = [*files.values(), *sorted((ROOT / "tests").rglob("*.py"))]
    dangling = []
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                missing = [
                    a.name for a in node.names if a.name.startswith("sendtime") and a.name not in files
                ]
            elif (
                isinstance(node, ast.ImportFrom)
                and not node.level
                and (node.module or "").startswith("sendtime")
            ):
                if node.module not in files:
                    missing = [node.module]
                else:
                    missing = [
                        f"{node.module}.{a.name}"
                        for a in node.names
                        if a.name != "*"
                        and a.name not in names[node.module]
                        and f"{node.module}.{a.name}" not in files
                    ]
            else:
                continue
            dangling += [f"{path.relative_to(ROOT)}:{node.lineno}: {m}" for m in missing]
    assert not dangling, "imports of names that do not exist:\n" + "\n".join(dangling)
