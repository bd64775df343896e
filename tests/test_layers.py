"""The package order of detect.LAYERS holds for every import, those inside functions included: no package imports
one above it, and no package or module imports itself back through others."""

from __future__ import annotations

import ast
from pathlib import Path

import detect

PACKAGE = Path(detect.__file__).parent
ENTRY_POINTS = ("detect", "detect.__main__", "detect.cli", "detect.analyze", "detect.convert", "detect.sweep")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The modules of detect that `path` imports anywhere in it (`from a import b` counts a.b where b is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found |= {f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module
                      for alias in node.names}
    return {name for name in found if name.split(".")[0] == "detect"}


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: imported_modules(path, set(paths)) - {name} for name, path in paths.items()}


def layer(module: str) -> int | None:
    """The index in detect.LAYERS of the package that holds `module`; None for the entry points."""
    if module in ENTRY_POINTS:
        return None
    for index, package in enumerate(detect.LAYERS):
        if module == package or module.startswith(package + "."):
            return index
    raise AssertionError(f"{module} is in no layer of detect.LAYERS: put it in a package or name it there")


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected group of more than one node (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def package_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_no_import_runs_up_the_layers() -> None:
    upward = [f"{source} -> {target}" for source, targets in import_graph().items() for target in sorted(targets)
              if layer(source) is not None and layer(target) is not None and layer(target) > layer(source)]
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(upward)


def test_no_import_circle_between_modules_or_packages() -> None:
    graph = import_graph()
    packages: dict[str, set[str]] = {}
    for source, targets in graph.items():
        if source not in ENTRY_POINTS:
            packages.setdefault(package_of(source), set()).update(
                package_of(target) for target in targets if target not in ENTRY_POINTS)
    for name in packages:
        packages[name].discard(name)
    found = cycles({source: targets - set(ENTRY_POINTS) for source, targets in graph.items()}) + cycles(packages)
    assert not found, "import circles:\n" + "\n".join(" <-> ".join(group) for group in found)


def test_the_checks_catch_an_upward_import_and_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert layer("detect.utils.errors") < layer("detect.inference.detector")
