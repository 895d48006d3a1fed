"""Festival voices of other languages as labelled encoder data (training/corpus/foreign_phones.py)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from tests.sysdeps import INSTALL, festival_voice_package, needs
from training.corpus.foreign_phones import FOREIGN_VOICES, PACKAGES
from training.corpus.synth_speech import NO_CLASS, PHONE_INDEX, PHONES, Job, frame_labels, map_segments, run_job

# festvox-ru is a 179 MB download, so CI installs the other seven voices (the recipe refuses
# a phone its map lacks, so the Russian map is checked whenever the corpus is built).
CI_VOICES = [v for v in FOREIGN_VOICES if v != "festival-ru-nsh"]
PHONESET_FILES = {  # festival voice -> the phone-set definition its packages install
    "lp_diphone": "/usr/share/festival/italian_scm/italian_phoneset.scm",
    "upc_ca_ona_hts": "/usr/share/festival/upc_catalan/upc_catalan_phones-central.scm",
    "czech_dita": "/usr/share/festival/czech.scm",
    "suo_fi_lj_diphone": "/usr/share/festival/voices/finnish/suopuhe.common/finnish_phones.scm",
}


def test_every_map_names_only_known_classes() -> None:
    for name, (voice, _, phone_map) in FOREIGN_VOICES.items():
        assert voice in PACKAGES
        for phone, classes in phone_map.items():
            assert len(classes) <= 2, (name, phone)
            assert all(c in PHONE_INDEX for c in classes), (name, phone, classes)


def test_map_segments_splits_two_class_phones_and_marks_unmapped() -> None:
    phone_map = {"#": ("sil",), "ts": ("t", "s"), "a": ("aa",), "y": ()}
    ends, ids = map_segments(np.array([0.1, 0.3, 0.4, 0.5]), ["#", "ts", "a", "y"], phone_map, "test")
    np.testing.assert_allclose(ends, [0.1, 0.2, 0.3, 0.4, 0.5])
    assert [PHONES[i] if i >= 0 else None for i in ids] == ["sil", "t", "s", "aa", None]
    assert ids[-1] == NO_CLASS
    with pytest.raises(ValueError, match=r"voice 'test' said phone 'q'.*add it there"):
        map_segments(np.array([0.1]), ["q"], phone_map, "test")


def test_unmapped_frames_are_left_out_of_training_targets() -> None:
    import torch

    from svc_dsp.models.encoders.causal_mel import CausalMelEncoderNet
    from training.corpus.synth_speech import Clip, Variant
    from training.encoder_train import IGNORE, encoder_config, make_examples

    cfg = encoder_config("t")
    audio = np.zeros(8000, dtype=np.float32)
    clip = Clip(audio, np.array([0.1, 0.3, 0.5]), np.array([PHONE_INDEX["sil"], NO_CLASS, PHONE_INDEX["aa"]]),
                "test", Variant(), "")
    torch.manual_seed(0)
    (ex,) = make_examples([clip], CausalMelEncoderNet(cfg, 16000))
    lab = frame_labels(clip.ends, clip.phones, len(audio), 80)
    shift = 1 + cfg["delay_frames"]
    tgt = ex.target[shift:shift + len(lab)]
    assert np.all(tgt[lab == NO_CLASS] == IGNORE) and (lab == NO_CLASS).sum() == 40
    np.testing.assert_array_equal(tgt[lab >= 0], lab[lab >= 0])


def _voice_param(name: str):
    return pytest.param(name, marks=needs(PACKAGES[FOREIGN_VOICES[name][0]]), id=name)


@pytest.mark.parametrize("name", [_voice_param(n) for n in CI_VOICES])
def test_foreign_voice_reads_english_with_mapped_timed_phones(name: str) -> None:
    sentence = "measure the treasure, enjoy the voice of thirty young singers"
    arrays = run_job(Job(name, (sentence,)))
    n, ends, ids = int(arrays["lengths"][0]), arrays["seg_ends"], arrays["seg_phones"]
    assert 2.0 < n / 16000 < 8.0 and np.abs(arrays["audio"]).max() > 3000
    assert np.all(np.diff(ends) >= 0) and abs(ends[-1] - n / 16000) < 0.1
    assert ids[0] == PHONE_INDEX["sil"] and ids[-1] == PHONE_INDEX["sil"]
    speech = ids[(ids >= 0) & (ids != PHONE_INDEX["sil"])]
    assert len(set(speech.tolist())) >= 12  # many different classes, not a collapsed map
    assert (ids == NO_CLASS).mean() < 0.1


@needs("festvox-suopuhe-lj")
def test_a_sentence_a_voice_cannot_read_names_the_voice_and_the_fix() -> None:
    with pytest.raises(RuntimeError, match=r"festival voice 'suo_fi_lj_diphone' stopped .*stop on 'jazz'"):
        run_job(Job("festival-fi-lj", ("I like jazz",)))


@pytest.mark.parametrize("voice", [pytest.param(v, marks=needs(festival_voice_package(v)), id=v)
                                   for v in sorted(PHONESET_FILES)])
def test_map_covers_the_voice_phone_set(voice: str) -> None:
    text = Path(PHONESET_FILES[voice]).read_text(encoding="latin-1")
    body = text[text.index("defPhoneSet"):text.index("PhoneSet.silences")]
    rows = [r.split() for r in re.findall(r"^\s*\(([^;()]+)\)", body, flags=re.M)]
    width = max(set(map(len, rows)), key=[len(r) for r in rows].count)  # a phone row: name + features
    phones = [r[0] for r in rows if len(r) == width]
    assert len(phones) > 25
    phone_map = next(m for v, _, m in FOREIGN_VOICES.values() if v == voice)
    assert sorted(set(phones) - set(phone_map)) == []


def test_every_foreign_voice_package_is_installed_by_the_script() -> None:
    ci = (Path(__file__).resolve().parents[2] / INSTALL).read_text()  # .ci/run runs it
    voices = {FOREIGN_VOICES[v][0] for v in CI_VOICES}
    assert all(PACKAGES[v] in ci for v in voices), [PACKAGES[v] for v in voices if PACKAGES[v] not in ci]


def test_v2_recipe_adds_foreign_jobs_and_shares_v1_stage_one() -> None:
    from training.recipes import encoder_svc_phone_v1 as v1
    from training.recipes import encoder_svc_phone_v2 as v2

    assert v2.FULL["delay_frames"] == 3 and v2.FULL["name"] == "svc-phone-v2"
    jobs1, evals1 = v1.plan(v1.FULL, tiny=False)
    jobs2, evals2 = v1.plan(v2.FULL, tiny=False)
    # the v1 jobs come first, drawn identically, so their corpus shards are shared
    assert [j.key() for j in jobs2[:len(jobs1)]] == [j.key() for j in jobs1]
    extra = jobs2[len(jobs1):]
    assert {j.voice for j in extra} == set(v2.FOREIGN_VOICES)
    assert sum(len(j.sentences) for j in extra) == 60 * len(v2.FOREIGN_VOICES)
    assert all([v.kind for v in j.variants] == ["orig", "speech", "sung"] for j in extra)
    assert {k: [j.key() for j in js] for k, js in evals1.items()} == {k: [j.key() for j in js] for k, js in evals2.items()}
    # stage 1 (the shared aligner) is v1's whichever version trains it: plan, name, delay, folders
    s1, s2 = v1.stage1_settings(v1.FULL), v1.stage1_settings(v2.FULL)
    assert [j.key() for j in v1.plan(s1, False)[0]] == [j.key() for j in v1.plan(s2, False)[0]]
    assert {k: s2[k] for k in ("name", "delay_frames", "out", "run_dir")} == \
        {k: s1[k] for k in ("name", "delay_frames", "out", "run_dir")} == \
        {"name": "svc-phone-v1", "delay_frames": 1, "out": v1.FULL["aligner"],
         "run_dir": str(Path(v1.FULL["aligner"]).parent)}
