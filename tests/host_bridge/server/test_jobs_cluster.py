"""serve --cluster: OSC render jobs run on Dask workers (scheduler + worker on 127.0.0.1) and give
the same files and events as the server's own job process."""
from __future__ import annotations

import hashlib

import pytest
import soundfile as sf

from tests.host_bridge.server.conftest import make_server
from tests.host_bridge.server.oscclient import OscClient
from tests.signals import sung_tone

pytest.importorskip("distributed", reason='Dask distributed missing: pip install -e ".[cluster]"')
from tests.host_bridge.dask_procs import dask_cluster  # noqa: E402


def _run_job(srv, inp: str, outp: str) -> list:
    c = OscClient(srv.address)
    try:
        c.send("/svc/hello", "pytest", c.port)
        c.wait("/svc/welcome")
        c.send("/svc/job/submit", inp, outp, "overwrite")
        jid = c.wait("/svc/job/accepted").args[0]
        files = [c.wait("/svc/job/file", timeout=300, where=lambda m: m.args[0] == jid) for _ in range(2)]
        done = c.wait("/svc/job/done", timeout=300, where=lambda m: m.args[0] == jid)
        c.send("/svc/goodbye")
        return [done.args, sorted(f.args[1:] for f in files)]
    finally:
        c.close()


def test_osc_job_on_cluster_matches_local_job(catalog, server, tmp_path):
    for root in (server.inroot,):
        (root / "cl").mkdir(exist_ok=True)
        sf.write(root / "cl" / "a.wav", sung_tone(24000, 0.8), 24000, subtype="PCM_24")
        sf.write(root / "cl" / "b.wav", sung_tone(24000, 0.6, f0=300, seed=1), 24000)
    local = _run_job(server, "cl", "cl-local")
    with dask_cluster(tmp_path, 1) as dc:
        srv = make_server(catalog, input_root=str(server.inroot), output_root=str(tmp_path / "out"),
                          cluster=dc.scheduler)
        try:
            remote = _run_job(srv, "cl", "cl-out")
        finally:
            srv.close()
    assert local[0][1] == remote[0][1] == "done" and remote[0][4:] == [2, 0]
    assert [f[2] for f in remote[1]] == [f[2] for f in local[1]]  # sha256 per file, as sent
    for name in ("a.wav", "b.wav"):
        got = (tmp_path / "out" / "cl-out" / name).read_bytes()
        assert got == (server.outroot / "cl-local" / name).read_bytes()
        assert hashlib.sha256(got).hexdigest() in [f[2] for f in remote[1]]
