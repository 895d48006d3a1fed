"""VoiceConversion: pedalboard's Plugin surface, layouts, reset semantics, parameters, presets, state."""
from __future__ import annotations

import inspect
import shutil

import numpy as np
import pedalboard
import pytest

from host_bridge.effect import VoiceConversion
from host_bridge.layout import CHANNELS_FIRST, CHANNELS_LAST, LayoutMemory
from svc_dsp.engine.converter import Converter
from svc_dsp.engine.parameters import PARAMETERS
from svc_dsp.errors import AudioError, ParameterError, PresetError, UnknownSpeakerError
from tests.signals import sung_tone

SR = 44100


@pytest.fixture()
def stereo():
    return np.stack([sung_tone(SR, 0.3), sung_tone(SR, 0.3, f0=330, seed=1)])


def test_surface_matches_pedalboard_plugin(random_model):
    fx = VoiceConversion(random_model)
    assert fx.is_effect is True and fx.is_instrument is False
    ours = inspect.signature(VoiceConversion.process)
    assert list(ours.parameters) == ["self", "input_array", "sample_rate", "buffer_size", "reset"]
    assert ours.parameters["buffer_size"].default == 8192 and ours.parameters["reset"].default is True
    assert list(inspect.signature(VoiceConversion.__call__).parameters) == list(ours.parameters)
    init = inspect.signature(VoiceConversion)
    assert set(PARAMETERS) <= set(init.parameters)  # every table parameter is a keyword
    assert init.parameters["transpose"].default == 0.0 and init.parameters["mix"].default == 1.0
    assert "latency" in VoiceConversion.process.__doc__ and "reset=False" in VoiceConversion.process.__doc__


def test_reset_true_equals_converter_in_every_layout(random_model, stereo):
    fx = VoiceConversion(random_model, transpose=2.0, speaker="tenor")
    ref = Converter(random_model, transpose=2.0, speaker="tenor").convert(stereo, SR)
    np.testing.assert_allclose(fx(stereo, SR), ref, atol=2e-5)
    t = fx.process(stereo.T.astype(np.float64), SR)  # (samples, channels), float64 in
    assert t.shape == stereo.T.shape and t.dtype == np.float32
    np.testing.assert_allclose(t.T, ref, atol=2e-5)
    mono = fx(stereo[0], SR)
    assert mono.shape == stereo[0].shape
    np.testing.assert_allclose(mono, Converter(random_model, transpose=2.0, speaker="tenor").convert(stereo[0], SR),
                               atol=2e-5)


def test_integer_and_bad_arrays_are_refused(random_model):
    fx = VoiceConversion(random_model)
    with pytest.raises(TypeError, match=r"astype\(np.float32\) / 32768"):
        fx(np.zeros(100, np.int16), SR)
    with pytest.raises(AudioError, match="1 or 2 dimensions"):
        fx(np.zeros((1, 2, 100), np.float32), SR)
    with pytest.raises(AudioError, match="non-square"):
        fx(np.zeros((4, 4), np.float32), SR)  # square with nothing to go by, as pedalboard
    with pytest.raises(AudioError, match="8000..192000"):
        fx(np.zeros(100, np.float32), 4000)
    assert fx(np.zeros((2, 0), np.float32), SR).shape == (2, 0)


def _pedalboard_layout(shapes):
    """Which axis pedalboard treats as time, call after call on one plugin (a 1-sample delay)."""
    d = pedalboard.Delay(delay_seconds=1 / 8000, feedback=0.0, mix=1.0)
    out = []
    for shape in shapes:
        x = np.arange(1, np.prod(shape) + 1, dtype=np.float32).reshape(shape)
        try:
            y = d.process(x, 8000, reset=True)  # reset=True keeps the layout memory, as in pedalboard
        except RuntimeError:
            out.append("error")
            continue
        time_is_axis1 = np.array_equal(y[:, 1:], x[:, :-1]) and not y[:, 0].any()
        time_is_axis0 = np.array_equal(y[1:, :], x[:-1, :]) and not y[0, :].any()
        assert time_is_axis1 != time_is_axis0, (shape, y)
        out.append(CHANNELS_FIRST if time_is_axis1 else CHANNELS_LAST)
    return out


@pytest.mark.parametrize("shapes", [
    [(2, 50), (2, 2), (2, 1), (50, 2)],
    [(50, 2), (2, 2), (1, 2), (2, 50)],
    [(3, 40), (40, 3), (3, 3)],
    [(2, 1), (1, 2), (2, 50), (2, 1), (1, 2), (50, 2)],
])
def test_layout_rule_is_pedalboards(shapes):
    mem = LayoutMemory()
    ours = []
    for shape in shapes:
        try:
            lay = mem.detect(shape)
            mem.channels = shape[0] if lay == CHANNELS_FIRST else shape[1]
        except AudioError:
            lay = "error"
        ours.append(lay)
    theirs = _pedalboard_layout(shapes)
    assert ours == theirs


def test_stereo_hint_reads_2x1_as_one_stereo_sample(random_model, stereo):
    fx = VoiceConversion(random_model)
    fx(stereo, SR)  # the last call had 2 channels
    assert fx.process(stereo[:, :1], SR, reset=False).shape == (2, 1)
    fx.reset()  # forgets the hint: (2, 1) is now two mono samples (pedalboard does the same)
    assert fx._layout.detect((2, 1)) == CHANNELS_LAST


