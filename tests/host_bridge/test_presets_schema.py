"""Presets: values of the wrong type are refused (never coerced); hostile TOML (deep nesting, not UTF-8)
ends in a PresetError naming the file, never a traceback; hypothesis over random tables."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from host_bridge.presets import load_preset, parse_preset
from svc_dsp.errors import PresetError

HEAD = 'format_version = 1\nmodel = "demo"\n[parameters]\n'


@pytest.mark.parametrize("line,why", [
    ("transpose = true", "transpose is true (a boolean)"),
    ('transpose = "2"', "transpose is '2' (a string)"),
    ("bypass = 1", "bypass is 1 (a number)"),
    ("mix = [0.5]", "mix is a list"),
    ('speaker = 3', "speaker is 3 (a number)"),
    ('f0_method = false', "f0_method is false (a boolean)"),
    ('speaker_mix = {alto = "x"}', "speaker_mix.alto is 'x'"),
])
def test_wrong_types_are_refused_not_coerced(line, why):
    with pytest.raises(PresetError) as e:
        parse_preset(HEAD + line + "\n", "p", "p.toml")
    assert why in str(e.value), str(e.value)


def test_right_types_still_load():
    p = parse_preset(HEAD + "transpose = 2\nbypass = true\nmix = 0.5\n", "p")
    assert p.parameters["transpose"] == 2.0 and p.parameters["bypass"] is True


@pytest.mark.parametrize("text", [
    HEAD + "x = " + "[" * 5000 + "]" * 5000 + "\n",
    "a = " + "{b = " * 3000 + "1" + "}" * 3000 + "\n",
    'format_version = 1\nmodel = "demo"\ndescription = ' + "[" * 100 + "]" * 100 + "\n",
])
def test_deep_nesting_is_refused(text):
    with pytest.raises(PresetError, match="p.toml"):
        parse_preset(text, "p", "p.toml")


def test_not_utf8_file_is_refused(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_bytes(b'format_version = 1\nmodel = "d\xffmo"\n')
    with pytest.raises(PresetError, match="not UTF-8"):
        load_preset(f, allow_path=True)


# No subnormal floats: the streaming engine flushes denormals to zero for the whole process
# (torch.set_flush_denormal), and hypothesis refuses to draw them once that is set.
_toml_val = st.recursive(st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True, allow_subnormal=False) | st.text(max_size=6),
                         lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                             st.text("abcxyz_", min_size=1, max_size=5), inner, max_size=3), max_leaves=12)
_PARAMS = ["transpose", "speaker", "speaker_mix", "f0_method", "mix", "bypass", "gate_db", "nope"]


@settings(max_examples=150, deadline=10_000, suppress_health_check=[HealthCheck.too_slow])
@given(top=st.dictionaries(st.sampled_from(["format_version", "model", "description", "parameters", "x"]),
                           _toml_val, max_size=4),
       params=st.dictionaries(st.sampled_from(_PARAMS), _toml_val, max_size=4))
def test_random_presets_never_traceback(top, params):
    import tomli_w

    doc = {"format_version": 1, "model": "demo", **top}
    if isinstance(doc.get("parameters"), dict) or "parameters" not in top:
        doc["parameters"] = params
    try:
        text = tomli_w.dumps(doc)
    except (TypeError, ValueError):
        return
    try:
        parse_preset(text, "p", "p.toml")
    except PresetError as e:
        assert str(e).strip()
