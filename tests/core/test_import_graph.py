"""The package's import graph: no circle, and no import from a lower layer up into a higher one.

Layers, low to high (a module may import its own layer and those below it):
registry/utils/config/weights/fetch
-> data -> ops -> blocks -> networks -> losses/diffusion -> objectives -> train -> infer -> eval
-> report/convert/paint/export -> cli. Imports inside functions count too (they are still dependencies).
The package face (`condgen/__init__.py`) imports the built-in packages so that their blocks register; it is
the one module allowed above everything, and nothing imports it back (`from condgen import x`).
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "condgen"
LAYERS = [
    {"registry", "utils", "config", "version", "rundir", "weights", "fetch"},
    {"data"},  # datasets and label conventions need nothing but the registry
    {"ops"},
    {"blocks"},
    {"networks"},
    {"losses", "diffusion"},  # diffusion: the process maths (torch + numpy only), used by objectives and up
    {"objectives"},
    {"train"},
    {"infer"},
    {"eval"},
    {"report", "leaderboard", "convert", "paint", "export"},
    {"cli", "__main__"},
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, name: str) -> set[str]:
    tree = ast.parse(path.read_text())
    is_pkg = path.name == "__init__.py"
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import
                base = name.split(".")[: len(name.split(".")) - node.level + (1 if is_pkg else 0)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names}
    return {m for m in out if m == "condgen" or m.startswith("condgen.")}


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PKG.rglob("*.py")}
    g = {}
    for name, path in files.items():
        # keep only targets that are modules (a `from m import f` names `m.f`, which is no module)
        g[name] = {m for m in imports_of(path, name) if m in files and m != name}
    return g


def layer(module: str) -> int:
    parts = module.split(".")
    return RANK.get(parts[1], -1) if len(parts) > 1 else len(LAYERS) - 1  # the face: as high as cli


def test_every_subpackage_has_a_layer():
    tops = {module_name(p).split(".")[1] for p in PKG.rglob("*.py") if module_name(p) != "condgen"}
    assert tops <= set(RANK), f"put {sorted(tops - set(RANK))} into a layer of this test"


def test_no_upward_import():
    bad = [
        f"{src} -> {dst}"
        for src, dsts in graph().items()
        if src != "condgen"
        for dst in dsts
        if layer(dst) > layer(src) and dst.split(".")[:2] != src.split(".")[:2]
    ]
    assert not bad, "imports from a lower layer into a higher one:\n" + "\n".join(sorted(bad))


def test_registry_imports_nothing_of_condgen():
    assert graph()["condgen.registry"] == set()


def test_no_import_circle():
    g = {k: {d for d in v if d != "condgen" and not _is_parent(d, k)} for k, v in graph().items()}
    g.pop("condgen", None)
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(g.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(g):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import circles:\n" + "\n".join(cycles)


def _is_parent(pkg: str, module: str) -> bool:
    """`condgen.blocks` imported by `condgen.blocks.spade`: the package runs first anyway."""
    return module.startswith(pkg + ".")
