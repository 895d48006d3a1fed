"""Every module of the project imports, and every third-party package it imports is declared in
pyproject.toml: module-level imports in `dependencies`, imports inside functions (optional,
heavy or tool-specific) in `dependencies` or an extra. A fresh venv has only what is declared."""
from __future__ import annotations

import ast
import importlib.metadata as md
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("svc_dsp", "host_bridge", "training", "benchmarks")
LOCAL = set(PACKAGES) | {"tests"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_names(reqs: list[str]) -> set[str]:
    return {_norm(re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", r).group(1)) for r in reqs}


def _declared() -> tuple[set[str], set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = _requirement_names(project["dependencies"])
    extras = set().union(*(_requirement_names(v) for v in project.get("optional-dependencies", {}).values()))
    return runtime, runtime | extras


def third_party_imports(tree: ast.AST) -> list[tuple[str, int, bool]]:
    """(top-level module, line, inside a function) for each absolute import of a non-stdlib,
    non-project module."""
    out: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                names = [child.module]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in LOCAL and top != "__future__":
                    out.append((top, child.lineno, in_function))
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(tree, False)
    return out


def _distributions(module: str, installed: dict[str, list[str]]) -> set[str]:
    # not installed here (an optional extra): the import name is the distribution name
    return {_norm(d) for d in installed.get(module, [module])}


def project_files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_third_party_imports_are_declared_in_pyproject() -> None:
    runtime, anywhere = _declared()
    installed = md.packages_distributions()
    missing = []
    for path in project_files():
        for module, line, in_function in third_party_imports(ast.parse(path.read_text(encoding="utf-8"))):
            allowed = anywhere if in_function else runtime
            if not _distributions(module, installed) & allowed:
                where = "dependencies or an extra" if in_function else "dependencies"
                missing.append(f"{path.relative_to(ROOT)}:{line} imports {module!r}: add it to {where}")
    assert not missing, "\n".join(missing)


def test_test_imports_are_in_the_test_extra() -> None:
    """`pip install -e ".[test]"` must bring everything the suite imports (pytest, hypothesis, ...)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    allowed = _requirement_names(project["dependencies"]) | _requirement_names(project["optional-dependencies"]["test"])
    installed = md.packages_distributions()
    missing = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for module, line, in_function in third_party_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if in_function:
                continue  # optional tools a test skips without (pytest.importorskip)
            if not _distributions(module, installed) & allowed:
                missing.append(f"{path.relative_to(ROOT)}:{line} imports {module!r}: add it to the test extra")
    assert not missing, "\n".join(missing)


def test_the_checker_sees_module_level_and_function_imports() -> None:
    tree = ast.parse("import os\nimport numpy as np\nfrom scipy.signal import lfilter\nfrom . import x\n"
                     "def f():\n    import torch\n    try:\n        import jack\n    except ImportError:\n"
                     "        pass\nfrom svc_dsp import errors\n")
    assert third_party_imports(tree) == [("numpy", 2, False), ("scipy", 3, False), ("torch", 6, True),
                                         ("jack", 8, True)]
    runtime, _ = _declared()
    assert "scipy" in runtime and "numpy" in runtime
    assert not any(r.startswith("torch==") for r in
                   tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])


def test_every_module_imports() -> None:
    modules = []
    for path in project_files():
        rel = path.relative_to(ROOT).with_suffix("")
        if rel.name == "__main__":
            continue  # runs the command line on import
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        modules.append(".".join(parts))
    script = ("import importlib, sys\nbad = []\nfor m in sys.argv[1:]:\n    try:\n"
              "        importlib.import_module(m)\n    except Exception as e:\n"
              "        bad.append(f'{m}: {type(e).__name__}: {e}')\nprint('\\n'.join(bad))\n"
              "sys.exit(1 if bad else 0)\n")
    out = subprocess.run([sys.executable, "-c", script, *modules], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr[-2000:]
    assert len(modules) > 50
