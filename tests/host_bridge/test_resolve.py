"""host_bridge.resolve: one rule for "model or preset": bare names are catalog names, paths are paths."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from host_bridge.resolve import model_folder, resolve
from svc_dsp.errors import CatalogError
from svc_dsp.models.catalog import find_in_catalog, load_model


@pytest.fixture
def cwd_with_demo_folder(tmp_path, random_model_dir, monkeypatch):
    """The current directory holds a folder named like the catalog voice 'demo' (another model)."""
    shutil.copytree(random_model_dir, tmp_path / "demo")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "demo"


def test_bare_name_is_the_catalog_voice_not_a_cwd_folder(cwd_with_demo_folder):
    catalog_demo = find_in_catalog("models", "demo").resolve()
    assert Path(model_folder("demo")).resolve() == catalog_demo
    r = resolve("demo")
    assert r.model.folder is not None and Path(r.model.folder).resolve() != cwd_with_demo_folder.resolve()
    assert Path(load_model("demo").folder).resolve() == catalog_demo


def test_a_value_with_a_separator_is_a_path(cwd_with_demo_folder):
    r = resolve("./demo")
    assert Path(r.model.folder).resolve() == cwd_with_demo_folder.resolve()
    assert r.ref == "demo" and r.parameters == {}
    assert Path(load_model("./demo").folder).resolve() == cwd_with_demo_folder.resolve()


def test_paths_refused_where_only_names_are_allowed(cwd_with_demo_folder):
    with pytest.raises(CatalogError, match="path"):
        model_folder("./demo", allow_path=False)
    with pytest.raises(CatalogError, match="path"):
        resolve("./demo", allow_path=False)


def test_effect_and_session_use_the_same_rule(cwd_with_demo_folder):
    from host_bridge.effect import VoiceConversion

    fx = VoiceConversion("./demo")
    assert Path(fx.model.folder).resolve() == cwd_with_demo_folder.resolve()
    assert Path(VoiceConversion("demo").model.folder).resolve() != cwd_with_demo_folder.resolve()
