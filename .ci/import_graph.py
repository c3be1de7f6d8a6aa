"""The import graph of ``src/``: no cycle, and the results model imports none of its readers.

Every ``from .x import`` / ``import sessiondata.x`` of a module counts, at module level or
inside a function (a lazy import is a dependency too); imports under ``if TYPE_CHECKING:``
do not (they never run).  A package (``src/readers/``) is one node with its files.
Run: ``python .ci/import_graph.py [SRC]``; exit 1 with the cycles or forbidden arrows named.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

# The model and what it may import: nothing that reads it.
MODEL = "results"
MODEL_MAY_IMPORT = {"calendar", "intervals", "bars", "_core"}
# Known cycles being folded elsewhere: the vendor formats and the readers become one package
# (``src/readers/``, another branch); drop the entry when it lands.
KNOWN_CYCLES = [["formats", "readers"]]


def _node(src: Path, path: Path) -> str:
    rel = path.relative_to(src).with_suffix("")
    parts = rel.parts
    return parts[0]  # a package and its files are one node


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, here: list[str]) -> set[str]:
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1] if node.level > 1 else here
                mod = (node.module or "").split(".")
                if node.level == 1 and len(here) == 1:
                    target = mod if node.module else [a.name for a in node.names][:1]
                else:
                    target = (base[:-1] if node.level > 1 else base[:-1]) + mod
                if node.module is None:  # from . import x, y
                    for a in node.names:
                        found.add((base[:-1] + [a.name])[0] if base[:-1] else a.name)
                elif target:
                    found.add(target[0])
            elif node.module and node.module.startswith("sessiondata."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("sessiondata."):
                    found.add(a.name.split(".")[1])
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def graph(src: Path) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in sorted(src.rglob("*.py")):
        node = _node(src, path)
        if node in ("__init__", "__main__"):
            continue  # the front door imports everything; nothing imports it
        rel = path.relative_to(src).with_suffix("").parts
        here = list(rel[:-1]) + [rel[-1]]
        deps = _imports(ast.parse(path.read_text(encoding="utf-8")), here)
        edges.setdefault(node, set()).update(d for d in deps
                                             if d != node and d not in ("__init__",))
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in edges:
                continue
            if w not in index:
                strong(w)
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
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            strong(v)
    return out


def main(argv: list[str]) -> int:
    src = Path(argv[1] if len(argv) > 1 else Path(__file__).resolve().parent.parent / "src")
    edges = graph(src)
    found = cycles(edges)
    for c in found:
        if c in KNOWN_CYCLES:
            print(f"known import cycle (being folded): {' <-> '.join(c)}")
    problems = [f"import cycle: {' <-> '.join(c)}" for c in found if c not in KNOWN_CYCLES]
    extra = sorted(edges.get(MODEL, set()) - MODEL_MAY_IMPORT)
    if extra:
        problems.append(f"the results model imports {', '.join(extra)} (it may import only "
                        f"{', '.join(sorted(MODEL_MAY_IMPORT))})")
    for p in problems:
        print(p)
    if not problems:
        print(f"import graph: {len(edges)} modules, no cycle, the model imports none of its "
              "readers")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
