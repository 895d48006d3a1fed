"""`svc-host render --report DIR`: a picture per rendered file and an index page that a browser
shows with every image loaded (checked in headless Chromium)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from host_bridge.cli import main
from tests.signals import sung_tone

DOCS_SHOT = Path(__file__).resolve().parents[2] / "docs" / "report-example.png"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("needs Debian's chromium: sudo apt-get install chromium (or scripts/install-system-deps.sh)")
    return exe


def _browser(exe: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=180)


@pytest.fixture()
def reported(tmp_path, random_model_dir):
    pytest.importorskip("matplotlib", reason="needs matplotlib: pip install 'svc-host[report]'")
    src = tmp_path / "takes"
    src.mkdir()
    sf.write(src / "lead vocal.wav", sung_tone(22050, 2.5), 22050, subtype="PCM_24")
    gap = np.zeros(11025, np.float32)
    loud = np.concatenate([gap, 1.6 * sung_tone(22050, 1.5, seed=2), gap])  # clips; silent edges gate
    sf.write(src / "double.flac", np.stack([loud, loud]).T, 22050, subtype="PCM_16")
    (src / "broken.wav").write_bytes(b"RIFF not audio")
    rep = tmp_path / "report"
    rc = main(["render", str(src), "-o", str(tmp_path / "out"), "--model", str(random_model_dir), "-q",
               "-t", "3", "--report", str(rep)])
    assert rc == 1  # broken.wav failed; the others rendered
    return rep


def test_report_page_lists_every_file_with_relative_images(reported):
    page = (reported / "index.html").read_text(encoding="utf-8")
    srcs = re.findall(r"<img src='([^']+)'", page)
    assert len(srcs) == 2 and all(not os.path.isabs(s) and (reported / s).is_file() for s in srcs)
    for s in srcs:
        assert (reported / s).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "broken.wav" in page and "failed" in page and "lead vocal.wav" in page


def test_report_opens_in_headless_chromium_with_all_images_loaded(reported, tmp_path):
    exe = _chromium()
    url = (reported / "index.html").as_uri()
    dom = _browser(exe, tmp_path / "profile", "--virtual-time-budget=10000", "--dump-dom", url)
    assert "images: all 2 of 2 loaded" in dom.stdout, dom.stderr[-2000:]
    shot = tmp_path / "report.png"
    _browser(exe, tmp_path / "profile", "--window-size=1100,1900", f"--screenshot={shot}", url)
    assert shot.is_file() and shot.read_bytes()[:4] == b"\x89PNG"
    if os.environ.get("SVC_HOST_UPDATE_DOCS") == "1":  # refresh the example picture in docs/
        shutil.copyfile(shot, DOCS_SHOT)


def test_report_folder_with_a_foreign_index_is_refused(tmp_path, random_model_dir, capsys):
    src = tmp_path / "a.wav"
    sf.write(src, sung_tone(16000, 0.3), 16000)
    rep = tmp_path / "site"
    rep.mkdir()
    (rep / "index.html").write_text("<html>my own page</html>")
    rc = main(["render", str(src), "-o", str(tmp_path / "out"), "--model", str(random_model_dir), "--report",
               str(rep)])
    assert rc == 2 and "did not write" in capsys.readouterr().err
    assert (rep / "index.html").read_text() == "<html>my own page</html>" and not (tmp_path / "out").exists()
