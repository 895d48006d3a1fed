"""The layering of DESIGN.md, read from the source with ast (nothing is imported):

- no import cycle between svc_dsp's subpackages (audio, nn, features, models, runtime, engine);
- features/ imports only audio/, nn/ and the top-level modules (errors, fileops);
- svc_dsp imports neither host_bridge nor training;
- at most 15 % of the import statements of project modules (svc_dsp.*, host_bridge.*, training.*)
  in svc_dsp and host_bridge sit inside functions. Exempt, and not counted: the command modules of
  the CLI (``cli.py``, ``importers/``, ``weights_install.py``, ``server/app.py``'s startup), whose
  subcommands import their stage on use so ``svc-host --help`` is instant and the server answers
  while torch loads (STYLE.md); registries' ``_import_builtin`` (kinds register on import, so the
  registry cannot import them at the top: a cycle) and package ``__getattr__`` (lazy exports).
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGES = ("audio", "nn", "features", "models", "runtime", "engine")
LAZY_OK = ("host_bridge/cli.py", "host_bridge/importers/", "host_bridge/weights_install.py", "host_bridge/server/app.py")
LAZY_FUNCTIONS = ("_import_builtin", "__getattr__")


def _imports(path: Path) -> list[tuple[str, str | None]]:
    """(first module of each import statement, name of the enclosing function or None)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: list[tuple[str, str | None]] = []

    def visit(node: ast.AST, fn: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else fn
            if isinstance(child, ast.Import):
                out.extend((a.name, fn) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                out.append((child.module, fn))
            visit(child, inner)

    visit(tree, None)
    return out


def _files(pkg: str) -> list[Path]:
    return sorted(p for p in (ROOT / pkg).rglob("*.py") if "__pycache__" not in p.parts)


def _sub(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "svc_dsp" and parts[1] in SUBPACKAGES else None


def _graph() -> dict[str, set[str]]:
    g: dict[str, set[str]] = {s: set() for s in SUBPACKAGES}
    for f in _files("svc_dsp"):
        src = _sub("svc_dsp." + ".".join(f.relative_to(ROOT / "svc_dsp").with_suffix("").parts))
        if src is None:
            continue
        for mod, _ in _imports(f):
            dst = _sub(mod)
            if dst and dst != src:
                g[src].add(dst)
    return g


def test_no_cycles_between_svc_dsp_subpackages():
    g = _graph()
    state: dict[str, int] = {}

    def dfs(n: str, path: list[str]) -> None:
        state[n] = 1
        for m in sorted(g[n]):
            assert state.get(m) != 1, f"import cycle: {' -> '.join(path + [m])}"
            if m not in state:
                dfs(m, path + [m])
        state[n] = 2

    for n in SUBPACKAGES:
        if n not in state:
            dfs(n, [n])


def test_features_sit_on_audio_and_nn_only():
    assert _graph()["features"] <= {"audio", "nn"}, _graph()["features"]
    assert _graph()["nn"] == set(), _graph()["nn"]


def test_svc_dsp_imports_neither_host_bridge_nor_training():
    bad = [f"{f.relative_to(ROOT)} imports {m}" for f in _files("svc_dsp") for m, _ in _imports(f)
           if m.split(".")[0] in ("host_bridge", "training")]
    assert not bad, bad


def _in_function_share() -> tuple[int, int, list[str]]:
    total = inside = 0
    where = []
    for pkg in ("svc_dsp", "host_bridge"):
        for f in _files(pkg):
            rel = f.relative_to(ROOT).as_posix()
            if rel.startswith(LAZY_OK):
                continue
            for mod, fn in _imports(f):
                if mod.split(".")[0] not in ("svc_dsp", "host_bridge", "training") or fn in LAZY_FUNCTIONS:
                    continue
                total += 1
                if fn is not None:
                    inside += 1
                    where.append(f"{rel} ({fn}): {mod}")
    return inside, total, where


def test_most_project_imports_are_at_the_top():
    inside, total, where = _in_function_share()
    assert total > 100
    assert inside <= 0.15 * total, f"{inside} of {total} project imports inside functions:\n" + "\n".join(where)
