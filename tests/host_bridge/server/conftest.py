"""Server fixtures: a catalog root with the random model and presets; an in-process server."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.host_bridge.server.oscclient import OscClient


@pytest.fixture(scope="module")
def catalog(random_model_dir, tmp_path_factory) -> Path:
    """A catalog root: models/rnd (the random model) and presets a-plain, b-up, c-double.
    SVC_HOST_PATH / SVC_HOST_HOME point at it for the module, and are restored after."""
    root = tmp_path_factory.mktemp("catalog")
    (root / "models").mkdir()
    (root / "models" / "rnd").symlink_to(random_model_dir, target_is_directory=True)
    (root / "models" / "rnd2").symlink_to(random_model_dir, target_is_directory=True)
    presets = {"a-plain": "", "b-up": "transpose = 12.0\n", "c-double": "mix = 0.5\nspeaker = \"tenor\"\n"}
    for name, body in presets.items():
        (root / f"{name}.toml").write_text(f'format_version = 1\nmodel = "rnd"\n[parameters]\n{body}')
    home = tmp_path_factory.mktemp("home")
    old = {k: os.environ.get(k) for k in ("SVC_HOST_PATH", "SVC_HOST_HOME")}
    os.environ["SVC_HOST_PATH"] = str(root)
    os.environ["SVC_HOST_HOME"] = str(home)
    yield root
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def make_server(catalog: Path, **kw):
    from host_bridge.server.app import ServeOptions, build

    source = kw.pop("source", None)
    opts = ServeOptions(preset=kw.pop("preset", "a-plain"), osc_port=0, audio=kw.pop("audio", "off"), **kw)
    return build(opts, source=source)


@pytest.fixture(scope="module")
def server(catalog, tmp_path_factory):
    """In-process server, no audio pump (the engine idles), jobs enabled."""
    import sys

    sys.setswitchinterval(0.001)
    inroot = tmp_path_factory.mktemp("in")
    outroot = tmp_path_factory.mktemp("out")
    srv = make_server(catalog, input_root=str(inroot), output_root=str(outroot))
    srv.inroot, srv.outroot = inroot, outroot
    yield srv
    srv.close()


@pytest.fixture
def client(server):
    c = OscClient(server.address)
    c.send("/svc/hello", "pytest", c.port)
    c.wait("/svc/welcome")
    yield c
    c.send("/svc/goodbye")
    c.close()
