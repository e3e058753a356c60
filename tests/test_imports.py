"""Imports point down (cli → eval → pipeline → stages → train → io/render/init/poses/priors → core
types), with no cycles, counting function-level and TYPE_CHECKING imports too: a module that
hides an upward import inside a function still knows the layer above it."""

from __future__ import annotations

from pathlib import Path

import pytest

from recon.code_version import imported_modules

ROOT = Path(__file__).resolve().parents[1]


def _modules() -> list[str]:
    names = []
    for path in sorted((ROOT / "recon").rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return {m: imported_modules(m, "recon") for m in _modules()}


def test_no_import_cycles(graph):
    # Tarjan's strongly connected components
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, cycles


# module prefix → prefixes it must not import
FORBIDDEN = {
    "recon.stages": ("recon.cli", "recon.eval", "recon.pipeline", "recon.presets", "recon_viewer"),
    "recon.train": ("recon.cli", "recon.eval", "recon.pipeline", "recon.stages", "recon.presets"),
    "recon.train.parts": ("recon.train.trainer", "recon.train.registry", "recon.train.splat", "recon.train.config"),
    "recon.eval": ("recon.cli",),
}
LIBRARY = ("recon.render", "recon.io", "recon.init", "recon.poses", "recon.priors", "recon.scene", "recon.gaussians",
           "recon.losses", "recon.errors", "recon.events", "recon.cache", "recon.reproject", "recon.style",
           "recon.exports")
for lib in LIBRARY:
    FORBIDDEN[lib] = ("recon.cli", "recon.eval", "recon.pipeline", "recon.stages", "recon.train", "recon.presets")


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_imports_point_down(graph, layer):
    bad = [(m, i) for m, imports in graph.items() if m == layer or m.startswith(layer + ".")
           for i in imports if any(i == f or i.startswith(f + ".") for f in FORBIDDEN[layer])]
    assert not bad, bad
