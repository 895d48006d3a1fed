"""Automation lanes, MIDI CC lanes, and the chunked renderer: sample-accurate, aligned,
deterministic, atomic, constant memory."""
from __future__ import annotations

import hashlib
import json
import math

import mido
import numpy as np
import pedalboard as pb
import pytest
import soundfile as sf

from host_bridge import render as render_mod
from host_bridge.automation import OUTPUT_SIDE, AutomationFile, automation_from_midi, validate_lanes
from host_bridge.chain import Chain
from host_bridge.cli import main
from host_bridge.effect import VoiceConversion
from host_bridge.render import render_file
from svc_dsp.engine.parameters import PARAMETERS
from svc_dsp.engine.streaming import RAMP_S
from svc_dsp.errors import ParameterError
from tests.signals import sung_tone

SR = 44100


@pytest.fixture()
def vocal(tmp_path):
    p = tmp_path / "vocal.wav"
    sf.write(p, np.stack([sung_tone(SR, 0.5), sung_tone(SR, 0.5, seed=1)]).T, SR, subtype="FLOAT")
    return p


def _read(p):
    return sf.read(p, dtype="float32", always_2d=True)[0].T


def _sha(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_lanes_are_validated_and_sorted():
    lanes = validate_lanes({"transpose": [(100, 2), (0, 0.0)], "bypass": [(5, "on")]})
    assert lanes == {"transpose": [(0, 0.0), (100, 2.0)], "bypass": [(5, True)]}
    with pytest.raises(ParameterError, match=r"\[-36.0, 36.0\]"):
        validate_lanes({"transpose": [(0, 99)]})
    with pytest.raises(ParameterError, match="whole sample number >= 0"):
        validate_lanes({"mix": [(-1, 0.5)]})
    with pytest.raises(ParameterError, match="f0_method cannot be automated"):
        validate_lanes({"f0_method": [(0, "yin")]})
    with pytest.raises(ParameterError, match="unknown parameter"):
        validate_lanes({"pitch": [(0, 1)]})


def test_output_side_parameters_are_read_after_the_delay_line():
    """OUTPUT_SIDE mirrors StreamingConverter.process; if a parameter moves, timing breaks."""
    import inspect

    from svc_dsp.engine import streaming

    src = inspect.getsource(streaming.StreamingConverter.process)
    read_there = {n for n in PARAMETERS if f't["{n}"]' in src}
    assert read_there == set(OUTPUT_SIDE)


def _midi_file(path, events, tempo_changes):
    """One track: tempo changes at ticks, CC events at ticks (480 ticks per beat)."""
    mid = mido.MidiFile(ticks_per_beat=480)
    tr = mido.MidiTrack()
    mid.tracks.append(tr)
    items = [(t, mido.MetaMessage("set_tempo", tempo=tempo)) for t, tempo in tempo_changes]
    items += [(t, mido.Message("control_change", control=cc, value=v, channel=ch)) for t, cc, v, ch in events]
    last = 0
    for t, msg in sorted(items, key=lambda e: e[0]):
        tr.append(msg.copy(time=t - last))
        last = t
    mid.save(path)
    return path


def test_midi_cc_lanes_follow_tempo_changes(tmp_path):
    # 120 bpm for one beat (0.5 s), then 60 bpm (1 s per beat)
    path = _midi_file(tmp_path / "auto.mid",
                      [(0, 1, 64, 0), (480, 1, 127, 0), (960, 1, 0, 0), (960, 7, 0, 3), (1200, 64, 100, 0)],
                      [(0, 500000), (480, 1000000)])
    lanes = automation_from_midi(path, {1: "transpose", 7: "mix", 64: "bypass"}, 48000)
    tr = PARAMETERS["transpose"]
    assert lanes["transpose"] == [(0, tr.denormalise(64 / 127)), (24000, 36.0), (72000, -36.0)]
    assert lanes["mix"] == [(72000, 0.0)]
    assert lanes["bypass"] == [(48000 + 24000 + 24000, True)]  # tick 1200 = 1.5 beats in, 0.5 s at 60 bpm
    assert automation_from_midi(path, {7: "mix"}, 48000, channel=0) == {}
    with pytest.raises(ParameterError, match="only numeric"):
        automation_from_midi(path, {1: "speaker"}, 48000)


def test_mix_step_lands_on_its_exact_sample_even_behind_a_latent_plugin(random_model, vocal, tmp_path):
    s = 9000
    ramp = math.ceil(RAMP_S * SR)  # the engine's mix glide, in samples
    for upstream in ([], [pb.Resample(target_sample_rate=22050)]):
        fx = VoiceConversion(random_model, mix=1.0)
        chain = Chain([*upstream, fx])
        a, b, dry = tmp_path / "a.wav", tmp_path / "b.wav", tmp_path / "dry.wav"
        for out, auto in ((a, None), (b, {"mix": [(0, 1.0), (s, 0.0)]}), (dry, {"mix": [(0, 0.0)]})):
            r = render_file(vocal, out, chain, automation=auto, existing="overwrite", chunk_frames=4096)
            assert r.status == "ok", r.message
        A, B, D = _read(a), _read(b), _read(dry)
        assert A.shape == B.shape == D.shape == _read(vocal).shape
        np.testing.assert_allclose(B[:, :s], A[:, :s], atol=1e-5)  # untouched before the point
        assert np.array_equal(B[:, s + ramp - 1:], D[:, s + ramp - 1:])  # all dry once the glide ends
        assert not np.array_equal(B[:, s + ramp - 2], D[:, s + ramp - 2])  # ... and not one sample earlier
        if not upstream:
            assert np.array_equal(D, _read(vocal))  # mix 0: the input, aligned to the sample
        assert fx.mix == 1.0  # automation leaves the caller's effect as it was


def test_render_is_deterministic_chunk_independent_and_never_loads_the_whole_file(random_model, vocal, tmp_path,
                                                                                   monkeypatch):
    def no_whole_file(*a, **k):
        raise AssertionError("render_file loaded the whole file")

    monkeypatch.setattr("svc_dsp.audio.io.load_audio", no_whole_file)
    reads: list[int] = []
    orig = render_mod._BlockReader.read
    monkeypatch.setattr(render_mod._BlockReader, "read", lambda self, n: reads.append(n) or orig(self, n))
    lanes = {"transpose": [(0, 0.0), (5000, 5.0), (15000, -3.0)], "output_gain_db": [(7000, -6.0)]}
    chain = [pb.HighpassFilter(80), VoiceConversion(random_model), pb.Compressor(), pb.Reverb()]
    outs = []
    for i, chunk in enumerate((1000, 1000, 65536)):
        out = tmp_path / f"r{i}.wav"
        r = render_file(vocal, out, chain, chunk_frames=chunk, automation=lanes, existing="overwrite")
        assert r.status == "ok", r.message
        outs.append(out)
    assert max(reads) <= 65536 and reads.count(1000) >= 20
    assert _sha(outs[0]) == _sha(outs[1])  # same settings: byte-identical
    np.testing.assert_allclose(_read(outs[2]), _read(outs[0]), atol=1e-4)  # any chunking: same audio
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_bad_automation_fails_the_file_without_output(random_model, vocal, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"transpose": [[0, 80]]}))
    r = render_file(vocal, tmp_path / "o.wav", VoiceConversion(random_model), automation=AutomationFile(str(bad)))
    assert r.status == "failed" and "80" in r.message and "36.0" in r.message
    assert not (tmp_path / "o.wav").exists()
    r = render_file(vocal, tmp_path / "o.wav", pb.Gain(), automation={"mix": [(0, 0.5)]})
    assert r.status == "failed" and "needs a VoiceConversion" in r.message


