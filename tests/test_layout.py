"""The package's shape: no import cycles (not even hidden in a function), every module imports
on its own in any order, and the top level stays small enough to show the data path."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "lark_cards"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
# ``python -m lark_cards`` runs the CLI when imported; it is a script, not a library module.
LIBRARY = sorted(name for name in MODULES if not name.endswith("__main__"))


def runtime_imports(path: Path) -> set[str]:
    """The lark_cards modules ``path`` imports when run, wherever the import statement sits
    (function bodies included); ``if TYPE_CHECKING:`` blocks are for the type checker only."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {module for module in found if module in MODULES and module != name}


def test_no_import_cycles() -> None:
    graph = {name: runtime_imports(path) for name, path in MODULES.items()}
    # A package's __init__ importing its own submodules is how facades work; a submodule
    # importing its package back is the cycle that matters, and is kept in the graph.
    for name in graph:
        graph[name] = {dep for dep in graph[name] if not dep.startswith(name + ".")}
    cycles: list[list[str]] = []

    def walk(node: str, trail: list[str], done: set[str]) -> None:
        for dep in sorted(graph[node]):
            if dep in trail:
                cycles.append([*trail[trail.index(dep) :], dep])
            elif dep not in done:
                walk(dep, [*trail, dep], done)
        done.add(node)

    finished: set[str] = set()
    for start in sorted(graph):
        if start not in finished:
            walk(start, [start], finished)
    assert cycles == []


def test_every_module_imports_alone_in_any_order() -> None:
    names = LIBRARY
    script = (
        "import importlib, random, sys\n"
        f"names = {names!r}\n"
        "for seed in range(3):\n"
        "    random.Random(seed).shuffle(names)\n"
        "    for name in names:\n"
        "        for loaded in [m for m in sys.modules if m.split('.')[0] == 'lark_cards']:\n"
        "            del sys.modules[loaded]\n"
        "        importlib.import_module(name)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PACKAGE.parent,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_top_level_holds_at_most_eight_modules() -> None:
    loose = sorted(
        p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py")
    )
    assert len(loose) <= 8, loose


def test_no_module_is_over_four_hundred_lines() -> None:
    long = {
        name: lines
        for name, path in MODULES.items()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > 400
    }
    assert long == {}
