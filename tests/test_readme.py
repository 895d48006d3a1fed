"""The README cannot rot: its Python snippets run, in order, in one namespace (a later snippet may
use an earlier one's names), in a temporary folder holding short generated vocals where a snippet
reads "vocal.wav"; its two shell commands are exactly what .ci/run runs."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import soundfile as sf

from tests.signals import sung_tone

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README, flags=re.S | re.M)


def shell_commands() -> list[str]:
    """The command lines of the README's first ```bash block (comments left out)."""
    first = blocks("bash")[0]
    return [ln for ln in first.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def test_readme_starts_with_an_install_command_and_a_test_command() -> None:
    install, test = shell_commands()
    assert "scripts/install-system-deps.sh" in install and "pip install torch==2.13.0" in install
    assert (ROOT / "scripts" / "install-system-deps.sh").is_file()
    render = install.split("&&")[-1].strip()
    assert render.startswith("svc-host render ")
    assert all((ROOT / w).is_file() for w in shlex.split(render) if w.startswith("docs/"))
    assert 'pip install -e ".[test]"' in test and "pytest" in test
    assert README.index(install) < README.index("## ")  # the first thing a reader sees


def test_ci_runs_the_readme_commands_exactly() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert ci[0].startswith("#!") and "set -euo pipefail" in ci  # any failure (pytest's 5 too) fails CI
    lines = [ln.strip() for ln in ci]
    for command in shell_commands():
        assert command in lines, f".ci/run does not run the README's command: {command}"


@pytest.fixture
def readme_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder with the inputs the snippets name: vocal.wav (2 s, mono, 44.1 kHz) and
    the bundled example under docs/examples/; the catalog is the shipped one only."""
    monkeypatch.delenv("SVC_HOST_PATH", raising=False)
    monkeypatch.setenv("SVC_HOST_HOME", str(tmp_path / "home"))
    sf.write(tmp_path / "vocal.wav", sung_tone(44100, 2.0), 44100, subtype="PCM_16")
    (tmp_path / "docs" / "examples").mkdir(parents=True)
    for f in (ROOT / "docs" / "examples").iterdir():
        (tmp_path / "docs" / "examples" / f.name).symlink_to(f)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_python_snippets_run(readme_folder: Path) -> None:
    import torch

    snippets = blocks("python")
    assert len(snippets) >= 4
    namespace: dict = {"__name__": "__readme__"}
    threads = torch.get_num_threads()
    try:
        for i, code in enumerate(snippets):
            try:
                exec(compile(code, f"README.md python block {i + 1}", "exec"), namespace)
            except Exception as e:
                raise AssertionError(f"README python block {i + 1} fails: {type(e).__name__}: {e}\n{code}") from e
    finally:
        torch.set_num_threads(threads)
    # the files the snippets write
    for name in re.findall(r'"([\w.-]+\.(?:wav|flac))"', "".join(snippets)):
        assert (readme_folder / name).is_file(), f"{name} was not written"
