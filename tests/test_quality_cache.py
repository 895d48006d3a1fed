"""The quality benchmark's measurement cache: entries round-trip, damaged ones are measured again,
and a model's key follows its content, not its path."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.quality_cache import Cache, model_digest


def test_entries_round_trip_with_audio(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    key = Cache.key("in", "piper:joe", "sung", 0, "Hold me close.")
    assert key != Cache.key("in", "piper:joe", "sung", 1, "Hold me close.") and cache.get(key) is None
    x = np.linspace(-0.5, 0.5, 1000, dtype=np.float32)
    cache.put(key, {"sr": 22050, "wer": {"whisper": (1, 3)}, "cents": [float("nan"), 0.0]}, x)
    hit = cache.get(key)
    assert hit is not None and hit["sr"] == 22050 and hit["wer"] == {"whisper": [1, 3]}
    assert np.isnan(hit["cents"][0]) and np.array_equal(hit["audio"], x)
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [f"{key}.json", f"{key}.npy"]  # no temp files
    (tmp_path / "c" / f"{key}.json").write_text("{trunc")
    assert cache.get(key) is None  # a damaged entry is measured again


def test_no_root_keeps_nothing(tmp_path: Path) -> None:
    cache = Cache(None)
    cache.put("k", {"a": 1})
    assert cache.get("k") is None


def test_model_key_follows_the_files(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        (d / "model.json").write_text('{"family": "hpn"}')
        (d / "SHA256SUMS").write_text("00  weights.safetensors\n")
    assert model_digest(str(a)) == model_digest(str(b))  # same content, other path
    (b / "SHA256SUMS").write_text("11  weights.safetensors\n")  # re-exported weights
    assert model_digest(str(a)) != model_digest(str(b))
