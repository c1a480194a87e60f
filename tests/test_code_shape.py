"""The package's shape: layers import only downward and without cycles, no function runs over 80
lines, parameters past the fourth are keyword-only, and the trainer knows no feature by name."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "clusteringsdf"

# Each top-level module or sub-package, by layer: a module may import from its own layer's
# package and from lower layers only.
LAYERS = [
    ["errors", "files"],
    ["config"],
    ["data"],
    ["prepare", "sampling"],
    ["model"],
    ["losses"],
    ["methods"],
    ["runs"],
    ["training"],
    ["evaluation"],
    ["inference"],
    ["api"],
    ["viewer"],
    ["batch"],
    ["cli"],
    ["__main__"],
]
# The package's __init__ is its face (``__version__``; a lazy ``load_run`` from api): any module may
# import it and it may import any; the cycle check still covers its edges.
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}


def modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)
        out[name] = (ast.parse(path.read_text()), path.name == "__init__.py")
    return out


def imports(name: str, tree: ast.Module, is_package: bool, known: set[str]) -> set[str]:
    """Package modules ``name`` imports (relative to the package), anywhere in the file; ``from
    package import module`` counts as importing the module."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = [] if name == "__init__" else name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            elif node.module and node.module.startswith("clusteringsdf"):
                target = node.module.removeprefix("clusteringsdf").lstrip(".")
            else:
                continue
            for alias in node.names:
                module = f"{target}.{alias.name}" if target else alias.name
                found.add(module if module in known else target or "__init__")
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("clusteringsdf").lstrip(".") or "__init__" for a in node.names if a.name.startswith("clusteringsdf")}
    return found


def test_layers_import_only_downward_and_the_import_graph_has_no_cycle():
    graph = {}
    upward = []
    found = modules()
    for name, (tree, is_package) in found.items():
        graph[name] = imports(name, tree, is_package, set(found))
        for target in graph[name]:
            a, b = name.split(".")[0], target.split(".")[0]
            if "__init__" not in (a, b) and RANK[b] > RANK[a]:
                upward.append(f"{name} -> {target}")
    assert not upward, upward
    # no cycle among modules (a package's __init__ re-exports count as edges)
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in graph.get(node, ()):
            if state.get(target) == 1:
                pytest.fail("import cycle: " + " -> ".join([*path[path.index(target):], target]))
            if target in graph and state.get(target) is None:
                visit(target, [*path, target])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])


def functions():
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield path.relative_to(PACKAGE), node


def test_no_function_runs_over_80_lines():
    long = [f"{path}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path, node in functions() if node.end_lineno - node.lineno + 1 > 80]
    assert not long, long


def test_parameters_past_the_fourth_are_keyword_only():
    wide = []
    for path, node in functions():
        positional = [a.arg for a in node.args.posonlyargs + node.args.args if a.arg not in ("self", "cls", "ctx")]
        if len(positional) > 4:
            wide.append(f"{path}:{node.lineno} {node.name}({', '.join(positional)})")
    assert not wide, wide


def test_the_trainer_knows_no_feature_by_name():
    """Features reach training through the method and the hooks; the trainer's code names none."""
    source = (PACKAGE / "training" / "trainer.py").read_text()
    trainer = next(n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == "Trainer")
    code = ast.unparse(trainer).lower()
    for feature in ("sphere", "spheres", "volume", "refresh", "place", "places", "separation", "slow", "ema", "guide", "guided"):
        assert not re.search(rf"\b{feature}\b", code), feature
    assert "attach_hooks" in code and "hook.before_step" in code and "hook.after_step" in code
