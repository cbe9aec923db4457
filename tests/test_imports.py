"""What the packages import: the data reader and the synthetic generator load neither torch
nor the env modules; no module of the repository takes part in an import cycle (imports inside
functions count); no experiment imports another (what two share lives in
``experiments.common``); every command is a package with a ``__main__`` and every one the
README names answers ``--help``; lower layers (``mura_env``, then ``backbones`` and
``agents``) never import higher ones."""

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
    "torch", "mura_env.weighting.env", "mura_env.weighting.vector_env",
    "mura_env.weighting.problem", "mura_env.logits", "mura_env.rewards",
    "mura_env.weighting.mapping",
    "mura_env.weighting.config", "mura_env.logits.study_set",
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


def _repository_modules() -> dict[str, Path]:
    """Every Python module of the repository: the four packages, ``tests`` and
    ``benchmarks``."""
    out: dict[str, Path] = {}
    for package in ("mura_env", "agents", "backbones", "experiments", "tests", "benchmarks"):
        out.update(_modules(package))
    return out


def _graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """``{module: the modules of ``modules`` it imports}`` (at any level)."""
    return {name: _imports(name, path, modules) & set(modules)
            for name, path in modules.items()}


def test_the_repository_has_no_import_cycle() -> None:
    assert _cycles(_graph(_repository_modules())) == []


def _command_of(module: str) -> str | None:
    """The command package (``experiments.X``) a module of ``experiments`` belongs to; None
    for ``experiments`` itself and for ``experiments.common``."""
    parts = module.split(".")
    if parts[0] != "experiments" or len(parts) < 2 or parts[1] == "common":
        return None
    return ".".join(parts[:2])


def test_no_experiment_imports_another() -> None:
    modules = _modules("experiments")
    offences = {}
    for name, imported in _graph(modules).items():
        own = _command_of(name)
        others = sorted(m for m in imported
                        if _command_of(m) is not None and _command_of(m) != own)
        if others:
            offences[name] = others
    assert offences == {}


def test_every_command_is_a_package_with_a_main_module() -> None:
    packages = {p.parent.name for p in (REPO / "experiments").glob("*/__init__.py")}
    commands = {p.parent.name for p in (REPO / "experiments").glob("*/__main__.py")}
    assert packages - {"common"} == commands
    stray = sorted(p.name for p in (REPO / "experiments").glob("*.py") if p.name != "__init__.py")
    assert stray == []


def readme_commands() -> list[str]:
    """The ``X`` of every ``python -m experiments.X`` the README names, sorted."""
    import re

    text = (REPO / "README.md").read_text()
    return sorted(set(re.findall(r"python -m experiments\.([a-z_][a-z_.]*)", text)))


def test_every_readme_command_runs_as_a_package_and_answers_help() -> None:
    names = readme_commands()
    assert len(names) >= 10
    for name in names:
        assert (REPO / "experiments" / name / "__main__.py").is_file(), name
    code = (
        "import contextlib, io, json, runpy, sys\n"
        "codes = {}\n"
        f"for name in {names!r}:\n"
        "    sys.argv = [name, '--help']\n"
        "    out = io.StringIO()\n"
        "    try:\n"
        "        with contextlib.redirect_stdout(out):\n"
        "            runpy.run_module('experiments.' + name, run_name='__main__', alter_sys=True)\n"
        "        codes[name] = ('returned', '')\n"
        "    except SystemExit as e:\n"
        "        codes[name] = (e.code, out.getvalue()[:80])\n"
        "print(json.dumps(codes))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=REPO)
    codes = json.loads(result.stdout.strip().splitlines()[-1])
    for name in names:
        status, text = codes[name]
        assert status == 0 and text.startswith("usage:"), (name, status, text)


@pytest.mark.parametrize(("package", "forbidden"), [
    ("mura_env", ("agents", "backbones", "experiments")),
    ("backbones", ("agents", "experiments")),
    ("agents", ("backbones", "experiments")),
])
def test_lower_layers_never_import_higher_ones(package: str, forbidden: tuple[str, ...]) -> None:
    modules = _modules(package)
    offences = {name: sorted(m for m in _imports(name, path, modules)
                             if m.split(".")[0] in forbidden)
                for name, path in modules.items()}
    assert {name: found for name, found in offences.items() if found} == {}


def _env_config_class_names() -> set[str]:
    """The names of every registered env's config class and of its config base classes."""
    import mura_env

    names = set()
    for env_id in mura_env.registered_env_ids():
        for cls in mura_env.env_config_class(env_id).__mro__:
            if cls.__module__.startswith("mura_env."):
                names.add(cls.__name__)
    return names


def _type_tests_on(names: set[str], path: Path) -> list[int]:
    """The lines of ``isinstance``/``issubclass`` calls in the file at ``path`` whose class
    argument names one of ``names`` (alone, dotted, or in a tuple)."""
    found = []
    for node in ast.walk(_tree(path)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in ("isinstance", "issubclass") and len(node.args) == 2):
            for part in ast.walk(node.args[1]):
                name = part.id if isinstance(part, ast.Name) else (
                    part.attr if isinstance(part, ast.Attribute) else None)
                if name in names:
                    found.append(node.lineno)
    return found


def test_agents_never_test_the_type_of_an_env_config(tmp_path: Path) -> None:
    names = _env_config_class_names()
    assert {"WeightingConfig", "DeferralConfig", "WorklistConfig"} <= names
    offences = {name: lines for name, path in _modules("agents").items()
                if (lines := _type_tests_on(names, path))}
    assert offences == {}
    probe = tmp_path / "probe.py"
    probe.write_text("def f(c):\n    return isinstance(c, (int, cfg.WorklistConfig))\n")
    assert _type_tests_on(names, probe) == [2]
