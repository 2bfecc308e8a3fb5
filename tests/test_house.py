"""The rules of the house, checked on the source: no import cycle, imports point toward the
engine and the contract, no module over 400 lines.

Static (ast) so it sees every module-level import without running anything; imports inside
functions (lazy ones, like the CLI's) are left out on purpose: they cannot form a cycle at
import time.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PORTIONS = (ROOT / "operator", ROOT / "worker")
MAX_LINES = 400
# What the pure engine may import of ours: itself, the API models (the contract) and common.
ENGINE_MAY_IMPORT = ("queueworker.engine", "queueworker.operator.api", "queueworker.common")


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for base in PORTIONS:
        for path in (base / "queueworker").rglob("*.py"):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _imports(module: str, path: Path, known: set[str]) -> Iterator[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in tree.body:  # module level only
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                     for a in node.names]
        elif isinstance(node, ast.If):  # `if TYPE_CHECKING:` blocks do not run
            continue
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                yield name


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {m: set(_imports(m, p, known)) for m, p in mods.items()}


def test_the_graph_sees_the_package() -> None:
    graph = _graph()
    assert len(graph) > 60
    assert "queueworker.engine.decide" in graph["queueworker.engine"]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    found: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, set())):
            if state.get(nxt) == 1:
                found.append([*path[path.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


def test_engine_imports_only_itself_the_contract_and_common() -> None:
    graph = _graph()
    wrong = {m: sorted(d for d in deps if not d.startswith(ENGINE_MAY_IMPORT))
             for m, deps in graph.items() if m.startswith("queueworker.engine")}
    assert {m: d for m, d in wrong.items() if d} == {}


def test_no_import_points_out_of_a_world_into_another() -> None:
    # local/ and simulate/ are worlds beside the operator: they reuse engine and observe,
    # never the kopf controller; observe/ never imports a world.
    graph = _graph()
    rules = {
        "queueworker.observe": ("queueworker.operator.controller", "queueworker.operator.handlers",
                                "queueworker.local", "queueworker.simulate"),
        "queueworker.local": ("queueworker.operator.controller", "queueworker.operator.handlers",
                              "queueworker.simulate"),
        "queueworker.simulate": ("queueworker.operator.controller", "queueworker.local"),
        "queueworker.worker": ("queueworker.operator", "queueworker.local",
                               "queueworker.simulate", "queueworker.observe"),
        "queueworker.common": ("queueworker.operator", "queueworker.worker",
                               "queueworker.engine", "queueworker.observe"),
    }
    wrong = [f"{m} -> {d}" for m, deps in graph.items() for prefix, banned in rules.items()
             if m.startswith(prefix) for d in deps if d.startswith(banned)]
    assert wrong == []


def test_no_module_over_400_lines() -> None:
    sources = [p for base in (*PORTIONS, ROOT / "tests", ROOT / "benchmarks")
               for p in base.rglob("*.py") if ".venv" not in p.parts]
    long = {str(p.relative_to(ROOT)): n for p in sources
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}