def test_cli_automation_json_and_midi(random_model_dir, vocal, tmp_path, capsys):
    lanes = tmp_path / "lanes.json"
    lanes.write_text(json.dumps({"time": "seconds", "lanes": {"transpose": [[0, 0], [0.2, 4]], "mix": [[0.3, 0.5]]}}))
    base = ["render", str(vocal), "--model", str(random_model_dir), "-q", "--overwrite"]
    assert main([*base, "-o", str(tmp_path / "j"), "--automation", str(lanes)]) == 0
    mid = _midi_file(tmp_path / "cc.mid", [(0, 1, 64, 0), (240, 1, 90, 0)], [(0, 500000)])
    assert main([*base, "-o", str(tmp_path / "m"), "--automation", str(mid), "--cc", "1=transpose"]) == 0
    assert _read(tmp_path / "m" / "vocal.wav").shape == _read(vocal).shape
    capsys.readouterr()
    assert main([*base, "-o", str(tmp_path / "x"), "--automation", str(mid)]) == 2
    assert "--cc 1=transpose" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base, "-o", str(tmp_path / "x"), "--automation", str(mid), "--cc", "200=mix"])


def test_converter_callers_still_work_and_offline_trackers_render_whole(random_model, vocal, tmp_path):
    from svc_dsp.engine.converter import Converter

    conv = Converter(random_model, f0_method="harvest", transpose=1.0)
    r = render_file(vocal, tmp_path / "h.wav", conv)  # the old signature: positional converter
    assert r.status == "ok", r.message
    np.testing.assert_allclose(_read(tmp_path / "h.wav"), conv.convert(_read(vocal), SR), atol=1e-6)
    r = render_file(vocal, tmp_path / "h2.wav", conv, automation={"transpose": [(0, 2.0)]})
    assert r.status == "failed" and "offline tracker" in r.message and not (tmp_path / "h2.wav").exists()


def test_streamed_render_counts_and_zeroes_non_finite_samples(random_model, tmp_path):
    """NaN/inf spread over several chunks are replaced by 0 and counted once, in one warning."""
    x = np.stack([sung_tone(SR, 0.5), sung_tone(SR, 0.5, seed=1)]).astype(np.float32)
    x[0, 10] = np.nan
    x[1, 5000] = np.inf
    x[0, 9000] = np.nan
    x[1, 20000] = -np.inf
    src = tmp_path / "bad.wav"
    sf.write(src, x.T, SR, subtype="FLOAT")
    r = render_file(src, tmp_path / "out.wav", Chain([VoiceConversion(random_model)]), chunk_frames=4096)
    assert r.status == "ok", r.message
    assert r.warnings == ["2 NaN and 2 inf samples replaced by 0"]
    assert np.isfinite(_read(tmp_path / "out.wav")).all()
