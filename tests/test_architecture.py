"""The package's layers point one way (docs/design/ARCHITECTURE.md, "Layers").

Every `import` of a `mer` module, at module level or inside a function, is an edge; an edge from
a lower layer to a higher one, or a cycle between modules, fails here with the file and line.
Function-local imports exist only to keep start-up fast (a `mer --help` must not load torch or
Ray); each says so in a comment on its line or the line above, so a reader knows it is not hiding
a cycle.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mer"

# Bottom to top: a module may import its own layer (without cycles) and the layers below.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("mer", "mer.errors", "mer.util")),
    ("vocabulary", ("mer.datasets", "mer.metrics", "mer.protocol", "mer.predlog")),
    ("config", ("mer.config",)),
    ("core", ("mer.models", "mer.data", "mer.training", "mer.train")),
    ("experiment", ("mer.experiment",)),
    ("modes", ("mer.sweep", "mer.report")),
    ("cli", ("mer.cli", "mer.__main__")),
]
# Within the modes layer the report is read by the sweep, never the other way round.
FORBIDDEN = [("mer.report", "mer.sweep")]


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    path: Path
    line: int
    local: bool
    typing_only: bool  # under `if TYPE_CHECKING:`: never runs, so it cannot close a cycle


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(source: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = source.split(".") if is_package else source.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def collect_edges() -> list[Edge]:
    edges = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        local_lines = {
            n.lineno
            for f in ast.walk(tree)
            if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
            for n in ast.walk(f)
            if isinstance(n, (ast.Import, ast.ImportFrom))
        }
        typing_lines = {
            n.lineno
            for block in ast.walk(tree)
            if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
            for n in ast.walk(block)
            if isinstance(n, (ast.Import, ast.ImportFrom))
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                mod = _resolve(source, path.name == "__init__.py", node)
                # `from mer.x import y` may import the submodule mer.x.y
                targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
            else:
                continue
            for target in targets:
                if target == "mer" or target.startswith("mer."):
                    local = node.lineno in local_lines
                    typing_only = node.lineno in typing_lines
                    edges.append(Edge(source, target, path, node.lineno, local, typing_only))
    return edges


def known_modules() -> set[str]:
    return {module_name(p) for p in PACKAGE.rglob("*.py")}


def layer_of(module: str) -> int:
    best, rank = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            inside = module == prefix or (prefix != "mer" and module.startswith(prefix + "."))
            if inside and len(prefix) > best:
                best, rank = len(prefix), i
    if rank < 0:
        raise AssertionError(f"module {module} is in no layer: add it to LAYERS and the docs")
    return rank


def _real_edges() -> list[Edge]:
    modules = known_modules()
    return [e for e in collect_edges() if e.target in modules and e.target != e.source]


def test_every_module_has_a_layer() -> None:
    for module in sorted(known_modules()):
        layer_of(module)


def test_no_module_imports_upward() -> None:
    upward = []
    for e in _real_edges():
        if layer_of(e.target) > layer_of(e.source) or any(
            (e.source + ".").startswith(a + ".") and (e.target + ".").startswith(b + ".")
            for a, b in FORBIDDEN
        ):
            where = f"{e.path.relative_to(PACKAGE.parent)}:{e.line}"
            upward.append(
                f"{where}: {e.source} ({LAYERS[layer_of(e.source)][0]}) imports "
                f"{e.target} ({LAYERS[layer_of(e.target)][0]})"
            )
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_no_import_cycles() -> None:
    graph: dict[str, set[str]] = {}
    for e in _real_edges():
        # a package's __init__ importing its own submodules is how packages re-export
        if e.target.startswith(e.source + ".") or e.typing_only:
            continue
        graph.setdefault(e.source, set()).add(e.target)
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def _import_lines(tree: ast.AST) -> set[int]:
    """Every line that belongs to an import statement."""
    return {
        line
        for n in ast.walk(tree)
        if isinstance(n, (ast.Import, ast.ImportFrom))
        for line in range(n.lineno, (n.end_lineno or n.lineno) + 1)
    }


def test_function_local_imports_say_why() -> None:
    """A function-local import is there for start-up time or an optional dependency, and a
    `# lazy: <why>` comment says so: on its own lines, or above the run of imports it opens."""
    silent = []
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        tree = ast.parse("\n".join(lines))
        in_import = _import_lines(tree)
        for f in ast.walk(tree):
            if not isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(f):
                if not isinstance(node, (ast.Import, ast.ImportFrom)):
                    continue
                said = lines[node.lineno - 1 : node.end_lineno]
                above = node.lineno - 2  # 0-based index of the line above
                while above >= 0 and (above + 1 in in_import or not lines[above].strip()):
                    said.append(lines[above])
                    above -= 1
                while above >= 0 and lines[above].strip().startswith("#"):
                    said.append(lines[above])  # a comment block above the run
                    above -= 1
                if not any("# lazy" in text.lower() for text in said):
                    silent.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not silent, (
        "function-local imports without a `# lazy: <why>` comment (e.g. `# lazy: Ray takes "
        "seconds to import; mer --help stays fast`):\n" + "\n".join(sorted(set(silent)))
    )


@pytest.mark.parametrize(
    ("source", "target", "ok"),
    [
        ("mer.config.schema", "mer.errors", True),
        ("mer.config.schema", "mer.models.network", False),
        ("mer.experiment.plan", "mer.sweep.runner", False),
        ("mer.cli.sweep", "mer.sweep.ablation", True),
    ],
)
def test_layer_order_examples(source: str, target: str, ok: bool) -> None:
    assert (layer_of(target) <= layer_of(source)) is ok
