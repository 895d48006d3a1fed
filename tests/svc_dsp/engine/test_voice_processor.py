"""VoiceProcessor: one parameter store shared with the stream it runs; f0_method starts a new
store and stream; updates are all-or-nothing; a new stream on a rate or channel change."""
from __future__ import annotations

import numpy as np
import pytest

from svc_dsp.engine.voice_processor import VoiceProcessor
from svc_dsp.errors import ParameterError, UnknownSpeakerError

SR = 24000


def _tone(n: int, channels: int = 1) -> np.ndarray:
    t = np.arange(n) / SR
    x = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    return np.stack([x * (0.5 + 0.5 * c) for c in range(channels)])


def test_the_stream_reads_the_processors_one_store(random_model):
    vp = VoiceProcessor(random_model, max_block_size=512, values={"transpose": 2.0})
    vp.stream(_tone(480), SR, 480)
    assert vp.engine is not None and vp.engine.store is vp.store
    vp.set("transpose", -3.0)  # one set, seen by the running stream
    assert vp.engine.get("transpose") == -3.0 and vp.get("transpose") == -3.0
    vp.set("speaker", random_model.speakers[1])
    assert vp.engine.get("speaker") == random_model.speakers[1]


def test_f0_method_change_starts_a_new_store_and_stream(random_model):
    vp = VoiceProcessor(random_model, max_block_size=512, values={"transpose": 4.0, "f0_method": "yin"})
    vp.stream(_tone(480), SR, 480)
    old_store, old_engine = vp.store, vp.engine
    with pytest.raises(ParameterError):  # the running stream's store keeps its tracker
        old_store.set("f0_method", "harvest")
    vp.set("f0_method", "harvest")
    assert vp.store is not old_store and vp.engine is None
    assert vp.get("f0_method") == "harvest" and vp.get("transpose") == 4.0
    assert old_engine.get("f0_method") == "yin"
    assert not vp.streams
    with pytest.raises(ParameterError, match="offline tracker"):
        vp.stream(_tone(480), SR, 480)
    assert vp.render(_tone(4800), SR, 480).shape == (1, 4800)  # the offline Converter over the store


def test_update_is_all_or_nothing(random_model):
    vp = VoiceProcessor(random_model, values={"transpose": 1.0})
    vp.prepare(SR)
    store = vp.store
    with pytest.raises(UnknownSpeakerError):
        vp.update({"transpose": 5.0, "speaker": "nobody"})
    with pytest.raises(UnknownSpeakerError):
        vp.update({"transpose": 5.0, "f0_method": "harvest", "speaker": "nobody"})
    assert vp.store is store and vp.get("transpose") == 1.0 and vp.get("f0_method") == "yin"
    vp.update({"transpose": 5.0, "f0_method": "harvest"})
    assert vp.get("transpose") == 5.0 and vp.get("f0_method") == "harvest"


def test_channel_change_starts_a_new_stream(random_model):
    vp = VoiceProcessor(random_model, max_block_size=512)
    vp.stream(_tone(2400), SR, 480)
    y = vp.stream(_tone(2400, channels=2), SR, 480)
    fresh = VoiceProcessor(random_model, max_block_size=512).stream(_tone(2400, channels=2), SR, 480)
    np.testing.assert_allclose(y, fresh, atol=1e-6)


def test_render_is_time_aligned_and_leaves_no_stream(random_model):
    vp = VoiceProcessor(random_model, max_block_size=512)
    x = _tone(4800)
    a = vp.render(x, SR, 480)
    b = vp.render(x, SR, 256)  # block size is speed only; the earlier render left no state
    assert a.shape == x.shape
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert vp.latency_at(SR) == vp.engine.latency_samples
