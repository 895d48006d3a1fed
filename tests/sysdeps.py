"""Optional Debian packages the tests use, how to tell each is present, and a skip mark that
names the package and the command that installs it (scripts/install-system-deps.sh lists them all;
tests/test_system_deps.py checks that it does)."""
from __future__ import annotations

import ctypes.util
import glob
import shutil
from collections.abc import Callable

import pytest

INSTALL = "scripts/install-system-deps.sh"
# packages the script leaves out (no test needs them): a test that did would name apt-get instead
NOT_IN_SCRIPT = {"festvox-ru"}  # Russian festival voice, a 179 MB download


def _commands(*names: str) -> Callable[[], bool]:
    return lambda: all(shutil.which(n) is not None for n in names)


def _festival_voice(voice: str) -> Callable[[], bool]:
    # Debian's festvox-* packages put each voice in /usr/share/festival/voices/<language>/<voice>
    return lambda: shutil.which("text2wave") is not None and bool(glob.glob(f"/usr/share/festival/voices/*/{voice}"))


# Debian package -> check; festival voice packages from training.corpus.foreign_phones.PACKAGES too
PRESENT: dict[str, Callable[[], bool]] = {
    "flite": _commands("flite"),
    "festival": _commands("festival", "text2wave"),
    "espeak-ng": _commands("espeak-ng"),
    "festvox-kallpc16k": _festival_voice("kal_diphone"),
    "festvox-kdlpc16k": _festival_voice("ked_diphone"),
    "festvox-us-slt-hts": _festival_voice("cmu_us_slt_arctic_hts"),
    "jackd2": _commands("jackd"),
    "libjack-jackd2-0": lambda: ctypes.util.find_library("jack") is not None,
    "liblo-tools": _commands("oscsend", "oscdump"),
    "sox": _commands("sox"),
    "chromium": lambda: any(shutil.which(n) for n in ("chromium", "chromium-browser")),
}


def _foreign_voices() -> None:
    from training.corpus.foreign_phones import PACKAGES

    for voice, package in PACKAGES.items():
        PRESENT.setdefault(package, _festival_voice(voice))


_foreign_voices()


def festival_voice_package(voice: str) -> str:
    """The Debian package of a festival voice name (kal_diphone, suo_fi_lj_diphone, ...)."""
    from training.corpus.foreign_phones import PACKAGES

    return {"kal_diphone": "festvox-kallpc16k", "ked_diphone": "festvox-kdlpc16k",
            "cmu_us_slt_arctic_hts": "festvox-us-slt-hts", **PACKAGES}[voice]


def missing(*packages: str) -> list[str]:
    """The packages among ``packages`` that are not installed here."""
    return [p for p in packages if not PRESENT[p]()]


def skip_reason(packages: list[str]) -> str:
    if set(packages) & NOT_IN_SCRIPT:
        return f"needs {', '.join(packages)}: sudo apt-get install {' '.join(packages)}"
    return f"needs {', '.join(packages)}: {INSTALL}"


def needs(*packages: str) -> pytest.MarkDecorator:
    """Skip mark for a test that needs these Debian packages, naming the missing ones and the fix."""
    absent = missing(*packages)
    return pytest.mark.skipif(bool(absent), reason=skip_reason(absent))


def require(*packages: str) -> None:
    """Skip the running test (or fixture) when any of these packages is missing."""
    absent = missing(*packages)
    if absent:
        pytest.skip(skip_reason(absent))
