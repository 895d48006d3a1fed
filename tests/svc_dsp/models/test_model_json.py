"""model.json of every wrong type or shape is refused by the schema: one line per problem naming the
key, never a traceback; and random structures (hypothesis) never raise anything else or hang."""
from __future__ import annotations

import json
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from svc_dsp.errors import ModelFormatError
from svc_dsp.models.catalog import load_model
from svc_dsp.models.folder import MANIFEST_NAME, read_config, sha256_file


def _copy(src, tmp_path, name="m"):
    d = tmp_path / name
    shutil.copytree(src, d)
    return d


def _rehash(d):
    names = sorted(p.name for p in d.iterdir() if p.is_file() and p.name != MANIFEST_NAME)
    (d / MANIFEST_NAME).write_text("".join(f"{sha256_file(d / n)}  {n}\n" for n in names))


def _deep(n):
    return "[" * n + "]" * n


# (edit to the valid config, substring the message must hold); 16 variants from the hostile-input run
VARIANTS = {
    "sample_rate_text": (lambda c: c.update(sample_rate="abc"), "sample_rate is 'abc'"),
    "sample_rate_zero": (lambda c: c.update(sample_rate=0), "sample_rate is 0"),
    "sample_rate_negative": (lambda c: c.update(sample_rate=-24000), "sample_rate is -24000"),
    "sample_rate_huge": (lambda c: c.update(sample_rate=1e12), "sample_rate is 1000000000000.0"),
    "sample_rate_list": (lambda c: c.update(sample_rate=[24000]), "sample_rate is a list"),
    "sample_rate_bool": (lambda c: c.update(sample_rate=True), "sample_rate is true"),
    "format_version_text": (lambda c: c.update(format_version="abc"), "format_version is 'abc'"),
    "format_version_nan": (lambda c: c.update(format_version=float("nan")), "format_version is nan"),
    "hop_size_missing": (lambda c: c.pop("hop_size"), "hop_size is missing"),
    "hop_size_zero": (lambda c: c.update(hop_size=0), "hop_size is 0"),
    "channels_20000": (lambda c: c["architecture"].update(channels=20000), "architecture.channels is 20000"),
    "dilations_text": (lambda c: c["architecture"].update(dilations="1,2"), "architecture.dilations is"),
    "speakers_numbers": (lambda c: c.update(speakers=[1, 2]), "speakers[0] is 1"),
    "f0_range_text": (lambda c: c.update(f0_range="wide"), "f0_range is"),
    "family_number": (lambda c: c.update(family=5), "family is 5"),
    "architecture_list": (lambda c: c.update(architecture=[1]), "architecture is a list"),
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_wrong_model_json_is_named_per_key(random_model_dir, tmp_path, name):
    edit, want = VARIANTS[name]
    d = _copy(random_model_dir, tmp_path)
    cfg = json.loads((d / "model.json").read_text())
    edit(cfg)
    (d / "model.json").write_text(json.dumps(cfg))
    _rehash(d)
    with pytest.raises(ModelFormatError) as e:
        load_model(d)
    assert want in str(e.value), str(e.value)
    assert "model.json" in str(e.value)


def test_several_problems_one_line_each(random_model_dir, tmp_path):
    d = _copy(random_model_dir, tmp_path)
    cfg = json.loads((d / "model.json").read_text())
    cfg.update(sample_rate="abc", hop_size=-1)
    (d / "model.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFormatError) as e:
        read_config(d)
    lines = str(e.value).splitlines()
    assert any("sample_rate is 'abc'" in x for x in lines) and any("hop_size is -1" in x for x in lines)
    assert not any("sample_rate" in x and "hop_size" in x for x in lines)


@pytest.mark.parametrize("text", [_deep(100_000), '{"a": ' * 50 + "1" + "}" * 50, "\xff\xfe{}", "[]", "null"])
def test_hostile_json_text_is_refused(tmp_path, text):
    d = tmp_path / "m"
    d.mkdir()
    (d / "model.json").write_bytes(text.encode("latin-1"))
    with pytest.raises(ModelFormatError, match="model.json"):
        read_config(d)


# No subnormal floats: the streaming engine flushes denormals to zero for the whole process
# (torch.set_flush_denormal), and hypothesis refuses to draw them once that is set.
_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_subnormal=False) | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                                  max_size=4), max_leaves=20)
_KEYS = ["format", "format_version", "family", "sample_rate", "hop_size", "speakers", "f0_range",
         "architecture", "content_encoder", "name", "kind", "dim", "channels", "dilations"]


@settings(max_examples=150, deadline=10_000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(base=st.sampled_from(["hpn", "content-encoder", "sovits"]),
       edits=st.dictionaries(st.sampled_from(_KEYS), _json, max_size=5))
def test_random_model_json_never_tracebacks(tmp_path, base, edits):
    cfg = {"format": "svc-host-model", "format_version": 1, "family": base, "sample_rate": 24000, "hop_size": 120}
    cfg.update(edits)
    d = tmp_path / "h"
    d.mkdir(exist_ok=True)
    (d / "model.json").write_text(json.dumps(cfg, allow_nan=True))
    try:
        out = read_config(d)
    except ModelFormatError as e:
        assert str(e).strip() and "Traceback" not in str(e)
    else:
        assert isinstance(out, dict)
