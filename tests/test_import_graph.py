"""The import graph of textgym/, agents/ and experiments/ has no cycles and no private names across modules.

Read from the source with ``ast`` (no module is imported): every ``import`` and ``from ... import`` counts, the
ones inside functions too, since an import moved into a function to dodge a cycle is still a cycle. Imports under
``if TYPE_CHECKING:`` count as well: a type-only cycle is the same tangle to a reader.

    .venv/bin/python tests/test_import_graph.py     # prints the cycles, private imports and largest modules
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("textgym", "agents", "experiments")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(path): path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}


def _target(name: str, modules: dict[str, Path]) -> str | None:
    """The project module an imported dotted name lives in (``agents.base.Agent`` -> ``agents.base``)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports(modules: dict[str, Path]) -> tuple[dict[str, set[str]], list[str]]:
    """The import graph between project modules, and every ``from a import _private`` across modules."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    private: list[str] = []
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    target = _target(alias.name, modules)
                    if target and target != name:
                        graph[name].add(target)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package, up level - 1
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    target = submodule if submodule in modules else _target(base, modules)
                    if not target or target == name:
                        continue
                    graph[name].add(target)
                    if alias.name.startswith("_") and not alias.name.startswith("__") and submodule not in modules:
                        private.append(f"{name} imports {target}.{alias.name}")
    return graph, private


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module ``start`` imports, directly or through others."""
    seen: set[str] = set()
    todo = list(graph[start])
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(graph[name])
    return seen


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other (directly or around a loop), each sorted."""
    reach = {name: reachable(graph, name) for name in graph}
    groups = {frozenset({name} | {other for other in reach[name] if name in reach[other]})
              for name in graph if name in reach[name]}
    return sorted(sorted(group) for group in groups)


def test_no_import_cycles() -> None:
    graph, _ = imports(project_modules())
    assert cycles(graph) == [], "modules that import each other (move what they share one level down)"


def test_no_private_imports_across_modules() -> None:
    _, private = imports(project_modules())
    assert private == [], "private names imported from another module (make them public or move them)"


def test_the_checker_sees_a_cycle_and_a_private_import(tmp_path: Path) -> None:
    # The two checks above pass on any tree where the reader finds nothing; here it must find both.
    (tmp_path / "a.py").write_text("def f():\n    from b import _g\n")
    (tmp_path / "b.py").write_text("import a\n_g = 1\n")
    modules = {"a": tmp_path / "a.py", "b": tmp_path / "b.py"}
    graph, private = imports(modules)
    assert cycles(graph) == [["a", "b"]]
    assert private == ["a imports b._g"]


if __name__ == "__main__":
    modules = project_modules()
    graph, private = imports(modules)
    print("cycles:", *[" <-> ".join(group) for group in cycles(graph)] or ["none"], sep="\n  ")
    print("private imports across modules:", *private or ["none"], sep="\n  ")
    sizes = sorted(((len(path.read_text().splitlines()), name) for name, path in modules.items()), reverse=True)
    print("largest modules:", *(f"{lines:5d} {name}" for lines, name in sizes[:10]), sep="\n  ")
    sys.exit(bool(cycles(graph) or private))
