"""`svc-host render --cluster`: a scheduler and two workers on 127.0.0.1 render a folder with the
same bytes as a local render, survive a worker killed mid-batch, report bad files like a local
render, and leave no partial files when the batch is interrupted."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from host_bridge.cli import main
from tests.signals import sung_tone

pytest.importorskip("distributed", reason='Dask distributed missing: pip install -e ".[cluster]"')
from tests.host_bridge.dask_procs import dask_cluster, processing_workers, wait_until  # noqa: E402

N_FILES = 8
SECONDS = 3.0  # long enough that a worker is mid-file when the first output lands


@pytest.fixture(scope="module")
def stems(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cluster") / "session"
    (d / "vox").mkdir(parents=True)
    for k in range(N_FILES):
        sr = (44100, 48000)[k % 2]
        x = sung_tone(sr, SECONDS, f0=180.0 + 20 * k, seed=k)
        if k % 3 == 2:
            x = np.stack([x, sung_tone(sr, SECONDS, seed=k + 10)]).T
        sf.write(d / "vox" / f"take{k}.wav", x, sr, subtype=("PCM_24", "PCM_16", "FLOAT")[k % 3])
    (d / "broken.wav").write_bytes((d / "vox" / "take0.wav").read_bytes()[:60])  # truncated header
    return d


@pytest.fixture(scope="module")
def local_render(stems, random_model_dir, tmp_path_factory) -> tuple[Path, int]:
    out = tmp_path_factory.mktemp("local")
    rc = main(["render", str(stems), "-o", str(out), "--model", str(random_model_dir), "-q", "-t", "2"])
    return out, rc


def _outputs(root: Path) -> dict[Path, bytes]:
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _same_as_local(out: Path, local: Path) -> None:
    got, want = _outputs(out), _outputs(local)
    assert sorted(got) == sorted(want) and len(want) == N_FILES
    for rel in want:
        assert got[rel] == want[rel], f"{rel} differs from the local render"


def test_cluster_render_matches_local_bytes_transfer_and_cancel(stems, local_render, random_model_dir, tmp_path,
                                                               capsys):
    local, local_rc = local_render
    capsys.readouterr()
    common = ["--model", str(random_model_dir), "-q", "-t", "2"]
    with dask_cluster(tmp_path, 2) as dc:
        out = tmp_path / "shared"
        rc = main(["render", str(stems), "-o", str(out), *common, "--cluster", dc.scheduler])
        text = capsys.readouterr().out
        assert rc == local_rc == 1  # broken.wav fails in both, reported, not retried
        assert f"{N_FILES} rendered, 0 skipped, 1 failed" in text and "broken.wav" in text
        _same_as_local(out, local)

        # workers see another filesystem: inputs go to them as bytes, outputs come back
        out2 = tmp_path / "transfer"
        rc = main(["render", str(stems), "-o", str(out2), *common, "--cluster", dc.scheduler, "--cluster-transfer"])
        text = capsys.readouterr().out
        assert rc == 1 and f"{N_FILES} rendered, 0 skipped, 1 failed" in text
        assert str(stems / "broken.wav") in text  # the user's path, not the worker's temp copy
        _same_as_local(out2, local)

        # an interrupted batch (Ctrl-C after the first file) stops, leaving whole files only
        from host_bridge.cluster import render_cluster
        from host_bridge.render_plan import plan_batch

        out3 = tmp_path / "stopped"
        pairs = plan_batch([str(stems)], str(out3)).pairs

        def stop(i, n, r):
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            render_cluster(pairs, str(random_model_dir), {"transpose": 2.0}, cluster=dc.scheduler, progress=stop)
        files = [p for p in out3.rglob("*") if p.is_file()]
        assert not [p for p in files if p.name.endswith(".partial")]
        assert len(files) < N_FILES
        want = _outputs(local)
        for p in files:  # what is there is complete
            assert p.read_bytes() == want[p.relative_to(out3)]


def test_worker_killed_mid_batch_batch_completes(stems, local_render, random_model_dir, tmp_path, capsys):
    local, _ = local_render
    out = tmp_path / "out"
    with dask_cluster(tmp_path, 2) as dc:
        killed: list[str] = []

        def killer() -> None:
            first = wait_until(lambda: any(p.suffix == ".wav" for p in out.rglob("*.wav")), timeout=600)
            if not first:
                return
            for w in processing_workers(dc.scheduler):  # a worker holding a file right now
                if w in dc.workers:
                    dc.workers[w].kill()
                    dc.workers[w].wait(timeout=10)
                    killed.append(w)
                    return

        t = threading.Thread(target=killer, daemon=True)
        t.start()
        rc = main(["render", str(stems), "-o", str(out), "--model", str(random_model_dir), "-q", "-t", "2",
                   "--cluster", dc.scheduler])
        t.join(timeout=60)
        text = capsys.readouterr().out
        assert len(killed) == 1, "no worker held a file when the first output landed; make the batch longer"
        assert dc.workers[killed[0]].poll() is not None
    assert rc == 1 and f"{N_FILES} rendered, 0 skipped, 1 failed" in text
    _same_as_local(out, local)
    assert not [p for p in out.rglob("*") if p.name.endswith(".partial")]


def test_cluster_argument_errors_are_one_line(stems, random_model_dir, tmp_path, capsys, monkeypatch):
    args = ["render", str(stems / "vox" / "take0.wav"), "-o", str(tmp_path / "o"), "--model", str(random_model_dir)]
    assert main([*args, "--cluster", "local:0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "local:0" in err and "local:N" in err and "\n" not in err
    assert main([*args, "--cluster", "127.0.0.1:8786"]) == 2
    assert "tcp://HOST:PORT" in capsys.readouterr().err
    port = __import__("tests.host_bridge.dask_procs", fromlist=["free_port"]).free_port()
    monkeypatch.setattr("host_bridge.cluster.CONNECT_TIMEOUT_S", 3.0)
    assert main([*args, "--cluster", f"tcp://127.0.0.1:{port}"]) == 2  # nobody listens there
    assert "no Dask scheduler answered" in capsys.readouterr().err
    monkeypatch.setitem(__import__("sys").modules, "distributed", None)  # as if not installed
    assert main([*args, "--cluster", "local:2"]) == 2
    err = capsys.readouterr().err.strip()
    assert 'pip install -e ".[cluster]"' in err and "\n" not in err
    assert not (tmp_path / "o").exists()
