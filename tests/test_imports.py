"""What the packages import: the data reader and the synthetic generator load neither torch
nor the env modules; no command-line module imports another, directly or through another
module of ``experiments``; ``mura_env`` has no import cycle; lower layers (``mura_env``, then
``backbones``) never import higher ones."""

from __future__ import annotations

import ast
import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest

#: Modules that importing the data and synthetic packages must not load.
HEAVY_MODULES = (
    "torch", "mura_env.env", "mura_env.vector_env", "mura_env.problem", "mura_env.logits",
    "mura_env.rewards", "mura_env.mapping", "mura_env.config", "mura_env.study_set",
)


def _loaded_after(statement: str) -> list[str]:
    """The modules of :data:`HEAVY_MODULES` loaded by ``statement`` in a fresh interpreter."""
    code = (f"import json, sys\n{statement}\n"
            f"print(json.dumps([m for m in {list(HEAVY_MODULES)!r} if m in sys.modules]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=Path(__file__).resolve().parents[1])
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("statement", [
    "import mura_env.data, mura_env.synthetic",
    "from mura_env.data import load_mura",
    "import mura_env.synthetic.dataset",
])
def test_data_and_synthetic_imports_load_no_env_module_nor_torch(statement: str) -> None:
    assert _loaded_after(statement) == []


def test_the_check_sees_a_heavy_module_when_one_is_loaded() -> None:
    assert "mura_env.logits" in _loaded_after("import mura_env.logits")


# ---------------------------------------------------------------------------- the import graph
REPO = Path(__file__).resolve().parents[1]


def _modules(package: str) -> dict[str, Path]:
    """``{dotted module name: file}`` of every module of top-level ``package`` (a package's
    ``__init__.py`` under the package's own name)."""
    out = {}
    for path in sorted((REPO / package).rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


@functools.cache
def _tree(path: Path) -> ast.Module:
    """The syntax tree of the Python file at ``path``."""
    return ast.parse(path.read_text(), filename=str(path))


def _imports(name: str, path: Path, known: set[str] | dict[str, Path]) -> set[str]:
    """Every module that module ``name`` (file ``path``) imports, at any level (in functions,
    classes and ``if`` blocks too): the dotted name each ``import`` statement names, and for
    ``from X import y`` the submodule ``X.y`` where ``known`` has it, else ``X``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                out.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return out


def _is_main_guard(node: ast.stmt) -> bool:
    """Whether ``node`` is ``if __name__ == "__main__":``."""
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__"
            and any(isinstance(c, ast.Constant) and c.value == "__main__"
                    for c in node.test.comparators))


def _runnable(path: Path) -> bool:
    """Whether the module at ``path`` runs something as a script (a top-level
    ``if __name__ == "__main__":``)."""
    return any(_is_main_guard(node) for node in _tree(path).body)


def _is_command(path: Path) -> bool:
    """Whether the module at ``path`` is a command-line module: it defines ``main`` and runs
    it as a script. The thin modules that only import a command's ``main`` are not."""
    body = _tree(path).body
    return _runnable(path) and any(
        isinstance(node, ast.FunctionDef) and node.name == "main" for node in body)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of ``graph`` with a cycle (more than one module, or
    a module importing itself), each sorted, in sorted order (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_the_import_scanner_sees_imports_inside_functions_and_submodules(
        tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("import a.b\nfrom c import d, e\n\ndef f():\n    from .g import h\n")
    assert _imports("pkg.sub.m", source, {"c.d"}) == {"a.b", "c.d", "c", "pkg.sub.g"}
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"c"}, "d": {"a"}}) == [["a", "b"], ["c"]]


def test_the_command_check_tells_commands_from_their_forwarding_modules() -> None:
    assert _is_command(REPO / "experiments/gradcam/gradcam.py")
    assert not _is_command(REPO / "experiments/gradcam/__main__.py")
    assert not _is_command(REPO / "experiments/gradcam/gradcam_report.py")
    assert _runnable(REPO / "experiments/gradcam/__main__.py")


def test_no_command_line_module_imports_another() -> None:
    modules = _modules("experiments")
    runnable = {name for name, path in modules.items() if _runnable(path)}
    offences = {name: sorted((_imports(name, path, modules) & runnable) - {name})
                for name, path in modules.items()
                if _is_command(path)}
    assert {name: found for name, found in offences.items() if found} == {}


def test_no_other_module_of_experiments_imports_a_command_line_module() -> None:
    modules = _modules("experiments")
    runnable = {name for name, path in modules.items() if _runnable(path)}
    offences = {name: sorted(_imports(name, path, modules) & runnable)
                for name, path in modules.items() if name not in runnable}
    assert {name: found for name, found in offences.items() if found} == {}


def test_mura_env_has_no_import_cycle() -> None:
    modules = _modules("mura_env")
    graph = {name: _imports(name, path, modules) & set(modules)
             for name, path in modules.items()}
    assert _cycles(graph) == []


@pytest.mark.parametrize(("package", "forbidden"), [
    ("mura_env", ("agents", "backbones", "experiments")),
    ("backbones", ("agents", "experiments")),
])
def test_lower_layers_never_import_higher_ones(package: str, forbidden: tuple[str, ...]) -> None:
    modules = _modules(package)
    offences = {name: sorted(m for m in _imports(name, path, modules)
                             if m.split(".")[0] in forbidden)
                for name, path in modules.items()}
    assert {name: found for name, found in offences.items() if found} == {}
