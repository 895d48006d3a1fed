"""The encoder benchmark: which voices an encoder saw, and a one-sentence run on its held-out speaker."""
from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.encoders import main, seen_voices
from svc_dsp.models.catalog import find_in_catalog
from tests.sysdeps import needs


def test_seen_voices_read_from_the_encoder_folder() -> None:
    seen = seen_voices(find_in_catalog("encoders", "svc-phone-v1"))
    assert {"flite-awb", "festival-ked"} <= seen and any(v.startswith("espeak-") for v in seen)
    assert "flite-kal16" not in seen and "festival-it-lp" not in seen


@needs("flite")
def test_one_sentence_on_the_held_out_speaker(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--voices", "flite-kal16", "--sentences", "1", "--corpus", str(tmp_path), "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    row = next(ln for ln in out.splitlines() if ln.startswith("| flite-kal16 |"))
    spoken, sung = (float(x) for x in row.split("|")[2].split("/"))
    assert 45.0 < spoken <= 100.0 and 45.0 < sung <= 100.0  # 61 / 62 here; answering "sil" scores 14
    assert "| mean of 1 voices none saw |" in out and len(list(tmp_path.glob("flite-kal16-*.npz"))) == 2


def test_a_suites_help_is_its_own(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.__main__ import main as bench_main

    with pytest.raises(SystemExit) as e:
        bench_main(["encoders", "--help"])
    assert e.value.code == 0 and "python -m benchmarks encoders" in capsys.readouterr().out
