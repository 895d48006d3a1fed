"""so-vits-svc Index-<id>.index (faiss IVF-Flat, written by faiss 1.15) read without faiss and
imported as a voice's index.safetensors."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from host_bridge.importers.faiss_index import import_sovits_indices, read_faiss_vectors
from svc_dsp.errors import ModelFormatError

DATA = Path(__file__).parent / "data"


def _expected() -> np.ndarray:
    # the vectors the fixture was built from: faiss.index_factory(64, "IVF5,Flat"), train, add
    return np.random.default_rng(19).standard_normal((200, 64)).astype(np.float32)


def test_reads_ivf_flat_vectors_in_id_order():
    np.testing.assert_array_equal(read_faiss_vectors(DATA / "Index-0.index"), _expected())


def test_truncated_or_foreign_files_are_refused(tmp_path):
    b = (DATA / "Index-0.index").read_bytes()
    (tmp_path / "Index-0.index").write_bytes(b[:-100])
    with pytest.raises(ModelFormatError, match="ends early"):
        read_faiss_vectors(tmp_path / "Index-0.index")
    (tmp_path / "x.index").write_bytes(b"IHNf" + b[4:])
    with pytest.raises(ModelFormatError, match="kind"):
        read_faiss_vectors(tmp_path / "x.index")


def test_import_into_a_voice_and_load(random_model_dir, tmp_path):
    from svc_dsp.models.catalog import load_model
    from svc_dsp.models.retrieval import load_index

    voice = tmp_path / "voice"
    shutil.copytree(random_model_dir, voice)
    import_sovits_indices(voice, [DATA / "Index-0.index"])
    idx = load_index(voice)
    assert idx is not None
    name = load_model(voice).speakers[0]
    np.testing.assert_allclose(idx.units[name].numpy(), _expected(), atol=2e-3, rtol=1e-3)   # stored float16
    with pytest.raises(ModelFormatError, match="speaker id 7"):
        shutil.copy(DATA / "Index-0.index", tmp_path / "Index-7.index")
        import_sovits_indices(voice, [tmp_path / "Index-7.index"], overwrite=True)


def test_faiss_itself_agrees_when_installed(tmp_path):
    faiss = pytest.importorskip("faiss")
    x = np.random.default_rng(3).standard_normal((2000, 256)).astype(np.float32)
    idx = faiss.index_factory(256, "IVF51,Flat")
    idx.train(x)
    idx.add(x)
    faiss.write_index(idx, str(tmp_path / "Index-0.index"))
    np.testing.assert_array_equal(read_faiss_vectors(tmp_path / "Index-0.index"), x)
    np.testing.assert_array_equal(idx.reconstruct_n(0, idx.ntotal), x)


def test_safetensors_whose_header_length_looks_like_a_pickle_opcode(tmp_path):
    from safetensors.numpy import save_file

    from svc_dsp.models.folder import load_tensors

    # pad the metadata until the 8-byte header length starts with 0x80 0x01 (as the index file did)
    for pad in range(400):
        p = tmp_path / "t.safetensors"
        save_file({"a": np.zeros(3, np.float32)}, str(p), metadata={"m": "x" * pad})
        head = p.read_bytes()[:2]
        if head[0] == 0x80 and head[1] <= 5:
            break
    else:
        pytest.skip("no padding gave that header length")
    assert load_tensors(p)["a"].shape == (3,)