def test_reset_false_is_delayed_same_length_and_restarts_on_rate_or_channels(random_model, stereo):
    fx = VoiceConversion(random_model)
    y = fx.process(stereo, SR, reset=False)
    L = fx.latency_samples
    assert y.shape == stereo.shape and not y[:, :L].any() and y[:, L:].any()
    ref = fx(stereo, SR)
    np.testing.assert_allclose(y[:, L:], ref[:, :-L], atol=2e-5)
    y48 = fx.process(stereo, 48000, reset=False)  # new rate: a new stream with that rate's latency
    assert fx.latency_samples == fx.latency_at(48000) != L
    assert not y48[:, :fx.latency_samples].any()
    m = fx.process(stereo[0], 48000, reset=False)  # new channel count: a new stream too
    assert not m[:fx.latency_samples].any()


def test_latency_is_independent_of_parameters_and_bypass(random_model, stereo):
    a = VoiceConversion(random_model, sample_rate=SR)
    b = VoiceConversion(random_model, transpose=-7.0, mix=0.3, bypass=True, gate_db=-20.0, sample_rate=SR)
    assert a.latency_samples == b.latency_samples > 0
    assert a.tail_seconds > a.latency_samples / SR


def test_parameters_are_refused_not_clamped(random_model):
    fx = VoiceConversion(random_model, transpose=1.0)
    with pytest.raises(ParameterError, match=r"\[-36.0, 36.0\] st"):
        fx.transpose = 40
    assert fx.transpose == 1.0
    with pytest.raises(UnknownSpeakerError, match="alto, tenor"):
        fx.speaker = "bass"
    with pytest.raises(ParameterError, match="unknown parameter"):
        VoiceConversion(random_model, pitch=2)
    params = fx.parameters
    assert list(params) == list(PARAMETERS)
    t = params["transpose"]
    assert t.range == (-36.0, 36.0) and t.unit == "st" and t.default == 0.0 and t.type is float
    assert t.text == "+1.00 st" and t.normalise(0.0) == 0.5 and t.denormalise(1.0) == 36.0
    t.raw_value = 0.75
    assert fx.transpose == 18.0
    params["mix"].value = 0.25
    assert fx.mix == 0.25 and params["mix"].text == "25 %"
    with pytest.raises(ParameterError):
        params["mix"].value = 2.0


def test_raw_state_round_trips_exactly(random_model, stereo):
    fx = VoiceConversion(random_model, transpose=-3.5, speaker_mix={"tenor": 0.3, "alto": 0.7}, gate_db=-45.0)
    state = fx.raw_state
    assert isinstance(state, bytes) and b'"version":1' in state
    other = VoiceConversion(random_model)
    other.raw_state = state
    assert other.raw_state == state
    assert np.array_equal(other(stereo, SR), fx(stereo, SR))
    with pytest.raises(PresetError, match="not svc-host effect state"):
        other.raw_state = b"\x00garbage"
    with pytest.raises(PresetError, match="version 99"):
        other.raw_state = state.replace(b'"version":1', b'"version":99')
    with pytest.raises(PresetError, match="saved for model 'other'"):
        other.raw_state = state.replace(b'"model":"random-hpn"', b'"model":"other"')
    assert other.raw_state == state  # a refused state changes nothing


def test_presets_save_and_load_through_the_catalog(random_model_dir, tmp_path, monkeypatch, stereo):
    root = tmp_path / "catalog"
    shutil.copytree(random_model_dir, root / "models" / "random-hpn")
    monkeypatch.setenv("SVC_HOST_PATH", str(root))
    fx = VoiceConversion(root / "models" / "random-hpn", transpose=4.0, mix=0.5)
    path = fx.save_preset(root / "bright.toml")
    assert 'model = "random-hpn"' in path.read_text()
    by_name = VoiceConversion("bright", mix=0.75)  # a catalog preset; keywords win over its values
    assert (by_name.transpose, by_name.mix) == (4.0, 0.75)
    by_name.load_preset(path)
    assert by_name.raw_state == fx.raw_state
    assert np.array_equal(by_name(stereo, SR), fx(stereo, SR))
    assert "random-hpn" in repr(fx) and "transpose='+4.00 st'" in repr(fx) and "latency=" in repr(fx)


def test_offline_tracker_works_with_reset_true_only(random_model, stereo):
    fx = VoiceConversion(random_model, f0_method="harvest")
    ref = Converter(random_model, f0_method="harvest").convert(stereo, SR)
    assert np.array_equal(fx(stereo, SR), ref)
    with pytest.raises(ParameterError, match="offline tracker"):
        fx.process(stereo, SR, reset=False)
    fx.f0_method = "yin"  # switching restarts the stream
    assert fx.process(stereo, SR, reset=False).shape == stereo.shape


def test_bypass_and_mix_keep_alignment(random_model, stereo):
    fx = VoiceConversion(random_model, bypass=True)
    assert np.array_equal(fx(stereo, SR), stereo)
    fx = VoiceConversion(random_model, mix=0.0)
    np.testing.assert_allclose(fx(stereo, SR), stereo, atol=1e-6)
