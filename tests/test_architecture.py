"""The package's layout stays as docs/architecture.md describes it: the library never imports the
command line, and its import graph -- function-level imports included, ``if TYPE_CHECKING:`` imports (never run)
left out -- has no cycle.

Read from the source with ``ast``, so a lazy import inside a function counts as much as one at the top.
``python tests/test_architecture.py [SRC_DIR]`` prints the graph's cycles (strongly connected components).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "src" / "uniformerv2"


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(package_dir: Path = PACKAGE_DIR) -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere in its source (and the packages holding them)."""
    files = {_module_name(p, package_dir): p for p in package_dir.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        own_package = name if is_package else name.rsplit(".", 1)[0]
        targets: set[str] = set()
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):  # imports for annotations only never run
            if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
                node.body = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = own_package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                targets.add(module)
                targets.update(f"{module}.{a.name}" for a in node.names)  # `from pkg import submodule`
        ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        edges = set()
        for target in targets:
            parts = target.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a.b's __init__ too
                candidate = ".".join(parts[:i])
                if candidate in files and candidate != name and candidate not in ancestors:
                    edges.add(candidate)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_the_library_never_imports_the_command_line():
    graph = import_graph()
    offenders = sorted(
        m
        for m, targets in graph.items()
        if not m.startswith("uniformerv2.cli") and any(t.startswith("uniformerv2.cli") for t in targets)
    )
    assert offenders == []


def test_the_import_graph_has_no_cycle():
    assert cycles(import_graph()) == []


def test_the_graph_sees_function_level_imports(tmp_path):
    pkg = tmp_path / "uniformerv2"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import f\n")
    (pkg / "b.py").write_text("def f():\n    from . import a\n    return a\n")
    assert cycles(import_graph(pkg)) == [["uniformerv2.a", "uniformerv2.b"]]


# ------------------------------------------------------------------------------- one inference core

SERVING_DIR = PACKAGE_DIR / "serving"
# what the library does once (data/, inference.py, timeline.py) and serving/ must call, never write again
CORE_NAMES = {
    "decode",
    "window_views",
    "scores",
    "scan",
    "probabilities",
    "top_classes",
    "read_test_views",
    "read_label_map",
    "softmax",
}
# ... and what those are made of (``resources``: reading the package's label files; ``x.unique``: frames to decode)
CORE_PRIMITIVES = {
    "views_from_frames",
    "sample_test_indices",
    "window_indices",
    "match_class_names",
    "kinetics710_aliases",
    "softmax",
    "log_softmax",
    "resources",
}
TENSOR_OPS = {"softmax", "log_softmax", "unique"}


def serving_offences(sources: dict[str, str]) -> list[str]:
    """What makes modules of ``serving/`` (name -> source) more than HTTP, batching and streaming over the library:
    an import of ``engine``, a function of its own that decodes, cuts windows or scores (by name), a call of the
    primitives those are made of, or scoring from anywhere but :mod:`uniformerv2.inference`/:mod:`.timeline`."""
    found = []
    imported: set[str] = set()
    for name, source in sources.items():
        for node in ast.walk(ast.parse(source, name)):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                module = (node.module or "") if isinstance(node, ast.ImportFrom) else None
                targets = [a.name if module is None else f"{module}.{a.name}" for a in node.names]
                for target in targets:
                    if "engine" in target.split("."):
                        found.append(f"{name}: imports {target} (the engine)")
                imported.update(targets)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.strip("_") in CORE_NAMES:
                found.append(f"{name}: defines {node.name}()")
            elif isinstance(node, ast.Attribute) and node.attr in CORE_PRIMITIVES | TENSOR_OPS:
                found.append(f"{name}: uses .{node.attr}")
            elif isinstance(node, ast.Name) and node.id in CORE_PRIMITIVES:
                found.append(f"{name}: uses {node.id}")
    for needed in ("inference.probabilities", "timeline.scan"):
        if not any(i.endswith(needed) for i in imported):
            found.append(f"serving/ does not import {needed}: its scoring comes from elsewhere")
    return sorted(set(found))


