"""The library's layers: imports only go downward, no circles, and design.md names every module."""

import ast
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "tracker_flavor"
LAYERS = ["concurrency", "config", "mlflow", "runs", "delivery", "watcher", ""]
"""Bottom to top; "" is the package's own modules, with the command line above them."""


def modules() -> dict[str, Path]:
    """Return every module of the library and the command line by dotted name."""
    found = {}
    for root, prefix in ((PACKAGE, "tracker_flavor"), (ROOT / "cli", "tracker_flavor.cli")):
        for path in root.rglob("*.py"):  # the cli link inside the package is not followed
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([prefix, *parts])] = path
    return found


def layer(module: str) -> int:
    """Return the position of a module's layer, bottom first; the command line is the top."""
    parts = module.split(".")
    if parts[1:2] == ["cli"]:
        return len(LAYERS)
    folder = parts[1] if len(parts) > 2 else ""
    return LAYERS.index(folder)


def imports(module: str, path: Path, known: set[str]) -> set[str]:
    """Return the library modules `module` imports, lazily or for type checking included."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module and name.startswith("tracker_flavor."):
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    """Return the import graph among the library's modules (packages' __init__ left out)."""
    found = modules()
    known = set(found)
    return {
        module: imports(module, path, known) - {module.rpartition(".")[0]}
        for module, path in found.items()
        if path.name != "__init__.py" or module == "tracker_flavor"
    }


def test_imports_only_go_down_the_layers():
    edges = graph()
    upward = [
        f"{module} -> {target}"
        for module, targets in edges.items()
        for target in targets
        if target in edges and layer(target) > layer(module)
    ]
    assert upward == []


def test_no_module_imports_in_a_circle():
    edges = graph()
    visiting, done, circles = set(), set(), []

    def visit(module: str, path: list[str]) -> None:
        visiting.add(module)
        for target in sorted(edges.get(module, ())):
            if target in visiting:
                circles.append(path[path.index(target) :] + [target])
            elif target not in done:
                visit(target, [*path, target])
        visiting.discard(module)
        done.add(module)

    for module in sorted(edges):
        if module not in done:
            visit(module, [module])
    assert circles == []


def test_design_names_the_owner_of_every_module():
    design = (ROOT / "docs" / "design.md").read_text()
    section = design.split("## Who owns what\n", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"\| `([\w/]+\.py)` \|$", section, flags=re.M))
    tree = {
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name != "__init__.py"
    } | {f"cli/{path.name}" for path in (ROOT / "cli").glob("*.py") if path.name != "__init__.py"}
    assert named == tree
