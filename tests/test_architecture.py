"""The folders show the flow: core -> store -> plug-ins -> run -> sweep -> analysis -> cli; nothing imports upward.

Read from the sources with ast (function-level imports included), so a lazy import cannot hide
an upward dependency or a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: package -> (layer, folder); a module may import its own package and lower layers only
LAYERS = {
    "bench.core": (0, ROOT / "bench" / "core"),
    "bench.store": (1, ROOT / "bench" / "store"),
    "bench.tasks": (2, ROOT / "tasks"),
    "bench.optimizers": (2, ROOT / "optimizers"),
    "bench.run": (3, ROOT / "bench" / "run"),
    "bench.testing": (4, ROOT / "bench" / "testing"),
    "bench.sweep": (4, ROOT / "bench" / "sweep"),
    "bench.analysis": (5, ROOT / "bench" / "analysis"),
    "bench.cli": (6, ROOT / "bench" / "cli"),
}


def _package(module: str) -> str | None:
    return next((p for p in LAYERS if module == p or module.startswith(p + ".")), None)


def _modules() -> dict[str, Path]:
    out = {}
    for package, (_, folder) in LAYERS.items():
        for path in folder.glob("*.py"):
            out[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return out


def _imports(path: Path, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.startswith("bench")}


@pytest.mark.parametrize("module", sorted(_modules()))
def test_no_upward_import(module: str) -> None:
    package = _package(module)
    assert package is not None
    layer = LAYERS[package][0]
    for name in _imports(_modules()[module]):
        target = _package(name)
        if target is None or target == package:
            continue
        assert LAYERS[target][0] < layer, f"{module} imports {name} ({target} is not below {package})"


def test_plug_ins_do_not_import_each_other() -> None:
    for module, path in _modules().items():
        if module.startswith("bench.optimizers"):
            assert not any(n.startswith("bench.tasks") for n in _imports(path)), module
        if module.startswith("bench.tasks"):
            assert not any(n.startswith("bench.optimizers") for n in _imports(path)), module


def test_no_import_cycle() -> None:
    modules = _modules()
    graph = {m: {n for n in _imports(p, top_level_only=True) if n in modules and n != m}
             for m, p in modules.items()}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            assert state.get(nxt) != 1, "import cycle: " + " -> ".join(path + [node, nxt])
            if nxt not in state:
                visit(nxt, path + [node])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


def test_no_generic_top_level_package_is_installed() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert '"bench.tasks" = "tasks"' in text and '"bench.optimizers" = "optimizers"' in text
    assert 'include = ["bench*", "tasks*"' not in text


#: calls that read or write result files; only the store may make them (tasks keep their own
#: model artifacts and caches, which are not run or sweep folders)
RESULT_IO = ("read_parquet(", "to_parquet(", "pickle.load(", "pickle.loads(", "read_frame(", "write_frame(")


@pytest.mark.parametrize("module", sorted(m for m in _modules() if _package(m) not in ("bench.store",)))
def test_only_the_store_reads_and_writes_result_files(module: str) -> None:
    text = _modules()[module].read_text(encoding="utf-8")
    calls = [call for call in RESULT_IO if call in text and f"def {call}" not in text]
    assert not calls, f"{module} calls {calls}: result files are read and written through bench.store"