def test_serving_defines_no_decoding_scoring_or_window_logic():
    sources = {p.name: p.read_text() for p in sorted(SERVING_DIR.glob("*.py"))}
    assert serving_offences(sources) == []


def test_the_serving_check_sees_a_second_inference_core():
    copy = (
        "import numpy as np\n"
        "from ..engine.extract import feature_forward\n"
        "from ..data import views_from_frames\n"
        "def window_views(reader, chunk, protocol):\n"
        "    unique, inverse = np.unique(chunk, return_inverse=True)\n"
        "    return views_from_frames(reader.read(unique), protocol, inverse=inverse)\n"
        "def _scores(logits, rows):\n"
        "    return logits[:, rows].float().softmax(-1).mean(0)\n"
    )
    found = serving_offences({"app.py": copy})
    assert found == sorted(
        [
            "app.py: imports engine.extract.feature_forward (the engine)",
            "app.py: defines window_views()",
            "app.py: defines _scores()",
            "app.py: uses .softmax",
            "app.py: uses .unique",
            "app.py: uses views_from_frames",
            "serving/ does not import inference.probabilities: its scoring comes from elsewhere",
            "serving/ does not import timeline.scan: its scoring comes from elsewhere",
        ]
    )


# ------------------------------------------------------------------------------------------ the house's shape

#: Files allowed past the size rule: the network itself and the preset table (data more than logic).
LONG_FILES = {"model.py", "zoo.py"}
MAX_LINES = 500


def long_files(package_dir: Path = PACKAGE_DIR) -> dict[str, int]:
    """Library files over ``MAX_LINES`` lines, but the allowed ones."""
    return {
        str(p.relative_to(package_dir)): n
        for p in sorted(package_dir.rglob("*.py"))
        if p.name not in LONG_FILES and (n := len(p.read_text().splitlines())) > MAX_LINES
    }


def test_no_library_file_is_longer_than_about_500_lines():
    assert long_files() == {}


def test_the_size_rule_sees_a_long_file_but_not_the_network(tmp_path):
    pkg = tmp_path / "uniformerv2"
    (pkg / "check").mkdir(parents=True)
    (pkg / "check" / "big.py").write_text("x = 1\n" * (MAX_LINES + 1))
    (pkg / "model.py").write_text("x = 1\n" * (MAX_LINES + 1))
    (pkg / "small.py").write_text("x = 1\n" * MAX_LINES)
    assert long_files(pkg) == {"check/big.py": MAX_LINES + 1}


def command_imports(graph: dict[str, set[str]]) -> dict[str, list[str]]:
    """Command modules that import another command module (``cli._common`` is what every command shares)."""
    shared = {"uniformerv2.cli", "uniformerv2.cli._common", "uniformerv2.cli.__main__"}
    commands = {m for m in graph if m.startswith("uniformerv2.cli.") and m not in shared}
    return {m: sorted(graph[m] & commands) for m in sorted(commands) if graph[m] & commands}


def test_no_command_module_imports_another_command_module():
    assert command_imports(import_graph()) == {}


def test_the_command_rule_sees_a_command_importing_another(tmp_path):
    cli = tmp_path / "uniformerv2" / "cli"
    cli.mkdir(parents=True)
    (cli.parent / "__init__.py").write_text("")
    (cli / "__init__.py").write_text("from . import test, extract\n")
    (cli / "_common.py").write_text("")
    (cli / "test.py").write_text("from ._common import x\n")
    (cli / "extract.py").write_text("from .test import _rank0_first\n")
    assert command_imports(import_graph(tmp_path / "uniformerv2")) == {
        "uniformerv2.cli.extract": ["uniformerv2.cli.test"]
    }


if __name__ == "__main__":
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else PACKAGE_DIR
    found = cycles(import_graph(src))
    for component in found:
        print(f"cycle of {len(component)} modules: {', '.join(component)}")
    print(f"{len(found)} cycle(s)")
