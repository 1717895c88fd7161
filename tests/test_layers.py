"""The import structure: nothing imports a higher layer, and no two modules import each other.

Layers, lowest first (a module may import its own layer and the ones below):
numerics -> ir -> kernels -> runtime/backends -> analysis -> apps (face detection) -> cli.
Every import counts, function-local ones included: they hide a dependency, not remove it.
The package root ``qsim`` is the public API: it may load anything (lazily).
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "qsim"
LAYERS = [  # (name, module prefixes), lowest first
    ("numerics", ("qsim.errors", "qsim.fixed", "qsim.trace", "qsim.images", "qsim.datasets")),
    ("ir", ("qsim.graph", "qsim.plan", "qsim.model")),
    ("kernels", ("qsim.kernels",)),
    ("runtime", ("qsim.runtime", "qsim.executors", "qsim.k210", "qsim.tflite")),
    ("analysis", ("qsim.analysis", "qsim.testing", "qsim.export", "qsim.vectors")),
    ("apps", ("qsim.facedet",)),
    ("cli", ("qsim.cli", "qsim.__main__")),
]


def modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def import_edges(mods: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the qsim modules it imports (anywhere in its body)."""

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [f"{node.module}.{a.name}" for a in node.names]
            for t in targets:
                if t.startswith("qsim"):
                    got = resolve(t)
                    if got and got != name:
                        edges[name].add(got)
    return edges


def layer_of(module: str) -> int | None:
    best = None
    for rank, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if module == p or module.startswith(p + "."):
                best = rank
    return best


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_every_module_has_a_layer():
    missing = [m for m in modules() if m != "qsim" and layer_of(m) is None]
    assert not missing, f"modules without a layer in tests/test_layers.py: {missing}"


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    bad = []
    for src, targets in sorted(edges.items()):
        if src == "qsim":
            continue
        for dst in sorted(targets):
            if dst != "qsim" and layer_of(dst) > layer_of(src):
                bad.append(f"{src} ({LAYERS[layer_of(src)][0]}) imports {dst} ({LAYERS[layer_of(dst)][0]})")
    return bad


def test_no_import_goes_up_a_layer():
    bad = upward_imports(import_edges(modules()))
    assert not bad, "\n".join(bad)


def test_an_upward_import_is_caught():
    assert upward_imports({"qsim.fixed.cast": {"qsim.cli.run"}, "qsim.cli.run": {"qsim.fixed.cast"}}) == [
        "qsim.fixed.cast (numerics) imports qsim.cli.run (cli)"]


def test_no_import_cycle():
    edges = import_edges(modules())
    edges.pop("qsim", None)
    for targets in edges.values():
        targets.discard("qsim")
    assert cycles(edges) == []


@pytest.mark.parametrize("edges,expected", [
    ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
])
def test_the_cycle_finder_finds_cycles(edges, expected):
    assert cycles(edges) == expected
