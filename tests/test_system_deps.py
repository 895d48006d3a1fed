"""The optional Debian packages the tests check for are the ones scripts/install-system-deps.sh
installs, and a missing one skips with the package's name and the install command."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests import sysdeps

ROOT = Path(__file__).resolve().parents[1]


def script_packages() -> set[str]:
    text = (ROOT / sysdeps.INSTALL).read_text()
    body = re.search(r"PACKAGES=\(\n(.*?)\n\)", text, flags=re.S).group(1)
    return {w for line in body.splitlines() for w in line.split("#")[0].split()}


def test_every_package_the_tests_check_is_installed_by_the_script() -> None:
    assert sorted(set(sysdeps.PRESENT) - script_packages() - sysdeps.NOT_IN_SCRIPT) == []
    assert not sysdeps.NOT_IN_SCRIPT & script_packages()


def test_a_missing_package_skips_naming_it_and_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sysdeps.PRESENT, "festvox-suopuhe-lj", lambda: False)
    mark = sysdeps.needs("festvox-suopuhe-lj", "flite" if sysdeps.PRESENT["flite"]() else "festvox-suopuhe-lj")
    assert mark.args == (True,)
    assert mark.kwargs["reason"].startswith("needs festvox-suopuhe-lj")
    assert mark.kwargs["reason"].endswith(": scripts/install-system-deps.sh")
    with pytest.raises(pytest.skip.Exception, match="needs festvox-suopuhe-lj: scripts/install-system-deps.sh"):
        sysdeps.require("festvox-suopuhe-lj")


def test_the_script_is_executable_and_safe_to_rerun() -> None:
    path = ROOT / sysdeps.INSTALL
    assert path.stat().st_mode & 0o111
    text = path.read_text()
    assert "set -euo pipefail" in text and "apt-get install -y" in text
